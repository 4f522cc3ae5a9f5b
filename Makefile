# Two commands do all set-up on a fresh machine: `make serve` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install system-deps serve test lab site screenshots bench clean

install: $(STAMP)
	@$(BIN)/python -m logstream.web.vendor

# Reinstall only when the dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all]'
	touch $@

system-deps:
	@sh scripts/system-deps.sh

serve: system-deps install
	$(BIN)/logstream serve --data-dir data/logs

test: system-deps install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Jupyter refuses to run as root unless told to (containers, CI machines).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(BIN)/jupyter lab notebooks/ $(ROOT_FLAG)

# The executed lessons as HTML pages in build/site/, readable offline.
site: install
	$(BIN)/python scripts/build_site.py build/site

screenshots: system-deps install
	$(BIN)/python -m pytest tests/test_browser.py tests/test_jupyterlab.py -k screenshot

bench: install
	$(BIN)/logstream bench

clean:
	rm -rf $(VENV) logstream/static/vendor .pytest_cache
