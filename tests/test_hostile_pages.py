"""A hostile page or file: no cross-origin writes, no rebinding, no token leaks, no blocking FIFO."""

import os

import httpx
import pytest
import websocket

from conftest import RawClient, wait_until
from hostilehelp import TOKEN, serve_subprocess
from logstream.support.host import free_port
from logstream.web.limits import Limits


# -- POST /deployments -------------------------------------------------------------------

def test_deployments_are_created_from_this_origin_only(make_server):
    server = make_server(line_interval=0.01)
    http = httpx.Client(base_url=server.url, timeout=10, headers={"Accept": "application/json"})
    for headers in ({"Origin": "http://evil.example"},
                    {"Origin": f"http://127.0.0.1:{free_port()}"},  # another port of this host
                    {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        refused = http.post("/deployments", headers=headers)
        assert refused.status_code == 403, headers
        assert "same origin" in refused.json()["message"]
    assert list(server.data_dir.iterdir()) == []
    ok = http.post("/deployments", headers={"Origin": server.url,
                                            "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 201
    assert http.post("/deployments").status_code == 201  # curl sends neither header
    http.close()


def test_deployments_are_rate_limited_capped_and_pruned(make_server):
    server = make_server(line_interval=5, limits=Limits(
        deployments_per_second=1, deployment_burst=5, max_simulations=3,
        max_simulation_files=4))
    http = httpx.Client(base_url=server.url, timeout=10, headers={"Accept": "application/json"})
    codes = [http.post("/deployments").status_code for _ in range(50)]
    assert codes[:3] == [201] * 3
    refused = http.post("/deployments")
    assert refused.status_code == 429
    assert len(server.app.extensions["logstream"].simulator.running()) == 3
    assert codes.count(201) == 3
    server.app.extensions["logstream"].simulator.stop()
    # Finished ones are pruned, oldest first, once more are started.
    server2 = make_server(data_dir=server.data_dir / "fast", line_interval=0,
                          limits=Limits(deployments_per_second=1000, deployment_burst=1000,
                                        max_simulations=3, max_simulation_files=4))
    made = []
    for _ in range(10):
        wait_until(lambda: len(server2.app.extensions["logstream"].simulator.running()) < 3)
        response = http.post(server2.url + "/deployments")
        assert response.status_code == 201
        made.append(response.json()["deployment_id"])
    wait_until(lambda: not server2.app.extensions["logstream"].simulator.running())
    http.post(server2.url + "/deployments")
    wait_until(lambda: len(list(server2.data_dir.glob("*.log"))) <= 4,
               message="old deployments to be pruned")
    assert made[-1] + ".log" in os.listdir(server2.data_dir)
    assert made[0] + ".log" not in os.listdir(server2.data_dir)
    http.close()


# -- DNS rebinding ------------------------------------------------------------------------

def test_under_jupyterhub_any_host_name_is_answered(make_server, monkeypatch):
    # Reached only through the hub's proxy, which forwards the hub's own name.
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    server = make_server()
    assert httpx.get(server.url + "/api/deployments", timeout=10,
                     headers={"Host": "hub.example.org"}).status_code == 200


def test_a_rebound_host_name_is_refused_on_every_route(make_server):
    server = make_server()
    (server.data_dir / "app.log").write_text("private\n")
    rebound = {"Host": f"rebind.test:{server.port}"}
    for path in ("/", "/api/deployments", "/deployments/app", "/deployments/app/events",
                 "/socket.io/?EIO=4&transport=polling", "/static/viewer.js"):
        response = httpx.get(server.url + path, headers=rebound, timeout=10)
        assert response.status_code == 400, path
        assert "--allowed-host" in response.text
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(
            server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
            host=f"rebind.test:{server.port}", timeout=10)
    for host in ("localhost", "127.0.0.1", "[::1]"):
        response = httpx.get(server.url + "/api/deployments", timeout=10,
                             headers={"Host": f"{host}:{server.port}"})
        assert response.status_code == 200, host
    allowed = make_server(allowed_hosts=["rebind.test"])
    assert httpx.get(allowed.url + "/api/deployments", timeout=10,
                     headers={"Host": f"rebind.test:{allowed.port}"}).status_code == 200


# -- no token leaks ---------------------------------------------------------------------

def test_the_token_appears_in_no_log_page_or_banner(make_server, tmp_path):
    server = make_server(token=TOKEN)
    (server.data_dir / "app.log").write_text("line\n")
    http = httpx.Client(base_url=server.url, timeout=10)
    http.get("/", params={"token": "a-wrong-guess"})
    page = http.get("/deployments/app", params={"token": TOKEN})
    assert page.status_code == 200
    assert TOKEN not in page.text and "data-token" not in page.text
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    http.get("/deployments/app/events", params={"token": TOKEN, "since": "-1"})
    log = "\n".join(server.logs())
    assert "GET /deployments/app" in log
    assert TOKEN not in log and "a-wrong-guess" not in log
    http.close()

    process, url = serve_subprocess(tmp_path, "--token", TOKEN)
    process.terminate()
    out, err = process.communicate(timeout=15)
    assert url in out and TOKEN not in out + err


# -- hostile files -------------------------------------------------------------------------

def test_a_fifo_renamed_over_a_streamed_log_does_not_block_streaming(make_server, tmp_path):
    # Polling: open() is the same with either watcher, and polling needs
    # no inotify instance from a machine where other processes may hold them all.
    server = make_server(use_inotify=False, poll_interval=0.05)
    log = server.data_dir / "app.log"
    log.write_text("one\n")
    (server.data_dir / "other.log").write_text("other\n")
    client = RawClient(server.url)
    fifo = tmp_path / "fifo"
    try:
        assert client.call("start_streaming", {"deployment_id": "app"})["type"] == \
            "streaming_started"
        os.mkfifo(fifo)
        os.rename(fifo, log)
        wait_until(lambda: any(s["type"] == "deleted" for s in client.of("status")),
                   message="the FIFO to count as no log at all")
        # The hub is not held: others join and stream at once.
        other = RawClient(server.url)
        try:
            assert other.call("start_streaming", {"deployment_id": "other"},
                              timeout=5)["type"] == "streaming_started"
            # A FIFO is no log: answered at once, not after a blocked open().
            assert other.call("start_streaming", {"deployment_id": "app"},
                              timeout=5)["error"] == "unknown_deployment"
            wait_until(lambda: other.messages("other") == {1: "other"})
        finally:
            other.close()
        replacement = server.data_dir / "new.tmp"
        replacement.write_text("back\n")
        os.rename(replacement, log)
        wait_until(lambda: "back" in client.messages("app").values(),
                   message="a regular file to stream again")
    finally:
        client.close()
        if log.is_fifo():
            try:
                # Unblock a follower stuck opening it, so the server can stop.
                os.close(os.open(log, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass  # no reader: nothing is stuck
