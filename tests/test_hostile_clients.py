"""A hostile client: auth that fails closed, one connection cap, connections let go."""

import socket
import threading

import httpx
import psutil
import pytest
import socketio
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RawClient, wait_until
from hostilehelp import (TOKEN, connected_sids, serve_subprocess,  # noqa: F401
                         sse_request, ws_session)
from logstream.clients.logclient import LogClient
from logstream.web.limits import Limits
from logstream.web.server import start_server


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


def json_containers(children):
    # Named, not a lambda: see the same function in test_reliability.py.
    return st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children,
                                                            max_size=3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    # Unpaired surrogates: hypothesis leaves them out of text() by default.
    | st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
    json_containers, max_leaves=6)


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


@pytest.mark.parametrize("event", ["disconnect", "connect"])
def test_events_named_like_the_connection_ones_are_unknown_events(make_server, event):
    # python-socketio hands a client's "disconnect" event to the disconnect
    # handler: it used to let go of the client's place under the cap and its
    # streams while the client stayed connected.
    server = make_server(limits=Limits(max_connections=1))
    (server.data_dir / "a.log").write_text("one\n")
    client = RawClient(server.url)
    try:
        assert client.call("start_streaming", {"deployment_id": "a"})["next_line"] == 2
        reply = client.call(event, {"reason": "client disconnect"})
        assert reply["error"] == "unknown_event" and event in reply["message"]
        assert client.sio.connected
        with pytest.raises(socketio.exceptions.ConnectionError, match="full"):
            LogClient(server.url).connect()
        with open(server.data_dir / "a.log", "a") as log:
            log.write("two\n")
        wait_until(lambda: 2 in client.line_numbers("a"), message="the next line")
    finally:
        client.close()


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
