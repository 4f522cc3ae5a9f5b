"""Run lesson 06 in a real JupyterLab in headless Chromium and watch its log pane live."""

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
LESSON = ROOT / "notebooks" / "06-live-log-panes.ipynb"
CHROMIUM = os.environ.get("LOGSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "logstream-test-token"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# Record every text the panes' line counters show, as the page changes.
WATCH_COUNTS = """() => {
  window.seenCounts = new Set();
  const note = () => document.querySelectorAll('.logstream-count')
      .forEach(el => window.seenCounts.add(el.textContent));
  new MutationObserver(note).observe(document.body,
      {subtree: true, childList: true, characterData: true});
}"""


def require(condition, reason):
    """Skip when condition is false, except on CI, where it must hold."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this test may not be skipped.")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A real JupyterLab server on a copy of lesson 06; yields its base URL."""
    require(shutil.which("jupyter", path=os.path.dirname(sys.executable)) or
            _importable("jupyterlab"), "JupyterLab is not installed")
    home = tmp_path_factory.mktemp("lab")
    # A copy, so JupyterLab's autosave can never write outputs into the repo.
    root = home / "notebooks"
    root.mkdir()
    shutil.copy(LESSON, root)
    port = free_port()
    env = dict(os.environ,
               # The kernel runs in the copy's folder: import this checkout.
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               IPYTHONDIR=str(home / "ipython"))
    log = open(home / "lab.log", "w")
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
               # The network is closed: no news, no update check, no PyPI.
               "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI runners often are root
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
                pytest.fail("JupyterLab did not start:\n" + (home / "lab.log").read_text()[-3000:])
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _importable(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, driven by Playwright."""
    require(_importable("playwright"), "Playwright for Python is not installed")
    require(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_lesson_06_shows_a_live_log_pane_in_jupyterlab(lab, browser, tmp_path):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(f"{lab}/lab/tree/{LESSON.name}?token={TOKEN}")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")
    expect(notebook).to_be_visible(timeout=60_000)
    # The status bar says Idle only once the kernel is up and connected;
    # Run All before that runs nothing.
    expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))) \
        .to_be_visible(timeout=60_000)
    page.evaluate(WATCH_COUNTS)

    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    expect(page.locator(".jp-CodeCell .jp-InputPrompt").first) \
        .to_have_text(re.compile(r"\[(\*|\d+)\]"), timeout=30_000)

    # The exercise's check prints "Correct." only if every cell before it passed.
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    correct = page.locator(".jp-OutputArea-output", has_text="Correct.")
    deadline = time.monotonic() + 100
    while not correct.count():
        assert not errors.count(), f"a cell failed:\n{errors.first.inner_text()[-2000:]}"
        if time.monotonic() > deadline:
            page.screenshot(path=str(tmp_path / "unfinished.png"), full_page=True)
            pytest.fail(f"the lesson did not finish in 100 s; see {tmp_path / 'unfinished.png'}")
        page.wait_for_timeout(250)

    pane = page.locator(".logstream-pane").first
    # JupyterLab skips rendering cells out of view: bring the first pane in.
    pane.scroll_into_view_if_needed()
    expect(pane).to_be_visible()
    text = pane.locator(".logstream-log").text_content()
    numbers = [int(n) for n in re.findall(r"^\s*(\d+)\s+app line \1$", text, re.MULTILINE)]
    assert len(numbers) >= 30, repr(text[:600])
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "in order, no gap"
    expect(pane.locator(".logstream-rtt")).to_have_text(re.compile(r"^RTT \d+\.\d ms$"))
    # Every pane, the dashboard's too, is on the page, with the progress bar.
    assert page.locator(".logstream-pane").count() >= 4
    progress = page.locator(".logstream-progress")
    progress.scroll_into_view_if_needed()
    expect(progress).to_be_visible()
    # The counters changed while the cells ran: updates streamed into the page.
    seen = page.evaluate("() => [...window.seenCounts]")
    assert len(seen) >= 3, seen
    page.close()
