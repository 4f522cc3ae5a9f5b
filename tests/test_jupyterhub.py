"""A real JupyterHub: a user's notebook starts logstream, and the viewer streams at /user/NAME/proxy/PORT/."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jupyterhelp import (LESSON, QUIET_LAB, check_embedded_viewer, importable, launch_chromium,
                         require, run_viewer_lesson, stop, wait_for_http, write_viewer_lesson)
from logstream.support.host import free_port
from logstream.web import vendor

USER = "ada"
WAIT_MS = 30_000
# JupyterHub's proxy comes from npm; LOGSTREAM_CHP names it when it is not on PATH.
CHP = os.environ.get("LOGSTREAM_CHP") or shutil.which("configurable-http-proxy")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

HUB_CONFIG = """
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{home}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{home}/cookie_secret"
c.JupyterHub.pid_file = "{home}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{home}/users/{{username}}"
c.Spawner.cmd = [{python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.args = {args!r}
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120
# The user's server reads its Jupyter settings from the test's folders.
c.Spawner.environment = {environment!r}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """A real JupyterHub with configurable-http-proxy; yields its public URL."""
    require(importable("jupyterhub"), "JupyterHub is not installed (the test extra has it)")
    require(importable("jupyter_server_proxy"), "jupyter-server-proxy is not installed")
    require(CHP is not None, "configurable-http-proxy is not installed "
            "(npm install -g configurable-http-proxy, or set LOGSTREAM_CHP)")
    home = tmp_path_factory.mktemp("hub")
    user_home = home / "users" / USER
    user_home.mkdir(parents=True)
    write_viewer_lesson(user_home)
    args = [*QUIET_LAB]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        args.append("--allow-root")  # containers and CI runners often are root
    environment = {name: str(home / "jupyter" / name.lower())
                   for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR",
                                "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR",
                                "IPYTHONDIR")}
    port = free_port()
    (home / "jupyterhub_config.py").write_text(HUB_CONFIG.format(
        port=port, hub_port=free_port(), api_port=free_port(), chp=CHP, home=home,
        python=sys.executable, args=args, environment=environment))
    log_path = home / "hub.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(home / "jupyterhub_config.py")],
            cwd=home, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/hub/health", process, log_path, "JupyterHub", timeout=90)
        yield url, log_path
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser():
    require(importable("playwright"), "Playwright for Python is not installed")
    require(vendor.is_present(), "the browser's Socket.IO client is missing: "
            "run python -m logstream.web.vendor")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        yield launched
        launched.close()


def test_a_users_notebook_streams_the_viewer_at_user_name_proxy_port(hub, browser):
    from playwright.sync_api import expect

    url, log_path = hub
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    errors = []
    context.on("weberror", lambda e: errors.append(f"pageerror: {e.error}"))
    try:
        page = context.new_page()
        page.set_default_timeout(90_000)
        page.goto(f"{url}/hub/login")
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", "any")   # DummyAuthenticator takes any password
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url(re.compile(re.escape(f"{url}/user/{USER}/lab")), timeout=120_000)

        page.goto(f"{url}/user/{USER}/lab/tree/{LESSON.name}")
        src = run_viewer_lesson(page, timeout=120)
        assert re.fullmatch(rf"/user/{USER}/proxy/\d+/deployments/[\w.-]+", src), src
        check_embedded_viewer(page, url, src, WAIT_MS)

        # The same page on its own tab, where a student would follow the link.
        viewer = context.new_page()
        viewer.on("console", lambda m: m.type == "error" and errors.append(m.text))
        viewer.goto(url + src)
        expect(viewer.locator("#status")).to_have_text("Connected", timeout=WAIT_MS)
        viewer.locator("#log li[data-line]").first.wait_for(state="attached", timeout=WAIT_MS)
        assert viewer.evaluate("window.logstreamViewer.transport") == "websocket"
        assert errors == [], errors
    except Exception:
        print(Path(log_path).read_text()[-4000:])
        raise
    finally:
        context.close()
