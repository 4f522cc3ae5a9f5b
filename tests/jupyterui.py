"""Start a real JupyterLab or Notebook 7 on copies of lessons, and use it in Chromium."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from jupyterhelp import QUIET_LAB, ROOT, importable, launch_chromium, require, stop, wait_for_http
from logstream.support.host import free_port

NOTEBOOKS = ROOT / "notebooks"
TOKEN = "logstream-test-token"


@contextlib.contextmanager
def jupyter(app, home, lessons):
    """Run `jupyter app` (lab or notebook) on copies of lessons; yield its base URL."""
    require(importable({"lab": "jupyterlab", "notebook": "notebook"}[app]),
            f"jupyter {app} is not installed")
    # Copies, so autosave can never write outputs into the repository.
    root = home / "notebooks"
    root.mkdir()
    for lesson in lessons:
        shutil.copy(NOTEBOOKS / lesson, root)
    # No "would you like news?" toast over the page (and its screenshots).
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    port = free_port()
    env = dict(os.environ,
               # The kernel runs in the copy's folder: import this checkout.
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               IPYTHONDIR=str(home / "ipython"))
    quiet = QUIET_LAB if app == "lab" else \
        [flag.replace("--LabApp.", "--JupyterNotebookApp.") for flag in QUIET_LAB]
    command = [sys.executable, "-m", "jupyter", app, "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0", *quiet]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI runners often are root
    log_path = home / f"{app}.log"
    with open(log_path, "w") as log:
        # Its own session, so stopping it stops its kernels too.
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=home, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/api/status", process, log_path, f"jupyter {app}", token=TOKEN)
            yield url
        finally:
            stop(process)


@contextlib.contextmanager
def chromium():
    """Yield Debian's headless Chromium, driven by Playwright."""
    require(importable("playwright"), "Playwright for Python is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        try:
            yield launched
        finally:
            launched.close()


def menu(page, top, item):
    """Choose item (exact text) from the menu bar's menu top."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$")).click()


def run(page, item):
    """Choose item from the Run menu, again if the kernel was not ready to queue anything."""
    queued = page.locator(".jp-CodeCell .jp-InputPrompt", has_text=re.compile(r"\[(\*|\d+)\]"))
    for _ in range(3):
        menu(page, "Run", item)
        # A queued cell shows [*] at once; a kernel still connecting takes nothing.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if queued.count():
                return
            page.wait_for_timeout(250)
    pytest.fail(f"Run > {item} ran no cell three times over")


def wait_for_cell(page, cell, seconds, tmp_path):
    """Wait until cell has run (its prompt shows a number); fail at the first error."""
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    done = cell.locator(".jp-InputPrompt", has_text=re.compile(r"\[\d+\]"))
    deadline = time.monotonic() + seconds
    while not done.count():
        assert not errors.count(), f"a cell failed:\n{errors.first.inner_text()[-2000:]}"
        if time.monotonic() > deadline:
            page.screenshot(path=str(tmp_path / "unfinished.png"), full_page=True)
            pytest.fail(f"the cells did not run in {seconds} s; see {tmp_path / 'unfinished.png'}")
        page.wait_for_timeout(250)
    assert not errors.count(), f"a cell failed:\n{errors.first.inner_text()[-2000:]}"


# How the newest row of a pane sits in its scroll box and in the window.
NEWEST_ROW = """pane => {
  const box = pane.querySelector('.logstream-log');
  const rows = box.querySelectorAll('.logstream-row:not([hidden])');
  if (!rows.length) return null;
  const row = rows[rows.length - 1];
  const r = row.getBoundingClientRect(), b = box.getBoundingClientRect();
  return {line: Number(row.dataset.line), rows: rows.length,
          inBox: r.height > 0 && r.top >= b.top - 1 && r.bottom <= b.bottom + 1,
          onScreen: r.top >= 0 && r.bottom <= window.innerHeight,
          following: box.scrollHeight - box.scrollTop - box.clientHeight < 40};
}"""


def newest_row_visible(pane, timeout=10_000):
    """Wait until the pane's newest row is inside its scroll box and on screen; return it."""
    deadline = time.monotonic() + timeout / 1000
    while True:
        # Cells above that render late move the pane: look at it again.
        pane.scroll_into_view_if_needed()
        seen = pane.evaluate(NEWEST_ROW)
        if seen and seen["inBox"] and seen["onScreen"]:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"the newest row is not visible in its pane: {seen}")
        pane.page.wait_for_timeout(100)
