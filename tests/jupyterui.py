"""Start a real JupyterLab or Notebook 7 on copies of lessons, and drive it in Chromium."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from logstream.support.host import free_port

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = os.environ.get("LOGSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "logstream-test-token"


def require(condition, reason):
    """Skip when condition is false, except on CI, where it must hold."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this test may not be skipped.")
    pytest.skip(reason)


def importable(name):
    """Return True if the module name can be imported."""
    import importlib.util
    return importlib.util.find_spec(name) is not None


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
    command = [sys.executable, "-m", "jupyter", app, "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
               # The network is closed: no news, no update check, no PyPI.
               "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if app == "notebook":
        command = [c.replace("--LabApp.", "--JupyterNotebookApp.") for c in command]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI runners often are root
    log_path = home / f"{app}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=home)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/api/status", params={"token": TOKEN}).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter {app} did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.2)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def chromium():
    """Yield Debian's headless Chromium, driven by Playwright."""
    require(importable("playwright"), "Playwright for Python is not installed")
    require(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
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
