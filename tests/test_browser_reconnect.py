"""What the browser's own Socket.IO client does when the server goes away, in a real Chromium.

A page of the server loads only the bundled client
(``static/vendor/socket.io.min.js``, over WebSocket, with its default
reconnection options) and none of the viewer's code. It records the frames
it receives, its ``disconnect`` reasons and whether it will reconnect
(``socket.active``). Lesson 07 states what these tests show.
"""

import pytest

from logstream.support import wait_until
from logstream.web.server import start_server
from test_browser import browser  # noqa: F401  (the module's one Chromium)

pytestmark = pytest.mark.browser

PROBE = """
  window.events = [];
  window.socket = io({ transports: ["websocket"] });
  socket.on("connect", () => events.push(["connect", socket.id]));
  socket.on("disconnect", (reason) => events.push(["disconnect", reason, socket.active]));
  socket.io.on("reconnect_attempt", (n) => events.push(["reconnect_attempt", n]));
"""


def open_probe(browser, url):  # noqa: F811
    """Open the probe page on the server at url; return it and the frames it receives."""
    page = browser.new_page()
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload)))
    # Any page of the server's own origin will do; a page the test made up
    # would be blocked by Chromium's local network access checks.
    page.goto(f"{url}/healthz")
    page.add_script_tag(url="/static/vendor/socket.io.min.js")
    page.add_script_tag(content=PROBE)
    wait_until(lambda: kinds(page) == ["connect"], what="the probe to connect")
    return page, frames


def events(page):
    return page.evaluate("window.events")


def kinds(page):
    return [event[0] for event in events(page)]


def test_after_the_server_stops_and_comes_back_the_browser_client_reconnects(browser, tmp_path):  # noqa: F811
    before = start_server(data_dir=tmp_path, port=0, quiet=True)
    after = None
    try:
        page, frames = open_probe(browser, before.url)
        first_sid = events(page)[0][1]
        before.stop()
        wait_until(lambda: "disconnect" in kinds(page), what="the client to see the close")
        # The server said goodbye at the Engine.IO level ("1"), not with a
        # Socket.IO disconnect packet ("41"). (A quick first retry may reach
        # the server while its port is still closing; its frames come after.)
        assert "1" in frames and "41" not in frames, frames
        assert events(page)[1] == ["disconnect", "transport close", True], events(page)
        wait_until(lambda: "reconnect_attempt" in kinds(page), what="a reconnect attempt")

        connects = kinds(page).count("connect")
        after = start_server(data_dir=tmp_path, port=before.port, quiet=True)
        wait_until(lambda: kinds(page).count("connect") > connects, timeout=15,
                   what="the client to reconnect by itself")
        second_sid = [event for event in events(page) if event[0] == "connect"][-1][1]
        assert second_sid != first_sid, "a reconnect is a new connection, with a new sid"
        page.close()
    finally:
        before.stop()
        if after is not None:
            after.stop()


def test_after_a_socketio_disconnect_the_browser_client_stays_away(browser, tmp_path):  # noqa: F811
    server = start_server(data_dir=tmp_path, port=0, quiet=True)
    try:
        page, frames = open_probe(browser, server.url)
        sid = events(page)[0][1]
        server.app.extensions["socketio"].server.disconnect(sid)
        wait_until(lambda: "disconnect" in kinds(page), what="the client to see the disconnect")
        assert "41" in frames, frames
        # socket.active False: the client itself says it will not reconnect.
        assert events(page)[1] == ["disconnect", "io server disconnect", False], events(page)
        assert page.evaluate("socket.connected || socket.active") is False
        page.close()
    finally:
        server.stop()
