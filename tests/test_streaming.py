"""End-to-end: a real server, real python-socketio clients over a real WebSocket."""

import os
import threading

import pytest

from conftest import append, fds_opened_since, open_fds, wait_until
from logstream.core.watcher import followed_names


def follower_names():
    """Return the names of the files the process follows (one watcher thread serves them all)."""
    return followed_names()


@pytest.mark.parametrize("batch", [False, True], ids=["new_log", "log_batch"])
def test_join_sends_last_50_lines_then_live_lines(logs, raw, batch):
    deployment_id, path = logs.make(120)
    client = raw()
    reply = client.call("start_streaming", {"deployment_id": deployment_id, "batch": batch})
    assert reply == {"type": "streaming_started", "deployment_id": deployment_id,
                     "first_line": 71, "next_line": 121, "batch": batch}
    wait_until(lambda: len(client.line_numbers()) == 50, message="history")
    history = client.of("log_batch" if batch else "new_log")
    assert all(item["is_historical"] for item in history)

    append(path, "live 121\nlive 122\n")
    wait_until(lambda: len(client.line_numbers()) == 52, message="live lines")
    assert client.line_numbers() == list(range(71, 123))
    assert client.messages()[122] == "live 122"
    assert client.messages()[71] == "line 71"
    live = client.of("log_batch" if batch else "new_log")[len(history):]
    assert not any(item.get("is_historical") for item in live)
    # status comes first, so a client knows where history starts
    assert client.events[0][0] == "status"


def test_since_resumes_after_a_line(logs, raw):
    deployment_id, _ = logs.make(120)
    client = raw()
    reply = client.call("start_streaming", {"deployment_id": deployment_id, "since": 100})
    assert (reply["first_line"], reply["next_line"]) == (101, 121)
    wait_until(lambda: len(client.line_numbers()) == 20)
    assert client.line_numbers() == list(range(101, 121))


def test_since_zero_sends_everything(logs, raw):
    deployment_id, _ = logs.make(3000)
    client = raw()
    client.call("start_streaming", {"deployment_id": deployment_id, "since": 0, "batch": True})
    wait_until(lambda: len(client.line_numbers()) == 3000)
    assert client.line_numbers() == list(range(1, 3001))


def test_since_beyond_the_end_restarts_at_line_1(logs, raw):
    # The file was truncated or replaced while the client was away.
    deployment_id, _ = logs.make(5)
    client = raw()
    reply = client.call("start_streaming", {"deployment_id": deployment_id, "since": 999})
    assert reply["first_line"] == 1
    wait_until(lambda: client.line_numbers() == [1, 2, 3, 4, 5])


@pytest.mark.parametrize("batch", [False, True], ids=["new_log", "log_batch"])
def test_no_gap_no_duplicate_while_the_file_is_written(logs, raw, batch):
    deployment_id, path = logs.make(0)
    total = 4000
    written = threading.Event()

    def writer():
        for i in range(1, total + 1):
            append(path, f"w {i}\n")
        written.set()

    thread = threading.Thread(target=writer)
    thread.start()
    wait_until(lambda: path.stat().st_size > 2000, message="writer to get going")
    clients = [raw() for _ in range(3)]
    # Each reply comes behind up to 4000 history events, and python-socketio's
    # client starts a thread for every event it receives: on a busy 2-core
    # machine that takes seconds, so the deadlines here are generous.
    replies = [c.call("start_streaming", {"deployment_id": deployment_id, "since": 0,
                                          "batch": batch}, timeout=60) for c in clients]
    thread.join()
    for client in clients:
        wait_until(lambda: len(client.line_numbers()) >= total, timeout=60,
                   message="every line")
        assert client.line_numbers() == list(range(1, total + 1))  # no gap, no duplicate
        assert client.messages()[total] == f"w {total}"
    assert all(1 < r["next_line"] <= total + 1 for r in replies)


def test_rooms_isolate_deployments_and_fan_out(logs, raw):
    a, path_a = logs.make(0)
    b, path_b = logs.make(0)
    a1, a2, b1 = raw(), raw(), raw()
    for client, dep in ((a1, a), (a2, a), (b1, b)):
        client.call("start_streaming", {"deployment_id": dep})
    append(path_a, "only for a\n")
    append(path_b, "only for b\n")
    for client, dep in ((a1, a), (a2, a), (b1, b)):
        wait_until(lambda: client.of("new_log"))
    append(path_a, "a again\n")
    wait_until(lambda: len(a1.of("new_log")) == 2 and len(a2.of("new_log")) == 2)
    assert [d["message"] for d in a1.of("new_log")] == ["only for a", "a again"]
    assert a1.of("new_log") == a2.of("new_log")
    assert [d["message"] for d in b1.of("new_log")] == ["only for b"]
    assert {d["deployment_id"] for d in b1.of("new_log")} == {b}


def test_partial_line_waits_for_its_newline(logs, raw):
    deployment_id, path = logs.make(0)
    client = raw()
    client.call("start_streaming", {"deployment_id": deployment_id})
    append(path, "half a li")
    ping_ok = client.call("ping")  # a round trip: the follower had its chance
    assert ping_ok and client.of("new_log") == []
    append(path, "ne\r\nnext\n")
    wait_until(lambda: len(client.of("new_log")) == 2)
    assert [d["message"] for d in client.of("new_log")] == ["half a line", "next"]


def test_invalid_utf8_and_huge_lines_do_not_break_the_stream(logs, raw):
    deployment_id, path = logs.make(0)
    client = raw()
    client.call("start_streaming", {"deployment_id": deployment_id})
    with open(path, "ab") as fp:
        fp.write(b"bad \xff\xfe bytes\n")
        fp.write(b"y" * (3 * 1024 * 1024) + b"\n")
        fp.write("ünïcode ✓\n".encode())
    wait_until(lambda: len(client.of("new_log")) == 3)
    bad, huge, good = (d["message"] for d in client.of("new_log"))
    assert bad == "bad \ufffd\ufffd bytes"
    assert huge.startswith("y" * 1000) and huge.endswith("bytes cut]")
    assert len(huge) < 100_000
    assert good == "ünïcode ✓"


def test_truncation_is_announced_and_streaming_goes_on(logs, raw):
    deployment_id, path = logs.make(10)
    client = raw()
    client.call("start_streaming", {"deployment_id": deployment_id})
    wait_until(lambda: len(client.of("new_log")) == 10)
    with open(path, "r+") as fp:  # what logrotate's copytruncate does
        fp.truncate(0)
    append(path, "after truncate\n")
    wait_until(lambda: [s for s in client.of("status") if s["type"] == "truncated"])
    wait_until(lambda: client.messages().get(1) == "after truncate")
    truncated = [s for s in client.of("status") if s["type"] == "truncated"][0]
    assert truncated["deployment_id"] == deployment_id


def test_rotation_is_announced_and_the_new_file_streams(logs, raw):
    deployment_id, path = logs.make(3)
    client = raw()
    client.call("start_streaming", {"deployment_id": deployment_id})
    wait_until(lambda: len(client.of("new_log")) == 3)
    append(path, "last line of the old file\n")
    os.rename(path, path.with_suffix(".log.1"))
    path.write_text("first line of the new file\n")
    # The follower sees the new file at once ("rotated") or first the gap
    # ("deleted", then "created"); either way the new file streams.
    wait_until(lambda: {s["type"] for s in client.of("status")} & {"rotated", "created"})
    wait_until(lambda: "first line of the new file" in
               [d["message"] for d in client.of("new_log")])
    messages = [d["message"] for d in client.of("new_log")]
    assert messages[-2:] == ["last line of the old file", "first line of the new file"]
    assert client.of("new_log")[-1]["line"] == 1


def test_one_follower_per_deployment_released_after_the_last_client(server, logs, raw):
    deployment_id, _ = logs.make(5)
    wait_until(lambda: not follower_names(), message="earlier followers to stop")
    fds_before = open_fds()
    clients = [raw() for _ in range(4)]
    for client in clients:
        client.call("start_streaming", {"deployment_id": deployment_id})
    assert follower_names() == [f"follower:{deployment_id}"]
    clients[0].call("stop_streaming", {"deployment_id": deployment_id})
    clients[1].close()  # disconnecting counts as leaving
    assert len(follower_names()) == 1
    clients[2].call("stop_streaming", {"deployment_id": deployment_id})
    clients[3].close()
    wait_until(lambda: not follower_names(), message="the follower to stop")
    assert server.app.extensions["logstream"].hub.followed() == set()
    wait_until(lambda: not fds_opened_since(fds_before), message="file descriptors to be closed")


def test_stop_streaming_stops_the_lines(logs, raw):
    deployment_id, path = logs.make(0)
    client = raw()
    client.call("start_streaming", {"deployment_id": deployment_id})
    append(path, "one\n")
    wait_until(lambda: len(client.of("new_log")) == 1)
    reply = client.call("stop_streaming", {"deployment_id": deployment_id})
    assert reply == {"type": "streaming_stopped", "deployment_id": deployment_id}
    append(path, "two\n")
    client.call("ping")
    other = raw()
    other.call("start_streaming", {"deployment_id": deployment_id})
    wait_until(lambda: len(other.of("new_log")) == 2)  # the line was written...
    assert len(client.of("new_log")) == 1             # ...but not sent to the leaver


def test_ping_replies_with_pong_and_ack(raw):
    client = raw()
    reply = client.call("ping", {"n": 7})
    assert reply["echo"] == {"n": 7}
    assert isinstance(reply["server_time"], float)
    wait_until(lambda: client.of("pong"))
    assert client.of("pong")[0] == reply
    assert client.call("ping")["echo"] is None


BAD_REQUESTS = [
    ("start_streaming", None, "invalid_payload"),
    ("start_streaming", "shop", "invalid_payload"),
    ("start_streaming", [1, 2], "invalid_payload"),
    ("start_streaming", {}, "invalid_payload"),
    ("start_streaming", {"deployment_id": 42}, "invalid_deployment_id"),
    ("start_streaming", {"deployment_id": "../../etc/passwd"}, "invalid_deployment_id"),
    ("start_streaming", {"deployment_id": "a/b"}, "invalid_deployment_id"),
    ("start_streaming", {"deployment_id": ".hidden"}, "invalid_deployment_id"),
    ("start_streaming", {"deployment_id": "a..b"}, "invalid_deployment_id"),
    ("start_streaming", {"deployment_id": "x" * 65}, "invalid_deployment_id"),
    ("start_streaming", {"deployment_id": "nul\x00byte"}, "invalid_deployment_id"),
    ("start_streaming", {"deployment_id": "no-such-deployment"}, "unknown_deployment"),
    ("start_streaming", {"deployment_id": "KNOWN", "since": -1}, "invalid_since"),
    ("start_streaming", {"deployment_id": "KNOWN", "since": 1.5}, "invalid_since"),
    ("start_streaming", {"deployment_id": "KNOWN", "since": "10"}, "invalid_since"),
    ("start_streaming", {"deployment_id": "KNOWN", "since": True}, "invalid_since"),
    ("start_streaming", {"deployment_id": "KNOWN", "batch": "yes"}, "invalid_batch"),
    ("start_streaming", {"deployment_id": "KNOWN", "extra": 1}, "invalid_payload"),
    ("stop_streaming", None, "invalid_payload"),
    ("stop_streaming", {"deployment_id": "../x"}, "invalid_deployment_id"),
    ("no_such_event", {"x": 1}, "unknown_event"),
]


@pytest.mark.parametrize("event,payload,code", BAD_REQUESTS,
                         ids=[f"{e}-{c}-{i}" for i, (e, _, c) in enumerate(BAD_REQUESTS)])
def test_bad_requests_get_a_stream_error_and_the_connection_stays_usable(
        logs, raw, event, payload, code):
    known, path = logs.make(1)
    if isinstance(payload, dict) and payload.get("deployment_id") == "KNOWN":
        payload = dict(payload, deployment_id=known)
    client = raw()
    reply = client.call(event, payload)
    assert reply["error"] == code
    assert len(reply["message"]) > 20 and reply["message"].endswith(".")
    wait_until(lambda: client.of("stream_error"))
    assert client.of("stream_error") == [reply]
    # still usable: ping answers and streaming works
    assert client.call("ping", "ok")["echo"] == "ok"
    assert client.call("start_streaming", {"deployment_id": known})["type"] == "streaming_started"


def test_extra_arguments_are_refused(raw):
    client = raw()
    reply = client.call("ping", ("a", "b"))
    assert reply["error"] == "invalid_payload"


def test_symlink_out_of_the_data_dir_is_refused(server, raw, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not stream me\n")
    os.symlink(secret, server.data_dir / "evil.log")
    client = raw()
    reply = client.call("start_streaming", {"deployment_id": "evil"})
    assert reply["error"] == "unknown_deployment"
    assert not client.line_numbers()


def test_log_client_orders_lines_and_resumes(logs, connect):
    deployment_id, path = logs.make(60)
    client = connect()
    sub = client.follow(deployment_id, batch=False)
    assert [n for n, _ in sub.take(50)] == list(range(11, 61))
    append(path, "".join(f"more {i}\n" for i in range(61, 561)))
    got = sub.take(500)
    assert [n for n, _ in got] == list(range(61, 561))
    assert got[-1][1] == "more 560"
    assert client.ping() > 0
