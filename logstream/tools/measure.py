"""Instruments for `logstream compare`: a server process, a counting relay, stream readers."""

import random
import threading
import time

import httpx
import psutil
import socketio

from logstream.support.host import free_port
from logstream.support.processes import ChildProcess, answers, logstream_command
from logstream.tools.bytecounter import shut_down
from logstream.web.internals import gave_up
from engineio.payload import Payload
from httpx_sse import connect_sse

# python-engineio's client drops a poll response of more than 16 packets
# (a guard against floods, python-engineio#142) and then reconnects for
# ever: a reader that falls behind, or rejoins with history, never catches
# up. The browser client has no such limit, so the polling reader gets a
# larger one. It is process-wide; it also caps what an in-process server
# accepts in one POST.
POLL_PACKETS_LIMIT = 1000




WORDS = ("GET POST PUT DELETE /v1/orders /v1/users /v1/items /healthz cache hit miss "
         "db query commit retry worker queue payment auth token refresh upstream timeout "
         "INFO INFO INFO WARN ERROR DEBUG shop-api billing search checkout").split()


def make_line(seq, size):
    """Return a log-like line carrying its sequence number and write time, size bytes long.

    The filler looks like real log fields (words, ids, numbers) because
    Engine.IO gzips large poll responses: padding of one repeated byte
    would compress to almost nothing and flatter long-polling.
    """
    rng = random.Random(seq)
    text = f"seq={seq} t={time.monotonic_ns()}"
    while len(text) < size:
        kind = rng.random()
        if kind < 0.5:
            text += " " + rng.choice(WORDS)
        elif kind < 0.75:
            text += f" id={rng.getrandbits(48):012x}"
        else:
            text += f" ms={rng.randrange(1, 5000)}"
    return text[: size - 1] + "\n"


def parse_line(message):
    """Return (seq, write time in ns) from a line made by make_line."""
    seq, written, _ = message.split(" ", 2)
    return int(seq[4:]), int(written[2:])


def start_server_process(data_dir, log_path, host="127.0.0.1"):
    """Start `logstream serve` in a child process (so its CPU time is its own); wait until it answers."""
    port = free_port(host)
    url = f"http://{host}:{port}"
    server = ChildProcess("logstream serve", logstream_command(
        "serve", "--host", host, "--port", port, "--data-dir", data_dir), log_path,
        ready=lambda: answers(url + "/healthz"))
    server.url = url
    return server.start()


def server_cpu_reader(url):
    """Return a function giving the CPU seconds of the process listening at url, or None."""
    port = httpx.URL(url).port
    try:
        pid = next((c.pid for c in psutil.net_connections("tcp")
                    if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid),
                   None)
    except psutil.AccessDenied:
        pid = None
    if pid is None:
        return None
    process = psutil.Process(pid)
    return lambda: sum(process.cpu_times()[:2])


class Reader:
    """What every stream reader records: each line received, when, and each (re)start."""

    def __init__(self, deployment_id, resume=True):
        self.deployment_id = deployment_id
        self.resume = resume
        self.arrivals = []   # (seq, write ns, receive ns) for every line received
        self.starts = []     # monotonic time of every streaming_started
        self.opened_at = None
        self._seen = set()
        self.contiguous = 0  # every line up to this number has arrived
        self._lock = threading.Lock()
        self.started = threading.Event()

    def _lines(self, items):
        now = time.monotonic_ns()
        with self._lock:
            for number, message in items:
                seq, written = parse_line(message)
                self.arrivals.append((seq, written, now))
                self._seen.add(number)
            while self.contiguous + 1 in self._seen:
                self.contiguous += 1

    def _started(self):
        with self._lock:
            self.starts.append(time.monotonic())
        self.started.set()

    def since(self):
        """Return the line to resume after: None for a naive reader or a first start."""
        return self.contiguous if self.resume and self.starts else None

    def setup_seconds(self):
        return self.starts[0] - self.opened_at

    def received(self):
        with self._lock:
            return list(self.arrivals)


class SocketIOReader(Reader):
    """Follow a deployment with python-socketio over one Engine.IO transport.

    Like every Socket.IO client it reconnects by itself; on each connect it
    asks for the stream again, after its last line when ``resume`` is set.
    """

    def __init__(self, deployment_id, transport="websocket", batch=False, resume=True):
        super().__init__(deployment_id, resume)
        if transport == "polling":
            Payload.max_decode_packets = max(Payload.max_decode_packets, POLL_PACKETS_LIMIT)
        self.transport = transport
        self.batch = batch
        self.sio = socketio.Client(reconnection=True)
        self.sio.on("connect", self._on_connect)
        self.sio.on("new_log", lambda d: self._lines([(d["line"], d["message"])]))
        self.sio.on("log_batch", lambda d: self._lines(
            [(item["line"], item["message"]) for item in d["lines"]]))

    def _on_connect(self):
        request = {"deployment_id": self.deployment_id, "batch": self.batch}
        since = self.since()
        if since is not None:
            request["since"] = since

        def answered(reply):
            if reply and reply.get("type") == "streaming_started":
                self._started()

        self.sio.emit("start_streaming", request, callback=answered)

    def open(self, url):
        self.opened_at = time.monotonic()
        self.sio.connect(url, transports=[self.transport], wait_timeout=10)
        return self

    def gave_up(self):
        """Return True when the client is down and will not reconnect by itself."""
        return gave_up(self.sio)

    def close(self):
        self.sio.disconnect()


class SSEReader(Reader):
    """Follow a deployment over SSE the way EventSource does.

    It reconnects after the server's retry delay when the stream ends or
    fails, sending Last-Event-ID when ``resume`` is set; a naive reader
    reconnects without it.
    """

    def __init__(self, deployment_id, resume=True):
        super().__init__(deployment_id, resume)
        self.retry = 2.0
        self.last_event_id = None
        self._closing = threading.Event()
        self._socket = None
        self._thread = None
        # Made here, not in open(): building a client (its TLS context) takes
        # ~20 ms, which is not part of connecting.
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))

    def open(self, url):
        self.opened_at = time.monotonic()
        self._url = f"{url}/deployments/{self.deployment_id}/events"
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)
        self._thread.start()
        if not self.started.wait(10):
            raise TimeoutError(f"no streaming_started from {self._url}")
        return self

    def _run(self):
        with self._client as client:
            while not self._closing.is_set():
                headers = {}
                if self.resume and self.last_event_id is not None:
                    headers["Last-Event-ID"] = self.last_event_id
                try:
                    with connect_sse(client, "GET", self._url, headers=headers) as source:
                        if source.response.status_code != 200:
                            return  # EventSource gives up on an HTTP error too
                        self._socket = source.response.extensions["network_stream"] \
                            .get_extra_info("socket")
                        if self._closing.is_set():
                            return
                        for event in source.iter_sse():
                            self._event(event)
                except httpx.HTTPError:
                    pass  # the server went away: wait, then reconnect
                self._closing.wait(self.retry)

    def _event(self, event):
        if event.retry is not None:
            self.retry = event.retry / 1000
        if event.id:
            self.last_event_id = event.id
        if not event.data:
            return  # a heartbeat
        payload = event.json()
        if event.event == "status":
            if payload["type"] == "streaming_started":
                self._started()
        elif event.event == "message":
            self._lines([(payload["line"], payload["message"])])

    def gave_up(self):
        """Return True when the reader stopped reconnecting (an HTTP error)."""
        return self._thread is not None and not self._thread.is_alive()

    def close(self):
        self._closing.set()
        if self._socket is not None:
            shut_down(self._socket)
        if self._thread is not None:
            self._thread.join(10)


TRANSPORTS = {
    "websocket": ("Socket.IO over WebSocket, one new_log per line",
                  lambda dep, resume: SocketIOReader(dep, "websocket", False, resume)),
    "websocket-batch": ("Socket.IO over WebSocket, one log_batch per read",
                        lambda dep, resume: SocketIOReader(dep, "websocket", True, resume)),
    "sse": ("Server-Sent Events (EventSource-like reader)",
            lambda dep, resume: SSEReader(dep, resume)),
    "polling": ("Socket.IO over HTTP long-polling, one log_batch per read (as the viewer asks)",
                lambda dep, resume: SocketIOReader(dep, "polling", True, resume)),
}
