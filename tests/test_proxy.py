"""The viewer behind jupyter-server-proxy, in a real JupyterLab and a real Chromium."""

import contextlib
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import entry_points

import httpx
import pytest

from conftest import append
from jupyterhelp import (LESSON, QUIET_LAB, ROOT, RTT, check_embedded_viewer, importable,
                         launch_chromium, require, run_viewer_lesson, stop, wait_for_http,
                         write_viewer_lesson)
from logstream.support.host import free_port
from logstream.web import vendor

TOKEN = "logstream-proxy-test-token"
WAIT_MS = 30_000
SERVE_TOKEN = "logstream-own-token"
# The launcher tile: the package's entry point brings it where the package is
# installed with its metadata; elsewhere (a checkout on the path) it is
# configured the same way by hand, so there is exactly one.
TILE_INSTALLED = any(entry.name == "logstream"
                     for entry in entry_points(group="jupyter_serverproxy_servers"))
SERVER_CONFIG = "" if TILE_INSTALLED else """
from logstream.web.jupyter_proxy import setup_logstream
c.ServerProxy.servers = {"logstream": setup_logstream()}
"""

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def launcher_logs(tmp_path_factory):
    """The folder the launcher's server follows: a copy of the sample logs."""
    folder = tmp_path_factory.mktemp("launcher-logs")
    for sample in (ROOT / "data" / "logs").glob("sample-*.log"):
        shutil.copy(sample, folder)
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory, launcher_logs):
    """A real JupyterLab with jupyter-server-proxy and the logstream tile; yields its URL."""
    require(importable("jupyterlab"), "JupyterLab is not installed")
    require(importable("jupyter_server_proxy"), "jupyter-server-proxy is not installed")
    home = tmp_path_factory.mktemp("proxy-lab")
    (home / "config").mkdir()
    (home / "config" / "jupyter_server_config.py").write_text(SERVER_CONFIG)
    (home / "notebooks").mkdir()
    write_viewer_lesson(home / "notebooks")
    port = free_port()
    env = dict(os.environ,
               LOGSTREAM_DATA_DIR=str(launcher_logs),
               JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               IPYTHONDIR=str(home / "ipython"))
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
               "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
               f"--ServerApp.root_dir={home / 'notebooks'}", "--ServerApp.port_retries=0",
               *QUIET_LAB]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log_path = home / "lab.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=home, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/api/status", process, log_path, "JupyterLab", token=TOKEN)
        yield url
    finally:
        stop(process)


@contextlib.contextmanager
def logstream_serve(folder, *options):
    """Run a real `logstream serve` on a free port; yield (port, data dir)."""
    data_dir = folder / "logs"
    data_dir.mkdir()
    port = free_port()
    log_path = folder / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "logstream", "serve", "--port", str(port),
             "--data-dir", str(data_dir), "--line-interval", "0.2", *options],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process, log_path, "logstream serve")
        yield port, data_dir
    finally:
        stop(process)


@pytest.fixture(scope="module")
def logstream_port(tmp_path_factory):
    with logstream_serve(tmp_path_factory.mktemp("proxied")) as served:
        yield served


@pytest.fixture(scope="module")
def token_port(tmp_path_factory):
    with logstream_serve(tmp_path_factory.mktemp("proxied-token"), "--token", SERVE_TOKEN) \
            as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    require(importable("playwright"), "Playwright for Python is not installed")
    require(vendor.is_present(), "the browser's Socket.IO client is missing: "
            "run python -m logstream.web.vendor")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        yield launched
        launched.close()


class Session:
    """A browser context logged in to JupyterLab that records errors and requested paths."""

    def __init__(self, browser, lab):
        self.lab = lab
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.errors = []
        self.paths = []
        self.context.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.context.on("weberror", lambda e: self.errors.append(f"pageerror: {e.error}"))
        self.context.on("request", self._request)
        self.context.on("websocket", lambda ws: self.paths.append(httpx.URL(ws.url).path))
        # Jupyter answers a token in the URL with its login cookie.
        page = self.context.new_page()
        response = page.goto(f"{lab}/api/status?token={TOKEN}")
        assert response.ok
        page.close()

    def _request(self, request):
        url = httpx.URL(request.url)
        if str(url).startswith(self.lab):
            self.paths.append(url.path)

    def open(self, path):
        page = self.context.new_page()
        page.goto(self.lab + path)
        return page


@pytest.fixture
def session(browser, lab):
    opened = Session(browser, lab)
    yield opened
    opened.context.close()
    assert opened.errors == [], "the page logged errors"


def wait_for_line(page, number):
    page.locator(f'#log li[data-line="{number}"]').wait_for(state="attached", timeout=WAIT_MS)


def wait_connected(page, transport):
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_text("Connected")
    page.locator('#viewer[data-streaming="true"]').wait_for(state="attached", timeout=WAIT_MS)
    assert page.evaluate("window.logstreamViewer.transport") == transport


def test_viewer_streams_through_the_proxy_over_websocket_and_sse(session, logstream_port):
    from playwright.sync_api import expect

    port, data_dir = logstream_port
    prefix = f"/proxy/{port}/"
    path = data_dir / "proxied.log"
    path.write_text("".join(f"line {i}\n" for i in range(1, 6)))

    page = session.open(prefix)
    page.click('a:text-is("proxied")')
    page.wait_for_url(f"{session.lab}{prefix}deployments/proxied")
    wait_connected(page, "websocket")
    wait_for_line(page, 5)
    append(path, "".join(f"line {i}\n" for i in range(6, 11)))
    wait_for_line(page, 10)
    page.click("#ping")
    expect(page.locator("#rtt")).to_have_text(RTT)

    page.select_option("#transport", "sse")
    wait_connected(page, "sse")
    append(path, "line 11\n")
    wait_for_line(page, 11)
    page.click("#ping")
    expect(page.locator("#rtt")).to_have_text(re.compile(RTT.pattern + r" \(HTTP\)$"))

    page.select_option("#transport", "polling")
    wait_connected(page, "polling")
    append(path, "line 12\n")
    wait_for_line(page, 12)
    numbers = page.eval_on_selector_all("#log li[data-line]", "els => els.map(e => +e.dataset.line)")
    assert numbers == list(range(1, 13)), "every line once, in order, across transports"
    # Every asset, stream and socket went through the prefix: none fell to Jupyter's root.
    outside = [p for p in session.paths if not p.startswith(prefix) and p != "/api/status"]
    assert outside == []
    assert any(p.startswith(f"{prefix}socket.io/") for p in session.paths)
    assert f"{prefix}deployments/proxied/events" in session.paths


def test_the_list_works_without_its_trailing_slash(session, logstream_port):
    port, data_dir = logstream_port
    (data_dir / "slashless.log").write_text("line 1\n")
    page = session.open(f"/proxy/{port}")   # jupyter-server-proxy serves "/" here too
    page.click('a:text-is("slashless")')
    page.wait_for_url(f"{session.lab}/proxy/{port}/deployments/slashless")
    wait_connected(page, "websocket")
    wait_for_line(page, 1)


def test_a_token_given_once_in_the_url_works_behind_the_proxy(session, token_port):
    from playwright.sync_api import expect

    port, data_dir = token_port
    prefix = f"/proxy/{port}/"
    path = data_dir / "guarded.log"
    path.write_text("line 1\n")
    refused = session.open(prefix)
    expect(refused.locator("body")).to_contain_text("needs a token")
    session.errors.clear()   # Chromium logs the 401 itself

    page = session.open(f"{prefix}?token={SERVE_TOKEN}")
    page.click('a:text-is("guarded")')
    page.wait_for_url(f"{session.lab}{prefix}deployments/guarded")
    wait_connected(page, "websocket")
    wait_for_line(page, 1)
    page.select_option("#transport", "sse")
    wait_connected(page, "sse")
    append(path, "line 2\n")
    wait_for_line(page, 2)


def test_new_deployment_lands_on_its_page_under_the_prefix(session, logstream_port):
    port, _ = logstream_port
    prefix = f"/proxy/{port}/"
    page = session.open(prefix)
    page.click("#new-deployment")
    page.wait_for_url(re.compile(re.escape(f"{session.lab}{prefix}deployments/") + r"[\w.-]+$"))
    wait_connected(page, "websocket")
    # The simulator writes a line every 0.2 s: new ones keep arriving.
    first = page.evaluate("window.logstreamViewer.lastLine")
    page.wait_for_function("n => window.logstreamViewer.lastLine > n", arg=first,
                           timeout=WAIT_MS)


def test_launcher_tile_starts_a_server_whose_page_works_through_the_proxy(session, lab,
                                                                         launcher_logs):
    info = httpx.get(f"{lab}/server-proxy/servers-info", params={"token": TOKEN}).json()
    (tile,) = [s for s in info["server_processes"] if s["name"] == "logstream"]
    assert tile["launcher_entry"]["enabled"] and tile["launcher_entry"]["title"] == "Log stream"

    page = session.open("/logstream/")   # starts `logstream serve` on demand
    page.click('a:text-is("sample-shop-api")')
    page.wait_for_url(f"{lab}/logstream/deployments/sample-shop-api")
    wait_connected(page, "websocket")
    # The page joins with the most recent lines, the file's last one included.
    lines = (launcher_logs / "sample-shop-api.log").read_text().count("\n")
    wait_for_line(page, lines)
    assert [p for p in session.paths if not p.startswith("/logstream/")
            and p != "/api/status"] == []


def test_the_launched_server_refuses_requests_that_bypass_the_proxy(session, lab):
    import psutil

    session.open("/logstream/healthz")
    lab_process = next(p for p in psutil.process_iter(["cmdline"])
                       if f"--IdentityProvider.token={TOKEN}" in (p.info["cmdline"] or []))
    (served,) = [c for c in lab_process.children(recursive=True)
                 if "logstream" in c.cmdline() and "serve" in c.cmdline()]
    port = served.cmdline()[served.cmdline().index("--port") + 1]
    direct = httpx.get(f"http://127.0.0.1:{port}/api/deployments")
    assert direct.status_code == 401
    through = httpx.get(f"{lab}/logstream/api/deployments", params={"token": TOKEN})
    assert through.status_code == 200
    assert "sample-billing" in [d["id"] for d in through.json()]


def test_lesson_00_embeds_a_viewer_that_streams_through_the_proxy(session):
    page = session.open(f"/lab/tree/{LESSON.name}")
    src = run_viewer_lesson(page)
    assert re.fullmatch(r"/proxy/\d+/deployments/[\w.-]+", src), src
    check_embedded_viewer(page, session.lab, src, WAIT_MS)
