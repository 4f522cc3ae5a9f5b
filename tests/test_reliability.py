"""Faults, load and hostile input: nothing lost, nothing crashes, no one let in."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest
import socketio
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import RawClient, append, fds_opened_since, open_fds, wait_healthy, wait_until
from logstream.clients.logclient import LogClient
from logstream.core.deployments import LineCounts, list_deployments
from logstream.core import lineindex
from logstream.web import internals
from logstream.web.limits import Limits
from logstream.web.server import start_server
from logstream.support.host import free_port


# -- access ----------------------------------------------------------------

def test_token_guards_routes_streams_and_connections(make_server, request):
    server = make_server(token="s3cret")
    (server.data_dir / "app.log").write_text("private line\n")
    http = httpx.Client(base_url=server.url, timeout=10)
    request.addfinalizer(http.close)
    assert http.get("/healthz").status_code == 200
    for path in ("/", "/api/deployments", "/deployments/app", "/deployments/app/events"):
        response = http.get(path)
        assert response.status_code == 401, path
        assert "needs a token" in response.json()["message"]
        assert http.get(path, params={"token": "wrong"}).status_code == 401
    assert http.get("/api/deployments", headers={"Authorization": "Bearer s3cret"}).json()[0]["id"] == "app"

    # the page given ?token= remembers it in an HttpOnly cookie, not in the page
    page = http.get("/deployments/app", params={"token": "s3cret"})
    assert page.status_code == 200 and "s3cret" not in page.text
    assert "HttpOnly" in page.headers["set-cookie"]
    assert http.get("/api/deployments").status_code == 200  # the cookie now carries it

    with pytest.raises(socketio.exceptions.ConnectionError, match="needs a token"):
        LogClient(server.url).connect()
    with pytest.raises(socketio.exceptions.ConnectionError):
        LogClient(server.url, token="wrong").connect()
    with LogClient(server.url, token="s3cret") as client:
        assert client.follow("app").get(timeout=5) == (1, "private line")


def test_cors_allowlist(make_server):
    open_server = make_server()
    allowed = make_server(cors=["https://teacher.example"])
    handshake = "/socket.io/?EIO=4&transport=polling"
    # same-origin only by default
    assert httpx.get(open_server.url + handshake,
                     headers={"Origin": "https://evil.example"}).status_code == 400
    assert httpx.get(allowed.url + handshake,
                     headers={"Origin": "https://evil.example"}).status_code == 400
    ok = httpx.get(allowed.url + handshake, headers={"Origin": "https://teacher.example"})
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == "https://teacher.example"


def test_non_loopback_bind_without_token_warns(monkeypatch):
    from click.testing import CliRunner

    from logstream import cli
    from logstream.web import server

    served = []
    monkeypatch.setattr(server, "serve_forever", lambda *a, **k: served.append(k))
    warned = CliRunner().invoke(cli.main, ["serve", "--host", "0.0.0.0"])
    assert "without --token" in warned.output and served
    quiet = CliRunner().invoke(cli.main, ["serve", "--host", "0.0.0.0", "--token", "t"])
    assert "without --token" not in quiet.output
    assert served[-1]["token"] == "t"


# -- limits ----------------------------------------------------------------

def test_ping_rate_limit_answers_with_a_clear_error(make_server):
    server = make_server(limits=Limits(pings_per_second=1, ping_burst=3))
    client = RawClient(server.url)
    replies = [client.call("ping", i) for i in range(6)]
    assert [("echo" in r) for r in replies[:3]] == [True, True, True]
    refused = [r for r in replies if r.get("error") == "rate_limited"]
    assert refused and "slow down" in refused[0]["message"]
    client.close()


def test_streams_per_client_and_connections_per_server_are_capped(make_server):
    server = make_server(limits=Limits(streams_per_client=2, max_connections=2))
    for name in ("a", "b", "c"):
        (server.data_dir / f"{name}.log").write_text("x\n")
    first = RawClient(server.url)
    assert first.call("start_streaming", {"deployment_id": "a"})["type"] == "streaming_started"
    assert first.call("start_streaming", {"deployment_id": "b"})["type"] == "streaming_started"
    refused = first.call("start_streaming", {"deployment_id": "c"})
    assert refused["error"] == "too_many_streams" and "stop one first" in refused["message"]
    # re-joining one you already stream is not a new stream
    assert first.call("start_streaming", {"deployment_id": "b", "since": 0})["type"] == "streaming_started"
    second = RawClient(server.url)
    with pytest.raises(socketio.exceptions.ConnectionError, match="full"):
        LogClient(server.url).connect()
    second.close()
    wait_until(lambda: _connects(server.url), message="a free slot after a disconnect")
    first.close()


def _connects(url):
    try:
        RawClient(url).close()
        return True
    except socketio.exceptions.ConnectionError:
        return False


def test_oversized_messages_are_refused_and_others_carry_on(make_server):
    server = make_server()
    (server.data_dir / "d.log").write_text("")
    bystander = RawClient(server.url)
    bystander.call("start_streaming", {"deployment_id": "d"})
    ws = websocket.create_connection(
        server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket")
    ws.recv()
    ws.send("40")
    ws.recv()
    ws.send('42["ping",' + json.dumps("x" * 200_000) + "]")
    raw_socket = ws.sock  # websocket-client forgets it, unclosed, when the peer closes
    try:
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError,
                            OSError)):
            for _ in range(10):  # the server closes the connection
                if ws.recv() in ("", None):
                    raise websocket.WebSocketConnectionClosedException("closed")
    finally:
        ws.close()
        raw_socket.close()
    append(server.data_dir / "d.log", "still streaming\n")
    wait_until(lambda: bystander.messages().get(1) == "still streaming")
    bystander.close()


# -- fuzzing ---------------------------------------------------------------

def json_containers(children):
    # A named function, not a lambda: hypothesis describes a lambda by
    # parsing its source with ast.parse, which CPython 3.11 can fail at with
    # a spurious SystemError while other threads run (python/cpython#106905).
    return (st.lists(children, max_size=4)
            | st.dictionaries(st.sampled_from(["deployment_id", "since", "batch", "x", "\x00"])
                              | st.text(max_size=8), children, max_size=4))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=50) | st.just("\x00") | st.just("../../etc/passwd"),
    json_containers, max_leaves=10)


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz")
    (data_dir / "known.log").write_text("a\nb\n")
    with start_server(data_dir=data_dir, port=0,
                      limits=Limits(pings_per_second=1e6, ping_burst=10**6,
                                    joins_per_second=1e6, join_burst=10**6)) as server:
        client = RawClient(server.url)
        yield server, client
        client.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(["start_streaming", "stop_streaming", "ping", "bogus", "connect",
                               "disconnect"]),
       payload=json_values)
def test_fuzzed_events_never_crash_the_server(fuzz_target, event, payload):
    server, client = fuzz_target
    reply = client.call(event, payload, timeout=10)
    if event == "ping":
        assert reply.get("echo") == payload or reply.get("error")
    else:
        assert reply is None or "error" in reply or reply.get("type", "").startswith("streaming_")
        if reply and "error" in reply:
            assert reply["message"] and isinstance(reply["message"], str)
    assert client.sio.connected
    assert client.call("ping", "alive")["echo"] == "alive"


# -- churn and slow consumers ------------------------------------------------

def test_churn_leaves_threads_and_fds_at_baseline(make_server):
    # Engine.IO keeps a closed connection's heartbeat thread until its next
    # ping is due; a 1 s interval lets the test see the baseline soon.
    server = make_server(ping_interval=1)
    (server.data_dir / "churn.log").write_text("".join(f"{i}\n" for i in range(100)))
    sio_client = RawClient(server.url)  # one warm connection, so pools exist
    sio_client.call("ping")
    threads_before = threading.active_count()
    fds_before = open_fds()
    for i in range(300):
        client = socketio.SimpleClient()
        client.connect(server.url, transports=["websocket"])
        client.call("start_streaming", {"deployment_id": "churn", "batch": i % 2 == 0})
        client.disconnect()
    hub = server.app.extensions["logstream"].hub
    wait_until(lambda: hub.followed() == set(), message="the follower to be released")
    wait_until(lambda: threading.active_count() <= threads_before + 2,
               message="threads to return to baseline")
    wait_until(lambda: not fds_opened_since(fds_before), message="fds to return to baseline")
    sio_client.close()


@pytest.mark.parametrize("token", [None, "s3cret"])
def test_socketio_events_leave_no_traceback_cycles(make_server, token):
    # With a token, a connection is checked in a Flask request context built
    # from its handshake request. Had its URL match failed, each would leave
    # a NotFound whose traceback ties the request, its contexts and dozens of
    # frames into a cycle that only the cyclic garbage collector frees (~57
    # objects of garbage each); events must leave none either.
    import collections
    import gc
    import types

    server = make_server(token=token)
    auth = {"token": token} if token else None
    (server.data_dir / "quiet.log").write_text("one\n")
    warm = RawClient(server.url, auth=auth)  # first-use objects exist before counting
    warm.call("start_streaming", {"deployment_id": "quiet"})
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what the collector finds, to look at
    viewers = []
    try:
        for _ in range(20):
            viewers.append(RawClient(server.url, auth=auth))
        for viewer in viewers:
            assert viewer.call("start_streaming", {"deployment_id": "quiet"})["next_line"] == 2
            assert viewer.call("ping")
        gc.collect()
        garbage = collections.Counter(type(item).__name__ for item in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        for viewer in viewers + [warm]:
            viewer.close()
    # A failed match leaves a request context and four tracebacks a viewer
    # (a connection checked); what other tests' servers drop meanwhile may add a few.
    assert garbage["RequestContext"] < len(viewers) / 2, garbage.most_common(10)
    assert garbage[types.TracebackType.__name__] < len(viewers) / 2, garbage.most_common(10)


def join_and_stall(server, deployment_id):
    """Return a raw WebSocket joined to deployment_id whose tiny receive buffer
    lets it stop reading without the kernel absorbing the backlog for it."""
    ws = websocket.create_connection(
        server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    ws.recv()
    ws.send("40")
    ws.recv()
    ws.send(f'421["start_streaming",{{"deployment_id":"{deployment_id}"}}]')
    while not ws.recv().startswith("431"):
        pass  # joined: its ack arrived
    return ws


def test_a_slow_consumer_is_told_it_lags_and_catches_up_while_others_get_everything(make_server):
    # About 1,000 of its lines: each catch-up round brings that many at least.
    server = make_server(limits=Limits(max_backlog_bytes=1_000_000))
    log = server.data_dir / "busy.log"
    log.write_text("")
    fast = LogClient(server.url).connect()
    fast_lines = []
    fast_sub = fast.follow("busy", batch=True, on_line=lambda n, text: fast_lines.append(n))

    # A client that joins and then stops reading its socket (a small receive
    # buffer, so the kernel can't absorb the backlog for it).
    ws = join_and_stall(server, "busy")
    raw_socket = ws.sock
    total = 30_000
    payload = "z" * 1000
    with open(log, "a") as fp:
        for i in range(1, total + 1):
            fp.write(f"{i} {payload}\n")
            if i % 1000 == 0:
                fp.flush()
    # The fast client keeps up; should it ever fall behind too (a busy
    # machine), it catches up by itself, and still gets each line once.
    wait_until(lambda: fast_sub.last_line == total, timeout=60,
               message="the fast client to get every line")
    assert fast_lines == list(range(1, total + 1))
    outlet_lines = server.app.extensions["logstream"].hub.outlets[0]
    slow_sid = [sid for sid in list(server.socketio.server.manager.rooms["/"].get(None, {}))
                if sid != fast.sio.get_sid()]
    for sid in slow_sid:
        # Its queue stayed bounded: the backlog limit plus at most one read
        # (1 MiB of 1000-byte lines, encoded), not the 30 MB written.
        assert outlet_lines.backlog(sid) <= 1_000_000 + 1.2 * (1 << 20)

    # Now it reads: it finds a lagging status, and catches up with since.
    seen = []
    lagging = None
    ws.settimeout(10)
    while lagging is None:
        frame = ws.recv()
        if frame == "2":
            ws.send("3")
            continue
        if frame.startswith("42"):
            event, data = json.loads(frame[2:])
            if event == "new_log":
                seen.append(data["line"])
            elif event == "status" and data["type"] == "lagging":
                lagging = data
    ws.close()
    raw_socket.close()
    assert seen == list(range(1, len(seen) + 1)), "what it got before lagging is in order"
    assert lagging["last_line"] >= len(seen) and "since" in lagging["message"]
    with LogClient(server.url) as client:
        sub = client.follow("busy", since=len(seen))
        assert sub.wait_for_line(total, timeout=60)
        assert sub.last_line == total
    fast.close()


def test_log_client_catches_up_over_a_huge_history_bounded_by_the_backlog(make_server):
    server = make_server(limits=Limits(max_backlog_bytes=50_000))
    log = server.data_dir / "history.log"
    log.write_text("".join(f"h {i}\n" for i in range(1, 10_001)))
    with LogClient(server.url) as client:
        lines = []
        sub = client.follow("history", since=0, batch=True,
                            on_line=lambda n, text: lines.append(n))
        assert sub.wait_for_line(10_000, timeout=60)
        assert lines == list(range(1, 10_001))
        assert any(s["type"] == "lagging" for s in sub.statuses)


def test_history_waits_while_all_clients_backlogs_are_over_the_servers_budget(make_server):
    """Histories are each client's own bytes: past Limits.max_total_backlog_bytes
    queued for all clients together, a join gets `lagging` (ask again) instead of history."""
    server = make_server(limits=Limits(max_total_backlog_bytes=256 << 10))
    (server.data_dir / "big.log").write_text("".join(f"{i} {'y' * 100}\n" for i in range(1, 5001)))
    busy = server.data_dir / "busy.log"
    busy.write_text("")
    stalled = join_and_stall(server, "busy")  # from now on it never reads
    sockets = server.socketio.server.eio.sockets

    def queued():
        return sum(s.queue.bytes for s in list(sockets.values()) if not s.closed)

    # A viewer that reads says when the server has sent what was written:
    # the kernel's send buffer may take the first megabytes for the stalled
    # one, so its queue alone doesn't show progress.
    reader = RawClient(server.url)
    reader.call("start_streaming", {"deployment_id": "busy", "batch": True})
    written = 0
    with open(busy, "a") as out:
        # Live lines back up behind the stalled client, past the budget even
        # with the 1 MiB its writer holds outside the count.
        while queued() <= 2 << 20:
            assert written < 60_000, "60 MB written and the stalled client's queue stays short"
            out.write(("z" * 1000 + "\n") * 1000)
            out.flush()
            written += 1000
            wait_until(lambda: reader.line_numbers()[-1:] == [written],
                       message="the reading viewer to get the lines")
    # The server sums only the queues that hold packets; it agrees with a
    # walk over every session.
    wait_until(lambda: internals.all_queued_bytes(server.socketio) == queued() > 2 << 20,
               message="the server's own count of what is queued")
    other = RawClient(server.url)
    reply = other.call("start_streaming", {"deployment_id": "big", "since": 0, "batch": True})
    assert reply["type"] == "streaming_started"
    wait_until(lambda: any(s["type"] == "lagging" for s in other.of("status")),
               message="a lagging status")
    assert other.line_numbers() == [], "no history while the budget is spent"
    stalled.sock.close()
    wait_until(lambda: queued() < 256 << 10, message="the stalled client's session to close")
    wait_until(lambda: internals.all_queued_bytes(server.socketio) < 256 << 10,
               message="the closed session's queue to leave the server's count")
    # Asked again, history flows, still within the budget: a client that
    # asks from its last line whenever told it lags gets every line once.
    last = 0
    for _ in range(10):
        lagging = len([s for s in other.of("status") if s["type"] == "lagging"])
        other.call("start_streaming", {"deployment_id": "big", "since": last, "batch": True})
        wait_until(lambda: other.line_numbers()[-1:] == [5000] or len(
            [s for s in other.of("status") if s["type"] == "lagging"]) > lagging,
            message="the history, or a lagging status")
        last = other.line_numbers()[-1] if other.line_numbers() else 0
        if last == 5000:
            break
    assert other.line_numbers() == list(range(1, 5001))
    other.close()


# -- hostile logs ------------------------------------------------------------

def test_binary_garbage_and_a_deleted_file_do_not_break_streaming(make_server):
    server = make_server()
    log = server.data_dir / "junk.log"
    log.write_text("")
    client = RawClient(server.url)
    client.call("start_streaming", {"deployment_id": "junk"})
    garbage = bytes(range(256)) * 64
    with open(log, "ab") as fp:
        fp.write(garbage.replace(b"\n", b"") + b"\n" + b"\x00\x00after\n")
    wait_until(lambda: len(client.of("new_log")) == 2)
    assert client.messages()[2] == "\x00\x00after"
    os.unlink(log)
    wait_until(lambda: any(s["type"] == "deleted" for s in client.of("status")))
    log.write_text("back again\n")
    wait_until(lambda: "back again" in [d["message"] for d in client.of("new_log")])
    assert client.call("ping")["echo"] is None
    client.close()


def test_thousands_of_files_are_listed_without_rereading_them(tmp_path, monkeypatch):
    for i in range(3000):
        (tmp_path / f"d{i}.log").write_text("x\n" * (i % 7))
    counts = LineCounts()
    first = list_deployments(tmp_path, line_counts=counts)
    assert len(first) == 3000
    append(tmp_path / "d5.log", "one more\n")
    opened = []
    real_open = lineindex.open_no_follow
    monkeypatch.setattr(lineindex, "open_no_follow",
                        lambda path: opened.append(os.fspath(path)) or real_open(path))
    read_before = lineindex.INDEXES.bytes_read
    again = {d["id"]: d for d in list_deployments(tmp_path, line_counts=counts)}
    assert opened == [os.path.join(tmp_path, "d5.log")]  # only the file that changed
    assert again["d5"]["lines"] == 5 + 1
    # ...and of it, only the line added since.
    assert lineindex.INDEXES.bytes_read - read_before == len("one more\n")


# -- production server --------------------------------------------------------

def test_gunicorn_with_threads_serves_and_streams(tmp_path):
    port = free_port()
    (tmp_path / "prod.log").write_text("first\n")
    env = dict(os.environ, LOGSTREAM_DATA_DIR=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "--threads", "50",
         "-b", f"127.0.0.1:{port}", "logstream.web.wsgi:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, "gunicorn")
        with LogClient(url) as client:
            sub = client.follow("prod")
            assert sub.get(timeout=10) == (1, "first")
            append(tmp_path / "prod.log", "through gunicorn\n")
            assert sub.get(timeout=10) == (2, "through gunicorn")
            assert client.ping() > 0
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def test_sse_catches_up_over_a_huge_history_in_bounded_pieces(make_server):
    from httpx_sse import connect_sse

    # About 1,500 of its ~50-byte frames: 250 KB of history takes a few rounds.
    server = make_server(limits=Limits(max_backlog_bytes=80_000))
    (server.data_dir / "big.log").write_text("".join(f"b {i}\n" for i in range(1, 5001)))
    received, last_id, rounds = [], "0", 0
    with httpx.Client(base_url=server.url, timeout=10) as http:
        while len(received) < 5000 and rounds < 20:
            rounds += 1
            # What EventSource does by itself: reconnect with Last-Event-ID.
            with connect_sse(http, "GET", "/deployments/big/events",
                             headers={"Last-Event-ID": last_id}) as source:
                for event in source.iter_sse():
                    if event.id:
                        last_id = event.id
                    if event.event == "message":
                        received.append(json.loads(event.data)["line"])
                    if len(received) == 5000:
                        break
    assert received == list(range(1, 5001))
    # The history was cut at least once; a round can carry more than the
    # backlog when the reader drains the queue while it fills.
    assert 2 <= rounds <= 5


def test_sse_slow_reader_is_cut_off_and_told_where_to_resume(make_server):
    server = make_server(limits=Limits(max_backlog_bytes=250_000))
    log = server.data_dir / "fast.log"
    log.write_text("")
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(b"GET /deployments/fast/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sse_outlet = server.app.extensions["logstream.web.sse"]
    wait_until(lambda: sse_outlet._queues_of("fast"), message="the stream to attach")
    with open(log, "a") as fp:
        for i in range(1, 20_001):
            fp.write(f"{i} {'q' * 500}\n")
    wait_until(lambda: not sse_outlet._queues_of("fast"), timeout=30,
               message="the slow reader to be dropped")
    sock.settimeout(10)
    data = b""
    while b'"type": "lagging"' not in data:
        chunk = sock.recv(1 << 20)
        assert chunk, "the stream ended without a lagging status"
        data += chunk
    sock.close()
    tail = data[data.index(b"lagging") - 200:].decode(errors="replace")
    assert "event: status" in tail and "Last-Event-ID" in tail
