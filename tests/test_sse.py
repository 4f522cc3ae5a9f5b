"""End-to-end: the SSE endpoint on a real server, read by httpx and httpx-sse."""

import os
import socket
import struct
import threading

import httpx
import pytest
from httpx_sse import connect_sse

from conftest import Logs, append, fds_opened_since, open_fds, wait_until
from logstream.core.watcher import followed_names
from logstream.web.server import start_server

HEARTBEAT = 0.2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server whose SSE heartbeat is short enough to watch."""
    data_dir = tmp_path_factory.mktemp("logs")
    with start_server(data_dir=data_dir, port=0, line_interval=0.05,
                      test_config={"SSE_HEARTBEAT_SECONDS": HEARTBEAT}) as handle:
        yield handle


@pytest.fixture(scope="module")
def slow_heartbeat_server(tmp_path_factory):
    """A server whose heartbeat never comes during a test, so no write can
    reveal a departed client: only the departure check can."""
    data_dir = tmp_path_factory.mktemp("quiet-logs")
    with start_server(data_dir=data_dir, port=0,
                      test_config={"SSE_HEARTBEAT_SECONDS": 600}) as handle:
        yield handle


@pytest.fixture
def http():
    with httpx.Client(timeout=10) as client:
        yield client


class SSEReader:
    """Read one SSE stream in a thread and keep every event httpx-sse decodes."""

    def __init__(self, url, headers=None):
        self.events = []
        self.headers = None
        self.ended = threading.Event()
        self.error = None
        self._client = httpx.Client(timeout=10)
        self._socket = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url, headers or {}),
                                        daemon=True)
        self._thread.start()
        if not self._opened.wait(10):
            raise TimeoutError(f"no response from {url}")

    def _run(self, url, headers):
        try:
            with connect_sse(self._client, "GET", url, headers=headers) as source:
                self.headers = source.response.headers
                self.status_code = source.response.status_code
                self._socket = source.response.extensions["network_stream"] \
                    .get_extra_info("socket")
                self._opened.set()
                for event in source.iter_sse():
                    # httpx-sse also yields comment-only blocks (heartbeats)
                    # as data-less events; a browser's EventSource doesn't.
                    if event.data:
                        self.events.append(event)
        except (httpx.HTTPError, OSError) as exc:
            self.error = exc
        finally:
            self._opened.set()
            self.ended.set()

    def of(self, name):
        return [e for e in self.events if e.event == name]

    def lines(self):
        """Return [(id, payload)] of the line events received, in order."""
        return [(int(e.id), e.json()) for e in self.of("message")]

    def numbers(self):
        return [payload["line"] for _, payload in self.lines()]

    def last_id(self):
        return self.events[-1].id

    def close(self, reset=False):
        """Leave as a browser tab does; with reset, vanish with a TCP RST."""
        if self._socket is not None and not self.ended.is_set():
            if reset:
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
            # Wakes the reading thread, which is blocked in recv.
            self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self._client.close()


@pytest.fixture
def sse(server):
    """Open SSEReaders on the server's events endpoint; closed after the test."""
    opened = []

    def open_reader(deployment_id, query="", headers=None):
        reader = SSEReader(f"{server.url}/deployments/{deployment_id}/events{query}", headers)
        opened.append(reader)
        return reader

    yield open_reader
    for reader in opened:
        reader.close()


def follower_names():
    """Return the names of the files the process follows (one watcher thread serves them all)."""
    return followed_names()


def request_threads():
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def test_framing_status_then_numbered_json_lines(logs, http, server):
    deployment_id, path = logs.make(3)
    url = f"{server.url}/deployments/{deployment_id}/events"
    with connect_sse(http, "GET", url) as source:
        response = source.response
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        events = source.iter_sse()
        started = next(events)
        assert started.event == "status"
        assert started.retry == 2000
        assert started.id == "0"  # a reconnect before any line resumes from the start
        assert started.json() == {"type": "streaming_started", "deployment_id": deployment_id,
                                  "first_line": 1, "next_line": 4}
        history = [next(events) for _ in range(3)]
        assert [(e.event, e.id) for e in history] == [("message", "1"), ("message", "2"),
                                                      ("message", "3")]
        assert [e.json() for e in history] == [{"line": n, "message": f"line {n}"}
                                               for n in (1, 2, 3)]
        append(path, "live ünïcode ✓\n")
        live = next(e for e in events if e.data)  # skips heartbeats
        assert (live.event, live.id) == ("message", "4")
        assert live.json() == {"line": 4, "message": "live ünïcode ✓"}


def test_join_sends_the_last_50_lines(logs, sse):
    deployment_id, _ = logs.make(120)
    reader = sse(deployment_id)
    wait_until(lambda: len(reader.lines()) == 50, message="history")
    started = reader.of("status")[0].json()
    assert (started["first_line"], started["next_line"]) == (71, 121)
    assert reader.numbers() == list(range(71, 121))
    assert all(event_id == payload["line"] for event_id, payload in reader.lines())


def test_history_then_live_without_gap_while_the_file_is_written(logs, sse):
    deployment_id, path = logs.make(0)
    total = 3000
    wrote = threading.Event()

    def writer():
        for i in range(1, total + 1):
            append(path, f"w {i}\n")
        wrote.set()

    thread = threading.Thread(target=writer)
    thread.start()
    wait_until(lambda: path.stat().st_size > 2000, message="the writer to get going")
    readers = [sse(deployment_id, "?since=0") for _ in range(3)]
    thread.join()
    for reader in readers:
        wait_until(lambda: len(reader.lines()) >= total, message="every line")
        assert reader.numbers() == list(range(1, total + 1))  # no gap, no duplicate
        assert reader.lines()[-1] == (total, {"line": total, "message": f"w {total}"})
    starts = [r.of("status")[0].json()["next_line"] for r in readers]
    assert all(1 < n <= total + 1 for n in starts)


def test_last_event_id_resumes_after_a_reconnect(logs, sse):
    deployment_id, path = logs.make(10)
    first = sse(deployment_id)
    wait_until(lambda: len(first.lines()) == 10)
    last_id = first.last_id()
    first.close()
    append(path, "".join(f"while away {i}\n" for i in range(11, 16)))
    # What EventSource does: reconnect and send the last id it saw.
    second = sse(deployment_id, headers={"Last-Event-ID": last_id})
    wait_until(lambda: len(second.lines()) == 5)
    assert second.of("status")[0].json()["first_line"] == 11
    assert second.of("status")[0].id == "10"
    assert second.numbers() == list(range(11, 16))
    assert second.lines()[0][1]["message"] == "while away 11"


@pytest.mark.parametrize("query,headers,first", [
    ("?since=15", None, 16),
    ("?since=0", None, 1),
    ("", {"Last-Event-ID": "18"}, 19),
    ("?since=2", {"Last-Event-ID": "18"}, 19),   # the header wins
    ("?since=5", {"Last-Event-ID": ""}, 6),      # an empty header counts as absent
    ("?since=999", None, 1),                     # beyond the end: the file was replaced
    ("", {"Last-Event-ID": "20"}, 21),           # nothing to catch up on
], ids=["since", "since-0", "last-event-id", "header-wins", "empty-header", "beyond-end",
        "up-to-date"])
def test_since_and_last_event_id_choose_the_first_line(logs, sse, query, headers, first):
    deployment_id, path = logs.make(20)
    reader = sse(deployment_id, query, headers)
    wait_until(lambda: reader.of("status"))
    assert reader.of("status")[0].json()["first_line"] == first
    append(path, "live\n")
    wait_until(lambda: reader.numbers() and reader.numbers()[-1] == 21)
    assert reader.numbers() == list(range(first, 22))


def test_heartbeat_comments_keep_an_idle_stream_alive(logs, server, http):
    deployment_id, _ = logs.make(1)
    url = f"{server.url}/deployments/{deployment_id}/events"
    heartbeats = []
    # Comments are invisible to SSE parsers by design, so look at the raw lines.
    with http.stream("GET", url) as response:
        for line in response.iter_lines():
            if line.startswith(":"):
                heartbeats.append(line)
                if len(heartbeats) == 3:
                    break
    assert heartbeats == [": heartbeat"] * 3


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_departed_client_releases_its_follower_while_the_log_is_idle(
        slow_heartbeat_server, reset):
    server = slow_heartbeat_server
    deployment_id, _ = Logs(server.data_dir).make(5)
    wait_until(lambda: not follower_names(), message="earlier followers to stop")
    wait_until(lambda: not request_threads(), message="earlier requests to end")
    fds_before = open_fds()
    reader = SSEReader(f"{server.url}/deployments/{deployment_id}/events")
    wait_until(lambda: len(reader.lines()) == 5)
    assert follower_names() == [f"follower:{deployment_id}"]
    assert len(request_threads()) == 1
    reader.close(reset=reset)
    # Nothing is written to the log, so only the departure check can notice.
    wait_until(lambda: not follower_names(), message="the follower to stop")
    wait_until(lambda: not request_threads(), message="the response thread to end")
    assert server.app.extensions["logstream"].hub.followed() == set()
    wait_until(lambda: not fds_opened_since(fds_before), message="file descriptors to be closed")


def test_sse_and_socketio_subscribers_share_one_follower(server, logs, sse, raw):
    deployment_id, path = logs.make(0)
    hub = server.app.extensions["logstream"].hub
    wait_until(lambda: not follower_names(), message="earlier followers to stop")
    reader = sse(deployment_id)
    client = raw()
    client.call("start_streaming", {"deployment_id": deployment_id})
    wait_until(lambda: reader.of("status"))
    assert follower_names() == [f"follower:{deployment_id}"]
    assert hub.subscriber_count(deployment_id) == 2
    append(path, "to both\n")
    wait_until(lambda: reader.numbers() == [1] and client.line_numbers() == [1])
    assert reader.lines()[0][1]["message"] == client.messages()[1] == "to both"

    reader.close()
    wait_until(lambda: hub.subscriber_count(deployment_id) == 1, message="SSE to leave")
    assert follower_names() == [f"follower:{deployment_id}"]
    append(path, "socket.io only\n")
    wait_until(lambda: client.line_numbers() == [1, 2])
    client.call("stop_streaming", {"deployment_id": deployment_id})
    wait_until(lambda: not follower_names(), message="the follower to stop")


@pytest.mark.parametrize("deployment_id,query,headers,status,code", [
    ("a..b", "", None, 400, "invalid_deployment_id"),
    (".hidden", "", None, 400, "invalid_deployment_id"),
    ("x" * 65, "", None, 400, "invalid_deployment_id"),
    ("no-such-deployment", "", None, 404, "unknown_deployment"),
    ("KNOWN", "?since=-1", None, 400, "invalid_since"),
    ("KNOWN", "?since=1.5", None, 400, "invalid_since"),
    ("KNOWN", "?since=ten", None, 400, "invalid_since"),
    ("KNOWN", "?since=", None, 400, "invalid_since"),
    ("KNOWN", "", {"Last-Event-ID": "abc"}, 400, "invalid_since"),
    ("KNOWN", "", {"Last-Event-ID": "-4"}, 400, "invalid_since"),
], ids=["dots", "hidden", "too-long", "unknown", "since-negative", "since-float",
        "since-word", "since-empty", "last-event-id-word", "last-event-id-negative"])
def test_bad_requests_get_json_errors_and_start_nothing(
        server, logs, http, deployment_id, query, headers, status, code):
    known, _ = logs.make(1)
    deployment_id = known if deployment_id == "KNOWN" else deployment_id
    wait_until(lambda: not follower_names(), message="earlier followers to stop")
    response = http.get(f"{server.url}/deployments/{deployment_id}/events{query}",
                        headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "message"}
    assert body["error"] == code
    assert len(body["message"]) > 20 and body["message"].endswith(".")
    assert not follower_names()


def test_truncation_is_a_status_event_and_resume_follows_the_new_numbering(logs, sse):
    deployment_id, path = logs.make(10)
    reader = sse(deployment_id)
    wait_until(lambda: len(reader.lines()) == 10)
    with open(path, "r+") as fp:  # what logrotate's copytruncate does
        fp.truncate(0)
    append(path, "after truncate\n")
    wait_until(lambda: reader.numbers()[-1:] == [1], message="the new first line")
    truncated = [e for e in reader.of("status") if e.json()["type"] == "truncated"]
    assert len(truncated) == 1
    assert truncated[0].json() == {"type": "truncated", "next_line": 1,
                                   "deployment_id": deployment_id}
    assert truncated[0].id == "0"
    assert reader.lines()[-1] == (1, {"line": 1, "message": "after truncate"})
    reader.close()

    append(path, "while away\n")
    again = sse(deployment_id, headers={"Last-Event-ID": reader.last_id()})
    wait_until(lambda: again.lines())
    assert again.lines() == [(2, {"line": 2, "message": "while away"})]


def test_stopping_the_server_ends_open_streams(tmp_path):
    (tmp_path / "solo.log").write_text("one\n")
    handle = start_server(data_dir=tmp_path, port=0)
    reader = SSEReader(f"{handle.url}/deployments/solo/events")
    try:
        wait_until(lambda: reader.lines())
        handle.stop()
        assert reader.ended.wait(10), "the stream outlived the server"
        assert reader.error is None  # a clean end of stream, not a reset
    finally:
        reader.close()
        handle.stop()



CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def unavailable(reason):
    """Skip, except under CI, where a missing browser is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.mark.browser
def test_a_browser_eventsource_resumes_across_a_server_restart(tmp_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)")
    path = tmp_path / "web-1.log"
    path.write_text("one\ntwo\nthree\n")
    server = start_server(data_dir=tmp_path, port=0)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(server.url + "/healthz")  # any page of the same origin
            page.evaluate("""() => {
                window.got = []; window.opens = 0;
                const source = new EventSource("/deployments/web-1/events?since=0");
                source.onopen = () => { window.opens += 1; };
                source.onmessage = (e) => window.got.push([e.lastEventId, JSON.parse(e.data)]);
            }""")
            page.wait_for_function("window.got.length === 3", timeout=10_000)
            server.stop()
            append(path, "four\nfive\n")  # written while the server is down
            server = start_server(data_dir=tmp_path, port=server.port)
            append(path, "six\n")
            # EventSource reconnects by itself after the retry hint (2 s) and
            # sends Last-Event-ID: 3, so it gets 4, 5 and 6 and nothing twice.
            page.wait_for_function("window.got.length >= 6 && window.opens === 2",
                                   timeout=10_000)
            got = page.evaluate("window.got")
        finally:
            browser.close()
            server.stop()
    assert [event_id for event_id, _ in got] == ["1", "2", "3", "4", "5", "6"]
    assert [payload["message"] for _, payload in got] == ["one", "two", "three", "four",
                                                         "five", "six"]
