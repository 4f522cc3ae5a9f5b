"""LogClient across server restarts and truncations: every line once, never stalled."""

from conftest import append, wait_until
from logstream.clients.logclient import LogClient
from logstream.web.server import close_connections, start_server


def test_a_client_comes_back_after_a_restart_and_keeps_streaming(tmp_path):
    log = tmp_path / "app.log"
    log.write_text("before 1\n")
    first = start_server(data_dir=tmp_path)
    client = LogClient(first.url).connect()
    try:
        sub = client.follow("app", since=0)
        assert sub.get(5) == (1, "before 1")
        first.stop()
        wait_until(lambda: not client.connected)
        append(log, "while down 2\n")
        with start_server(data_dir=tmp_path, port=first.port):
            wait_until(lambda: client.connected, timeout=15, message="the reconnection")
            assert sub.get(5) == (2, "while down 2")
            # Before the fix the resume's ack arrived after its history,
            # moved last_line back and every later line stayed pending.
            append(log, "after 3\nafter 4\n")
            assert sub.take(2, timeout=5) == [(3, "after 3"), (4, "after 4")]
            assert sub.drain() == []
    finally:
        client.close()
        first.stop()


def test_since_beyond_the_end_gets_the_whole_new_file(server, logs, connect):
    # The client had line 999 of a file that was replaced by a shorter one.
    deployment_id, _ = logs.make(5)
    sub = connect().follow(deployment_id, since=999)
    assert sub.started["first_line"] == 1
    assert sub.take(5, timeout=5) == [(n, f"line {n}") for n in range(1, 6)]


def test_close_stops_a_client_that_is_waiting_for_its_server(tmp_path):
    (tmp_path / "app.log").write_text("one\n")
    first = start_server(data_dir=tmp_path)
    client = LogClient(first.url).connect()
    client.follow("app")
    first.stop()
    wait_until(lambda: client.reconnecting, message="the client to start reconnecting")
    client.close()
    wait_until(lambda: not client.reconnecting, message="the reconnection to give up")
    with start_server(data_dir=tmp_path, port=first.port) as second:
        assert second.socketio.server.manager.rooms.get("/", {}) == {}
        assert not client.connected


def test_a_client_whose_connection_drops_comes_back_and_resumes(make_server, tmp_path):
    # The TCP connection ends with no goodbye, as when a proxy or the network drops it.
    log = tmp_path / "app.log"
    log.write_text("line 1\nline 2\n")
    server = make_server()
    with LogClient(server.url) as client:
        sub = client.follow("app", since=0)
        assert sub.take(2, timeout=5) == [(1, "line 1"), (2, "line 2")]
        first_sid = client.sio.sid
        close_connections(server.httpd)
        append(log, "line 3\n")
        wait_until(lambda: client.connected and client.sio.sid != first_sid, timeout=15,
                   message="a new connection")
        assert sub.take(1, timeout=5) == [(3, "line 3")]
        assert sub.drain() == []
