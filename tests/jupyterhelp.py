"""Helpers for the tests that drive real Jupyter servers, their proxy and Chromium."""

import importlib.util
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("LOGSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LESSON = ROOT / "notebooks" / "00-start-here.ipynb"
# Lesson 00 up to the cells that show the viewer (its last cell stops the server).
LAST_VIEWER_CELL = "l00-viewer-check"
# The network is closed: no news, no update check, no extension manager.
QUIET_LAB = ["--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
RTT = re.compile(r"^\d+\.\d ms")


def require(condition, reason):
    """Skip when condition is false, except on CI, where it must hold."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true, so this test may not be skipped.")
    pytest.skip(reason)


def importable(name):
    return importlib.util.find_spec(name) is not None


def wait_for_http(url, process, log, what, timeout=60, **params):
    """Return once url answers 200; fail with the process's log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, params=params).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n" + Path(log).read_text()[-3000:])
        time.sleep(0.2)


def stop(process):
    """Stop a process this test started, and whatever it started in its session."""
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    try:
        # Only this test's own session: the process was started with start_new_session.
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def write_viewer_lesson(folder):
    """Write lesson 00, cut after the cells that show the viewer, into folder."""
    lesson = json.loads(LESSON.read_text())
    ids = [cell["id"] for cell in lesson["cells"]]
    lesson["cells"] = lesson["cells"][:ids.index(LAST_VIEWER_CELL) + 1]
    (folder / LESSON.name).write_text(json.dumps(lesson))


def launch_chromium(playwright):
    require(os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}")
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS)


def run_viewer_lesson(page, timeout=90):
    """Run the open lesson's cells in JupyterLab; return the embedded viewer's iframe src."""
    from playwright.sync_api import expect

    page.set_default_timeout(60_000)
    expect(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook")) \
        .to_be_visible(timeout=90_000)
    # Run All before the kernel is up runs nothing.
    expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle"))) \
        .to_be_visible(timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    done = page.locator(".jp-OutputArea-output", has_text="The viewer page is served")
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    deadline = time.monotonic() + timeout
    while not done.count():
        assert not errors.count(), f"a cell failed:\n{errors.first.inner_text()[-2000:]}"
        assert time.monotonic() < deadline, f"the lesson's cells did not finish in {timeout} s"
        page.wait_for_timeout(250)
    expect(done).to_contain_text("through the Jupyter server's proxy")
    iframe = page.locator(".jp-OutputArea-output iframe")
    iframe.scroll_into_view_if_needed()
    return iframe.get_attribute("src")


def check_embedded_viewer(page, origin, src, wait_ms):
    """Check that the viewer embedded at src connects over a WebSocket and shows lines."""
    from playwright.sync_api import expect

    viewer = page.frame_locator(".jp-OutputArea-output iframe")
    expect(viewer.locator("#status")).to_have_text("Connected", timeout=wait_ms)
    viewer.locator("#log li[data-line]").first.wait_for(state="attached", timeout=wait_ms)
    (frame,) = [f for f in page.frames if f.url.startswith(f"{origin}{src}")]
    assert frame.evaluate("window.logstreamViewer.transport") == "websocket"
    viewer.locator("#ping").click()
    expect(viewer.locator("#rtt")).to_have_text(RTT, timeout=wait_ms)
