"""Failures heal and are told: a source that raises, joins that race, joins left unanswered."""

import threading

import pytest

from conftest import RawClient, append, wait_until
from logstream.clients import logclient
from logstream.clients.logclient import LogClient, Subscription
from logstream.core.follower import Follower
from logstream.core.hub import StreamHub
from logstream.web import events
from logstream.web.server import start_server
from test_sse import SSEReader


class ExplodingOutlet:
    """An outlet that raises the first time it is handed lines of one deployment."""

    def __init__(self, deployment_id):
        self.deployment_id = deployment_id
        self.armed = True

    def publish(self, deployment_id, lines):
        if deployment_id == self.deployment_id and self.armed:
            self.armed = False
            raise RuntimeError("the outlet exploded")

    def status(self, deployment_id, payload):
        pass


@pytest.fixture
def server(tmp_path):
    with start_server(data_dir=tmp_path, port=0) as handle:
        yield handle


def test_a_source_that_raises_is_told_dropped_and_replaced(server, tmp_path):
    path = tmp_path / "boom.log"
    path.write_text("1\n")
    hub = server.app.extensions["logstream"].hub
    hub.outlets.insert(0, ExplodingOutlet("boom"))
    client = RawClient(server.url)
    reader = SSEReader(f"{server.url}/deployments/boom/events")
    try:
        assert client.call("start_streaming", {"deployment_id": "boom"})["next_line"] == 2
        wait_until(lambda: reader.of("status"), message="the SSE stream to start")
        append(path, "2\n")

        wait_until(lambda: client.of("stream_error"), message="the stream_error")
        (error,) = client.of("stream_error")
        assert error["error"] == "source_failed" and error["deployment_id"] == "boom"
        assert error["message"].endswith(".") and "RuntimeError" in error["message"]
        assert reader.ended.wait(10), "the SSE stream was left open on a dead source"
        failed = [e.json() for e in reader.of("status") if e.json()["type"] == "stream_error"]
        assert [(f["error"], f["deployment_id"]) for f in failed] == [("source_failed", "boom")]
        assert "boom" not in hub.followed()
        assert any("following" in line and "boom.log failed: RuntimeError: the outlet exploded"
                   in line for line in server.logs()), server.logs()[-5:]

        # The next subscriber gets a fresh source, and lines flow again.
        reply = client.call("start_streaming", {"deployment_id": "boom", "since": 2})
        assert reply["type"] == "streaming_started" and reply["next_line"] == 3
        append(path, "3\n")
        wait_until(lambda: client.messages().get(3) == "3", message="line 3 from the new source")
        assert client.line_numbers() == [1, 3]  # history, then the new source's line
    finally:
        client.close()
        reader.close()


def test_a_join_whose_source_fails_is_answered_with_the_error(server, tmp_path, monkeypatch):
    (tmp_path / "broken.log").write_text("a\n")
    scan = Follower._scan

    def failing_scan(self):
        if self.path.endswith("broken.log"):
            raise PermissionError(13, "Permission denied")
        return scan(self)

    monkeypatch.setattr(Follower, "_scan", failing_scan)
    client = RawClient(server.url)
    try:
        reply = client.call("start_streaming", {"deployment_id": "broken"})
        # Answered with the cause, not left waiting (a None reply).
        assert reply["error"] == "source_failed" and reply["deployment_id"] == "broken"
        assert "broken" not in server.app.extensions["logstream"].hub.followed()
        monkeypatch.setattr(Follower, "_scan", scan)
        assert client.call("start_streaming", {"deployment_id": "broken", "since": 0})[
            "type"] == "streaming_started"
        wait_until(lambda: client.messages() == {1: "a"}, message="the healed stream")
    finally:
        client.close()


def test_an_event_handler_that_fails_answers_with_a_sentence_and_logs(server, tmp_path,
                                                                     monkeypatch):
    (tmp_path / "a.log").write_text("a\n")
    hub = server.app.extensions["logstream"].hub

    def failing_subscribe(*args, **kwargs):
        raise RuntimeError("the hub exploded")

    monkeypatch.setattr(hub, "subscribe", failing_subscribe)
    client = RawClient(server.url)
    try:
        reply = client.call("start_streaming", {"deployment_id": "a"})
        assert reply["error"] == "internal_error" and "logged" in reply["message"]
        assert client.of("stream_error") == [reply]
        wait_until(lambda: any("the hub exploded" in line for line in server.logs()),
                   message="the traceback in the server's log")
        monkeypatch.undo()
        assert client.call("start_streaming", {"deployment_id": "a"})["next_line"] == 2
    finally:
        client.close()


def test_concurrent_joins_from_one_client_send_every_line_once(server, tmp_path):
    path = tmp_path / "busy.log"
    path.write_text("".join(f"h {i}\n" for i in range(1, 301)))
    client = RawClient(server.url)
    replies = []
    go = threading.Event()

    def join():
        go.wait()
        replies.append(client.call("start_streaming", {"deployment_id": "busy", "since": 0}))

    try:
        threads = [threading.Thread(target=join) for _ in range(15)]  # within the burst limit
        for thread in threads:
            thread.start()
        go.set()
        for i in range(301, 401):
            append(path, f"live {i}\n")
        for thread in threads:
            thread.join()
        assert [r["type"] for r in replies] == ["streaming_started"] * 15
        # One join sent the history; the others answered like a resume.
        assert sorted(r["first_line"] for r in replies)[0] == 1
        assert all(r["first_line"] == r["next_line"] for r in replies if r["first_line"] != 1)
        append(path, "last 401\n")
        wait_until(lambda: client.messages().get(401) == "last 401", message="the last line")
        assert client.line_numbers() == list(range(1, 402))  # each line exactly once
    finally:
        client.close()


class SwallowingHub(StreamHub):
    """A hub that never attaches a deployment's first subscriber, so its join goes unanswered."""

    def __init__(self, data_dir, **options):
        super().__init__(data_dir, **options)
        self.swallowed = 0

    def subscribe(self, deployment_id, key, on_attach, since=None, tail=50):
        if self.swallowed == 0:
            self.swallowed += 1
            return None
        return super().subscribe(deployment_id, key, on_attach, since=since, tail=tail)


def test_log_client_asks_again_after_a_join_left_unanswered(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "ATTACH_TIMEOUT", 0.5)
    (tmp_path / "quiet.log").write_text("".join(f"q {i}\n" for i in range(1, 6)))
    with start_server(data_dir=tmp_path, port=0, make_hub=SwallowingHub) as handle:
        with LogClient(handle.url) as client:
            sub = client.follow("quiet", since=0)
            assert sub.take(5) == [(i, f"q {i}") for i in range(1, 6)]
            assert [e["error"] for e in sub.errors] == ["no_reply"]
            append(tmp_path / "quiet.log", "q 6\n")
            assert sub.get(10) == (6, "q 6")


def test_lines_held_before_the_stream_starts_are_bounded():
    sub = Subscription("x")
    sub._restarting()  # a join is under way: lines are held until its reply
    sub._receive([{"line": n, "message": "m"} for n in range(1, 3 * logclient.MAX_PENDING)])
    assert len(sub._pending) == logclient.MAX_PENDING
    sub._started({"first_line": 1, "next_line": 1}, since=None)
    assert sub.last_line == logclient.MAX_PENDING  # the rest is asked for again
