"""A hostile client or page on 127.0.0.1: it can't get in, exhaust memory, or hold connections."""

import json
import os
import socket
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest
import socketio
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RawClient, wait_until
from logstream.clients.logclient import LogClient
from logstream.support.host import free_port
from logstream.web.limits import Limits
from logstream.web.server import start_server

TOKEN = "s3cret"


@pytest.fixture
def make_server(tmp_path):
    """Start servers with custom options; stopped after the test."""
    started = []

    def make(**options):
        handle = start_server(data_dir=options.pop("data_dir", tmp_path), port=0, **options)
        started.append(handle)
        return handle

    yield make
    for handle in started:
        handle.stop()


def connected_sids(server):
    """Return the Socket.IO sessions the server counts as connected to its namespace."""
    return list(server.socketio.server.manager.rooms.get("/", {}).get(None, {}))


def ws_session(server, auth=None, rcvbuf=None):
    """Open a raw Engine.IO WebSocket and ask to join the namespace; return (ws, reply)."""
    options = {"sockopt": [(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)]} if rcvbuf else {}
    ws = websocket.create_connection(
        server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        timeout=10, **options)
    ws.recv()  # the Engine.IO open packet
    ws.send("40" + (json.dumps(auth) if auth is not None else ""))
    return ws, ws.recv()


# -- auth fails closed -----------------------------------------------------------

@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    with start_server(data_dir=tmp_path_factory.mktemp("auth"), port=0, token=TOKEN) as handle:
        yield handle


@pytest.mark.parametrize("auth", [
    {"token": "\ud800"},          # an unpaired surrogate: the check used to raise
    {"token": "\udfff" + TOKEN},
    {"token": ["s3cret"]},
    {"token": {"token": TOKEN}},
    {"token": 12345},
    {"token": None},
    {"token": TOKEN + "\x00"},
    ["token", TOKEN],
    "s3cret",
])
def test_an_auth_payload_that_is_not_the_token_is_refused(token_server, auth):
    ws, reply = ws_session(token_server, auth)
    try:
        assert reply.startswith("44"), f"connected with auth {auth!r}: {reply}"
        assert "needs a token" in reply
        assert connected_sids(token_server) == []
    finally:
        ws.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    # Unpaired surrogates: hypothesis leaves them out of text() by default.
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=json_values, extra=st.dictionaries(st.text(max_size=5), json_values, max_size=2))
def test_fuzzed_auth_payloads_never_connect_a_client_without_the_token(token_server, token, extra):
    auth = dict(extra, token=token)
    if auth.get("token") == TOKEN:
        return
    ws, reply = ws_session(token_server, auth)
    try:
        assert reply.startswith("44"), f"connected with auth {auth!r}"
        assert connected_sids(token_server) == []
    finally:
        ws.close()


# -- connection budget -------------------------------------------------------------

def test_simultaneous_connects_cannot_get_past_the_cap(make_server):
    server = make_server(limits=Limits(max_connections=5))
    start = threading.Barrier(60)
    replies, sockets = [], []
    lock = threading.Lock()

    def attempt():
        ws = websocket.create_connection(
            server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
            timeout=20)
        ws.recv()
        start.wait(20)
        ws.send("40")
        reply = ws.recv()
        with lock:
            replies.append(reply)
            sockets.append(ws)

    threads = [threading.Thread(target=attempt) for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        accepted = [r for r in replies if r.startswith("40")]
        assert len(replies) == 60
        assert len(accepted) == 5
        assert len(connected_sids(server)) == 5
        assert all("full" in r for r in replies if not r.startswith("40"))
        assert any("Limits.max_connections" in line for line in server.logs())
    finally:
        for ws in sockets:
            ws.close()


def sse_request(server, path, host="127.0.0.1"):
    """Open an SSE request on a raw socket and return it with the response head."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{server.port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head.decode(errors="replace")


def test_sse_streams_count_toward_the_connection_cap(make_server):
    server = make_server(limits=Limits(max_connections=2))
    (server.data_dir / "a.log").write_text("x\n")
    first, head = sse_request(server, "/deployments/a/events")
    assert " 200 " in head.splitlines()[0]
    client = RawClient(server.url)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError, match="full"):
            LogClient(server.url).connect()
        refused = httpx.get(server.url + "/deployments/a/events", timeout=10)
        assert refused.status_code == 503 and "full" in refused.json()["message"]
    finally:
        client.close()
        first.close()
    wait_until(lambda: _sse_opens(server), message="a free slot once the others left")


def _sse_opens(server):
    sock, head = sse_request(server, "/deployments/a/events")
    sock.close()
    return " 200 " in head.splitlines()[0]


def test_an_sse_reader_that_never_reads_is_let_go(make_server):
    # A budget larger than the kernel's socket buffers, so the writes block
    # before the stream could end with a lagging status.
    server = make_server(test_config={"SSE_SEND_TIMEOUT": 1},
                         limits=Limits(max_backlog_bytes=32 << 20))
    (server.data_dir / "big.log").write_bytes((b"s" * 1023 + b"\n") * 20_000)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET /deployments/big/events?since=0 HTTP/1.1\r\n"
                 f"Host: 127.0.0.1:{server.port}\r\n\r\n".encode())
    clients = server.app.extensions["logstream"].clients
    wait_until(lambda: clients.count() == 1, message="the stream to start")
    # Its thread is blocked writing to a full socket; after the send
    # timeout it gives up, and the stream's places are free again.
    wait_until(lambda: clients.count() == 0, timeout=20, message="the reader to be let go")
    assert server.app.extensions["logstream"].hub.subscriber_count("big") == 0
    sock.close()


def test_streams_are_capped_across_the_whole_server(make_server):
    server = make_server(limits=Limits(max_streams=3))
    for name in "abcd":
        (server.data_dir / f"{name}.log").write_text("x\n")
    client = RawClient(server.url)
    try:
        for name in "ab":
            assert client.call("start_streaming", {"deployment_id": name})["type"] == \
                "streaming_started"
        sock, head = sse_request(server, "/deployments/c/events")
        assert " 200 " in head
        refused = client.call("start_streaming", {"deployment_id": "d"})
        assert refused["error"] == "too_many_streams" and "server" in refused["message"]
        over = httpx.get(server.url + "/deployments/d/events", timeout=10)
        assert over.status_code == 503 and "streams" in over.json()["message"]
        assert any("Limits.max_streams" in line for line in server.logs())
        # stopping one frees its place
        client.call("stop_streaming", {"deployment_id": "a"})
        assert client.call("start_streaming", {"deployment_id": "d"})["type"] == \
            "streaming_started"
        sock.close()
    finally:
        client.close()


# -- memory: backlogs bounded in bytes ----------------------------------------------

def serve_subprocess(data_dir, *args, preexec_fn=None):
    """Start `logstream serve` in its own process; return (process, url)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "logstream.cli", "serve", "--port", str(port),
         "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
    url = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            return httpx.get(url + "/healthz").status_code == 200
        except httpx.TransportError:
            return False
    wait_until(healthy, timeout=30, message="the server process to start")
    return process, url


def settled_rss(pid, ceiling, timeout=60):
    """Return the process's RSS once it stops changing (or passes ceiling)."""
    proc = psutil.Process(pid)
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append(proc.memory_info().rss)
        if samples[-1] > ceiling:
            break
        if len(samples) >= 6 and max(samples[-6:]) - min(samples[-6:]) < 1 << 20:
            break
        time.sleep(0.5)  # sampling a process from outside: nothing to wait on
    return samples[-1]


@pytest.mark.parametrize("line, count", [(b"x" * 1023, 12_000), (b"\xff" * 1023, 2_000)],
                         ids=["1KiB-lines", "invalid-utf8-lines"])
def test_a_client_that_never_reads_cannot_grow_the_server(tmp_path, line, count):
    # Invalid UTF-8 grows about 6 times on the wire (each byte becomes "\\ufffd").
    (tmp_path / "big.log").write_bytes((line + b"\n") * count)
    process, url = serve_subprocess(tmp_path)
    sockets = []
    try:
        baseline = psutil.Process(process.pid).memory_info().rss
        # Never reads: a small receive buffer, so the kernel can't hold the backlog.
        for _ in range(1):
            ws = websocket.create_connection(
                url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)], timeout=10)
            ws.recv()
            ws.send("40")
            ws.recv()
            sockets.append(ws)
            for i in range(60):
                ws.send(f'42{i}["start_streaming",{{"deployment_id":"big","since":0}}]')
                time.sleep(0.2)  # within the rate limit (5 a second), so each is served
        grown = settled_rss(process.pid, baseline + (1 << 30)) - baseline
        # One client's byte budget (4 MiB by default), the follower's reads
        # and what the allocator keeps: far below 60 copies of the history.
        assert grown < 80 << 20, f"the server grew by {grown >> 20} MiB"
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
    finally:
        for ws in sockets:
            ws.sock.close()
        process.terminate()
        process.communicate(timeout=15)


def test_sse_readers_that_never_read_cannot_grow_the_server(tmp_path):
    (tmp_path / "big.log").write_bytes((b"y" * 1023 + b"\n") * 12_000)
    process, url = serve_subprocess(tmp_path)
    port = int(url.rsplit(":", 1)[1])
    sockets = []
    try:
        baseline = psutil.Process(process.pid).memory_info().rss
        for _ in range(20):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /deployments/big/events?since=0 HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\n\r\n")
            sockets.append(sock)
        grown = settled_rss(process.pid, baseline + (1 << 30)) - baseline
        # 20 budgets of 4 MiB plus one read in flight each, not 20 histories.
        assert grown < 140 << 20, f"the server grew by {grown >> 20} MiB"
    finally:
        for sock in sockets:
            sock.close()
        process.terminate()
        process.communicate(timeout=15)


# -- connections let go --------------------------------------------------------------

def test_sessions_that_never_join_the_namespace_are_closed(make_server):
    server = make_server(token=TOKEN, limits=Limits(connect_timeout=1), ping_interval=1)
    threads_before = threading.active_count()
    sessions = []
    for i in range(30):
        if i % 2:
            ws, reply = ws_session(server, {"token": "wrong"})
            assert reply.startswith("44")  # refused, and the socket left open
        else:
            ws = websocket.create_connection(
                server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                timeout=10)
            ws.recv()  # opened Engine.IO, never asks for the namespace
        sessions.append(ws)
    for ws in sessions:
        frames = []
        while True:
            try:
                frame = ws.recv()
            except (websocket.WebSocketConnectionClosedException, OSError):
                break  # closed, perhaps before our closing frame could answer
            if not frame:
                break  # the server closed the connection
            frames.append(frame)
            assert len(frames) < 20, "the session was never closed"
            if frame == "2":
                ws.send("3")  # a live client: answers pings, still never joins
    wait_until(lambda: not server.socketio.server.eio.sockets, timeout=20,
               message="Engine.IO to forget the sessions")
    wait_until(lambda: threading.active_count() <= threads_before + 2, timeout=20,
               message="their threads to end")
    for ws in sessions:
        ws.close()


def test_the_server_raises_its_open_files_limit_to_the_hard_limit(tmp_path):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, soft)
    assert hard > low, "this machine allows no more than 256 open files"
    process, url = serve_subprocess(
        tmp_path, preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard)))
    try:
        limits = psutil.Process(process.pid).rlimit(psutil.RLIMIT_NOFILE)
        expected = hard if hard != resource.RLIM_INFINITY else max(low, 1 << 16)
        assert limits == (expected, hard)
    finally:
        process.terminate()
        process.communicate(timeout=15)


def test_idle_tcp_connections_are_closed_and_the_server_stays_reachable(make_server):
    server = make_server(header_timeout=1)
    threads_before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
            for _ in range(100)]
    assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200
    for sock in idle:
        assert sock.recv(1) == b""  # closed by the server, never sent a request
        sock.close()
    wait_until(lambda: threading.active_count() <= threads_before + 2, timeout=20,
               message="their threads to end")
    # A slow but real request still gets through.
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                 "Connection: close\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    sock.close()


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
