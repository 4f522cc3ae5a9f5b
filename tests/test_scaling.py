"""Scale-out: two web workers and one shipper sharing rooms through a real redis-server."""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import websocket

from logstream.clients.logclient import LogClient
from logstream.support.host import free_port
from logstream.scale.topology import redis_process
from logstream.support.processes import ChildProcess, answers, logstream_command

from conftest import Logs, append, wait_until

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A throwaway redis-server on a free port, with nothing saved to disk."""
    if REDIS_SERVER is None:
        message = ("redis-server is not installed (Debian: apt-get install redis-server), "
                   "so the scale-out topology can't be started")
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = redis_process(free_port(), tmp_path_factory.mktemp("redis"))
    try:
        server.start(timeout=20)
        yield server.url
    finally:
        server.stop()


class Cluster:
    """A shipper and two workers on one data directory and one Redis."""

    def __init__(self, data_dir, redis_url, log_dir):
        self.data_dir = data_dir
        log_dir = Path(log_dir)
        self.ship = ChildProcess("shipper", logstream_command(
            "ship", "--data-dir", data_dir, "--message-queue", redis_url,
            "--scan-interval", "0.1"), log_dir / "shipper.log.txt")
        self.workers = []
        for n in range(2):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            self.workers.append(ChildProcess(f"worker{n}", logstream_command(
                "serve", "--data-dir", data_dir, "--port", port, "--message-queue", redis_url),
                log_dir / f"worker{n}.log.txt", ready=lambda url=url: answers(url + "/healthz")))
            self.workers[-1].url = url

    @property
    def urls(self):
        return [w.url for w in self.workers]


@pytest.fixture(scope="module")
def cluster(redis_url, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("logs")
    c = Cluster(data_dir, redis_url, tmp_path_factory.mktemp("proc-logs"))
    c.ship.start()
    for worker in c.workers:
        worker.start()
    yield c
    for p in (c.ship, *c.workers):
        p.stop()


@pytest.fixture
def logs(cluster):
    return Logs(cluster.data_dir)


class ArrivalOrderClient:
    """A Socket.IO client at the frame level: one thread records every event in arrival order.

    python-socketio's own client runs each event in a thread of its own, so
    the order it records is not the order the server sent; this one reads
    the WebSocket on a single thread.
    """

    def __init__(self, url):
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(ws_url, timeout=10)
        assert self.ws.recv().startswith("0")
        self.ws.send("40")
        assert self.ws.recv().startswith("40")
        self.events = []
        self.acks = {}
        self._ack_id = 0
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _send(self, frame):
        with self._send_lock:
            self.ws.send(frame)

    def _read(self):
        while True:
            try:
                frame = self.ws.recv()
            except Exception:
                return  # closed
            if frame == "2":
                self._send("3")  # Engine.IO heartbeat
            elif frame.startswith("42"):
                event, *args = json.loads(frame[2:])
                with self._cond:
                    self.events.append((event, args[0] if args else None))
                    self._cond.notify_all()
            elif frame.startswith("43"):
                bracket = frame.index("[")
                with self._cond:
                    self.acks[int(frame[2:bracket])] = json.loads(frame[bracket:])[0]
                    self._cond.notify_all()

    def start(self, deployment_id, since=None, batch=False):
        """Send start_streaming and return its acknowledgement."""
        payload = {"deployment_id": deployment_id, "batch": batch}
        if since is not None:
            payload["since"] = since
        with self._cond:
            self._ack_id += 1
            ack_id = self._ack_id
        self._send(f"42{ack_id}" + json.dumps(["start_streaming", payload]))
        with self._cond:
            assert self._cond.wait_for(lambda: ack_id in self.acks, 10), "no ack"
            return self.acks[ack_id]

    def lines(self):
        """Return every line number received, in arrival order."""
        with self._cond:
            events = list(self.events)
        numbers = []
        for event, data in events:
            if event == "new_log":
                numbers.append(data["line"])
            elif event == "log_batch":
                numbers += [item["line"] for item in data["lines"]]
        return numbers

    def close(self):
        self.ws.close()


@pytest.fixture
def wire():
    opened = []

    def open_wire(url):
        client = ArrivalOrderClient(url)
        opened.append(client)
        return client

    yield open_wire
    for client in opened:
        client.close()


def write_lines(path, first, last, chunk=25, pause=0.003):
    """Append lines first..last in chunks, as a busy deployment would."""
    for start in range(first, last + 1, chunk):
        end = min(start + chunk - 1, last)
        append(path, "".join(f"line {i}\n" for i in range(start, end + 1)))
        time.sleep(pause)  # pacing the writer, not waiting for anything


def assert_exactly_once_in_order(client, first, last):
    got = client.lines()
    assert got == list(range(first, last + 1)), (
        f"expected lines {first}..{last} once each in order; got {len(got)} lines, "
        f"first {got[:5]}, duplicates {len(got) - len(set(got))}")


def test_clients_on_two_workers_each_get_every_line_once_in_order(cluster, logs, wire):
    deployment_id, path = logs.make(200)
    total = 3000
    writer = threading.Thread(target=write_lines, args=(path, 201, total))
    joined = []  # (client, first_line)
    # Some join before the writer starts, the rest while it writes: each
    # join is a hand-off between history from disk and live lines from Redis.
    requests = [(None, False), (0, True), (150, False), (None, True),
                (0, False), (100, True), (None, False), (10, False)]
    for n, (since, batch) in enumerate(requests):
        if n == 2:
            writer.start()
        client = wire(cluster.urls[n % 2])
        reply = client.start(deployment_id, since=since, batch=batch)
        assert reply["type"] == "streaming_started"
        if since is not None and since < reply["next_line"]:
            assert reply["first_line"] == since + 1
        joined.append((client, reply["first_line"]))
        time.sleep(0.05)  # spread the joins over the write
    writer.join()
    for client, first in joined:
        wait_until(lambda: (client.lines() or [0])[-1] >= total, timeout=30,
                   message="every client to reach the last line")
    for client, first in joined:
        assert_exactly_once_in_order(client, first, total)


def test_a_worker_sends_no_live_lines_without_the_shipper_and_catches_up_after(
        cluster, logs, wire):
    deployment_id, path = logs.make(10)
    clients = [wire(url) for url in cluster.urls]
    for client in clients:
        client.start(deployment_id, since=0)
    append(path, "line 11\n")
    for client in clients:
        wait_until(lambda: client.lines()[-1:] == [11], message="line 11 live")

    cluster.ship.kill()
    try:
        write_lines(path, 12, 300)
        # The workers don't tail files: with the shipper gone, nothing new
        # reaches the clients. (Absence can only be observed over a while.)
        time.sleep(1.0)
        assert all(client.lines()[-1] == 11 for client in clients)
    finally:
        cluster.ship.start()
    # The restarted shipper starts at the file's end; the first line it
    # ships shows the workers the gap, which they fill from disk.
    wait_until(lambda: len(cluster.ship.log_path.read_text().split(deployment_id)) > 2,
               timeout=20, message="the restarted shipper to follow the file")
    write_lines(path, 301, 400)
    for client in clients:
        wait_until(lambda: client.lines()[-1:] == [400], timeout=20,
                   message="the clients to catch up after the shipper restart")
        assert_exactly_once_in_order(client, 1, 400)


def test_killing_a_worker_loses_nothing_for_clients_that_resume(cluster, logs, wire):
    deployment_id, path = logs.make(50)
    victim, survivor = cluster.workers
    with LogClient(victim.url) as resuming:
        sub = resuming.follow(deployment_id, since=0)
        bystander = wire(survivor.url)
        bystander.start(deployment_id, since=0)
        write_lines(path, 51, 300)
        assert sub.wait_for_line(300, timeout=20), (sub.last_line, sub.statuses, sub._pending.keys(), bystander.lines()[-3:], resuming.errors)

        victim.kill()
        wait_until(lambda: not resuming.connected, message="the client to notice")
        write_lines(path, 301, 600)
        victim.start()
        # LogClient reconnects by itself and asks for lines after its last.
        write_lines(path, 601, 900)
        assert sub.wait_for_line(900, timeout=30)
        got = sub.drain()
        assert [n for n, _ in got] == list(range(1, 901))
        assert all(message == f"line {n}" for n, message in got)

        wait_until(lambda: bystander.lines()[-1:] == [900], timeout=20,
                   message="the client on the other worker to get every line")
        assert_exactly_once_in_order(bystander, 1, 900)

    # What the restarted worker itself sends a resuming client, unfiltered.
    late = wire(victim.url)
    assert late.start(deployment_id, since=700)["first_line"] == 701
    write_lines(path, 901, 950)
    wait_until(lambda: late.lines()[-1:] == [950], timeout=20, message="line 950")
    assert_exactly_once_in_order(late, 701, 950)


def test_sse_on_a_worker_serves_history_from_disk_then_live_lines(cluster, logs):
    deployment_id, path = logs.make(30)
    url = f"{cluster.urls[1]}/deployments/{deployment_id}/events?since=20"
    numbers = []
    with httpx.Client(timeout=20) as http:
        with http.stream("GET", url) as response:
            assert response.status_code == 200
            writer = None
            for raw in response.iter_lines():
                if raw.startswith("data: ") and '"line"' in raw:
                    numbers.append(json.loads(raw[6:])["line"])
                    if numbers[-1] == 30:
                        writer = threading.Thread(target=write_lines, args=(path, 31, 200))
                        writer.start()
                    if numbers[-1] == 200:
                        break
            writer.join()
    assert numbers == list(range(21, 201))


def test_bad_message_queue_urls_get_a_sentence():
    result = subprocess.run(
        [sys.executable, "-m", "logstream.cli", "ship", "--message-queue", "http://nope"],
        cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "is not a Redis URL: use redis://HOST:PORT/DB" in result.stderr
