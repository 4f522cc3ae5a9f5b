"""Instruments for `logstream compare`: a server process, a counting relay, stream readers."""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import socketio

from logstream.support.host import free_port
from logstream.web.internals import gave_up
from engineio.payload import Payload
from httpx_sse import connect_sse

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
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


class ServerProcess:
    """Run `logstream serve` in a child process, so its CPU time is its own."""

    def __init__(self, data_dir, host="127.0.0.1", port=None, log_path=None):
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.log_path = Path(log_path or self.data_dir.parent / "server.log")
        self.process = None

    def start(self, timeout=30):
        """Start the server and return once /healthz answers."""
        env = dict(os.environ)
        # The child imports this very logstream, even from a source checkout.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(PACKAGE_PARENT), env.get("PYTHONPATH")]))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from logstream.cli import main; main()", "serve",
                 "--host", self.host, "--port", str(self.port),
                 "--data-dir", str(self.data_dir)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}; "
                                   f"see {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout} s; see {self.log_path}")

    def cpu_seconds(self):
        """Return the CPU time (user + system) the server has used so far."""
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def stop(self, graceful=True, timeout=10):
        """Stop the server: SIGINT lets it close its connections, SIGKILL is a crash."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT if graceful else signal.SIGKILL)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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


class Relay:
    """Forward TCP connections to a server and count the bytes that cross them.

    Clients connect to the relay instead of the server, so every byte of
    every connection a transport opens (handshakes, HTTP headers, frames,
    polls) is counted as it passes, whatever the client library.
    """

    def __init__(self, host, port):
        self.upstream = (host, port)
        self.up = self.down = self.connections = 0
        self._lock = threading.Lock()
        self._sockets = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, name="relay", daemon=True).start()

    def counts(self):
        """Return (bytes client→server, bytes server→client, connections) so far."""
        with self._lock:
            return self.up, self.down, self.connections

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                # Without this the relay would add Nagle's delay to small frames.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, server))
            pair = {"open": 2}
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up, pair, client, server),
                                 name="relay-pump", daemon=True).start()

    def _pump(self, src, dst, up, pair, client, server):
        try:
            while data := src.recv(65536):
                with self._lock:  # counted before it is passed on, so never late
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in (client, server):
                _shutdown(sock)
        with self._lock:
            pair["open"] -= 1
            done = pair["open"] == 0
            if done:
                self._sockets.difference_update((client, server))
        if done:
            client.close()
            server.close()

    def close(self):
        """Stop accepting and cut every relayed connection."""
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


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
            _shutdown(self._socket)
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
