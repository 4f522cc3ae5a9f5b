"""Packaging: environment.yml agrees with pyproject.toml; the wheel carries what the app needs; a plain install serves."""

import configparser
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import yaml

from logstream.support.host import free_port
from logstream.support.processes import ChildProcess, answers

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from PyPI's.
CONDA_TO_PYPI = {"redis-py": "redis"}
# Extras of our dependencies spelled out as packages in environment.yml.
EXTRA_EXPANSIONS = {"python-socketio[client]": {"requests"}}


def normalise(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def split(requirement):
    """Return (name with extras, bounds) of a 'name[extra]>=x[,<y]; marker' string."""
    requirement = requirement.split(";")[0].strip()
    match = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[a-z,\-]+\])?)\s*(?:>=\s*([\w.]+(?:,<[\w.]+)?))?",
                         requirement)
    assert match, f"unexpected requirement {requirement!r}: pin a lower bound with >="
    return match.group(1), match.group(2)


def pyproject_requirements():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += [r for r in extra if not r.startswith("logstream")]
    return dict(split(r) for r in requirements)


def environment_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    found = {}
    for entry in env["dependencies"]:
        if isinstance(entry, str) and entry not in ("pip",):
            name, bound = split(entry)
            found[CONDA_TO_PYPI.get(name, name)] = bound
    return found


def test_every_pyproject_dependency_has_a_lower_bound():
    for name, bound in pyproject_requirements().items():
        assert bound, f"{name} needs a lower bound in pyproject.toml"


def test_environment_yml_matches_pyproject():
    pyproject = {normalise(n.split("[")[0]): b for n, b in pyproject_requirements().items()}
    environment = {normalise(n): b for n, b in environment_requirements().items()}
    python = environment.pop("python")
    requires_python = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires_python == f">={python}"
    expanded = {normalise(p) for extras in EXTRA_EXPANSIONS.values() for p in extras}
    assert set(pyproject) == set(environment) - expanded, (
        f"only in pyproject: {set(pyproject) - set(environment)}; "
        f"only in environment.yml: {set(environment) - expanded - set(pyproject)}")
    for name, bound in pyproject.items():
        assert environment[name] == bound, f"{name}: pyproject >={bound}, environment.yml >={environment[name]}"


def lesson_imports():
    """Return the top-level modules the lessons and their solutions import."""
    import ast

    import nbformat

    sources = [cell.source for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
               for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    sources += [path.read_text() for path in (ROOT / "notebooks" / "solutions").glob("*.py")]
    modules = set()
    for source in sources:
        code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules.add(node.module)
    return modules


def test_the_lessons_extra_brings_everything_the_lessons_import():
    from importlib.metadata import PackageNotFoundError, packages_distributions, requires

    def requirements_of(name):
        try:
            return requires(name) or []
        except PackageNotFoundError:   # a requirement for another platform
            return []

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    lessons = extras["lessons"]
    wanted = list(project["dependencies"]) + lessons
    for extra in re.findall(r"logstream\[([a-z,]+)\]", " ".join(lessons)):
        for name in extra.split(","):
            wanted += extras[name]
    installed = set()
    todo = [normalise(split(r)[0].split("[")[0]) for r in wanted if not r.startswith("logstream")]
    while todo:   # what the lessons extra installs, with the requirements of each
        name = todo.pop()
        if name not in installed:
            installed.add(name)
            todo += [normalise(re.split(r"[\s\[<>=!;~(]", r, maxsplit=1)[0])
                     for r in requirements_of(name) if "extra ==" not in r]
    imports = lesson_imports()
    if any(module.startswith("logstream.tools") for module in imports):
        assert "tools" in " ".join(lessons), "lessons import logstream.tools: add logstream[tools]"
    distributions = packages_distributions()
    for module in sorted({m.split(".")[0] for m in imports} - set(sys.stdlib_module_names)):
        if module == "logstream":
            continue
        names = {normalise(d) for d in distributions.get(module, [module])}
        assert names & installed, f"the lessons import {module}, which the lessons extra lacks"


def test_wheel_ships_templates_static_files_and_the_browser_client(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    (wheel,) = tmp_path.glob("logstream-*.whl")
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    for template in ("index.html", "deployment.html", "base.html", "error.html"):
        assert f"logstream/templates/{template}" in names
    assert "logstream/static/viewer.js" in names
    # The notebook pane's front end, loaded from next to its module.
    assert {"logstream/clients/pane.js", "logstream/clients/panesearch.js",
            "logstream/clients/pane.css"} <= names
    assert "logstream/static/vendor/socket.io.min.js" in names
    assert "logstream/static/logstream-icon.svg" in names
    (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
    sections = configparser.ConfigParser()
    sections.read_string(archive.read(entry_points).decode())
    # jupyter-server-proxy finds the launcher tile through this entry point.
    assert sections["jupyter_serverproxy_servers"]["logstream"] == \
        "logstream.web.jupyter_proxy:setup_logstream"
    assert sections["console_scripts"]["logstream"] == "logstream.launch:main"


def test_a_plain_install_serves_and_streams_without_the_measuring_tools(tmp_path):
    """`pip install logstream` (no extras) in a fresh venv: serve, stream a line, no tools."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "dist"), str(ROOT)], check=True)
    (wheel,) = (tmp_path / "dist").glob("logstream-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # From the package registry, through pip's cache: the dependencies it declares, no more.
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr
    # Neither this checkout nor the shared venv may leak into the fresh one.
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util, logstream; print(logstream.__file__); "
         "print(*[m for m in ('psutil', 'tqdm', 'httpx_sse') if importlib.util.find_spec(m)])"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=True)
    installed_at, extras_found = probe.stdout.splitlines()
    assert installed_at.startswith(str(venv)), installed_at
    assert extras_found == "", f"a plain install brought {extras_found}"

    data_dir = tmp_path / "logs"
    data_dir.mkdir()
    (data_dir / "app.log").write_text("hello from a lean install\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ChildProcess("logstream serve (lean)", [
        venv / "bin" / "logstream", "serve", "--port", port, "--data-dir", data_dir],
        tmp_path / "serve.out", ready=lambda: answers(url + "/healthz"), env=env)
    try:
        server.start(timeout=60)
        # The Python client, as installed in the fresh venv.
        follow = ("from logstream import LogClient\n"
                  f"with LogClient({url!r}) as client:\n"
                  "    sub = client.follow('app', since=0)\n"
                  "    assert sub.wait_for_line(1, timeout=20), 'no line within 20 s'\n"
                  "    print(sub.drain())\n")
        streamed = subprocess.run([str(python), "-c", follow], capture_output=True, text=True,
                                  env=env, cwd=tmp_path, timeout=60)
        assert streamed.returncode == 0, streamed.stderr + server.output()
        assert streamed.stdout.strip() == "[(1, 'hello from a lean install')]"
    finally:
        server.stop()
    assert "Traceback" not in server.output()

    bench = subprocess.run([str(venv / "bin" / "logstream"), "bench"], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=60)
    assert bench.returncode != 0
    assert "pip install 'logstream[tools]'" in bench.stderr, bench.stderr
