"""Fixtures: a real logstream server on a free port, real clients, and log files."""

import os
import subprocess
import sys
import threading
import time

import httpx
import pytest

from logstream import support
from logstream.clients.logclient import LogClient
from logstream.support import append  # noqa: F401  (tests import it from here)
from logstream.support.host import free_port
from logstream.web.server import start_server


def wait_until(predicate, timeout=10.0, interval=0.01, message="condition"):
    """Return once predicate() is true; fail the test after timeout seconds."""
    try:
        return support.wait_until(predicate, timeout, interval, what=message)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout} s waiting for {message}")


class Logs:
    """Make deployment log files in a server's data directory."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self._n = 0

    def make(self, lines=0, name=None, prefix="line"):
        """Create <name>.log holding `lines` numbered lines; return (id, path)."""
        self._n += 1
        name = name or f"dep-{os.getpid()}-{self._n}-{time.monotonic_ns() % 100000}"
        path = self.data_dir / f"{name}.log"
        path.write_text("".join(f"{prefix} {i}\n" for i in range(1, lines + 1)))
        return name, path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server on a free port, shared by one test module."""
    data_dir = tmp_path_factory.mktemp("logs")
    with start_server(data_dir=data_dir, port=0, line_interval=0.05) as handle:
        yield handle


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


def serve_process(*args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, **options):
    """Start `logstream serve ARGS` on a free port in its own process; return (process, url).

    Send its output to a file or DEVNULL, or read it: a pipe nobody reads fills
    with the request log and stalls the server.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "logstream", "serve", "--port", str(port), *args],
        stdout=stdout, stderr=stderr, **options)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, "logstream serve")
    return process, url


def wait_healthy(url, what="the server", timeout=30):
    """Return once url's /healthz answers 200; fail the test after timeout seconds."""
    def healthy():
        try:
            return httpx.get(url + "/healthz").status_code == 200
        except httpx.TransportError:
            return False
    wait_until(healthy, timeout=timeout, message=f"{what} to answer")


@pytest.fixture
def logs(server):
    return Logs(server.data_dir)


@pytest.fixture
def connect(server):
    """Open real python-socketio clients to the server; closed after the test."""
    opened = []

    def open_client(url=None, **options):
        client = LogClient(url or server.url, **options).connect()
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def thread_names():
    return sorted(t.name for t in threading.enumerate())


def open_fds(kinds=("pipe:", "anon_inode:", "/")):
    """Return this process's open file descriptors that are files, pipes or inotify
    instances: what a follower opens (sockets belong to the test's clients)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed while listing
        if target.startswith(kinds):
            found.append(target)
    return sorted(found)


def fds_opened_since(before):
    """Return the open file descriptors (as open_fds() names them) that were not open
    in ``before``. Fds that other tests' servers close meanwhile (a rotated log read
    out for its grace period) don't count: only what is still open and new does."""
    from collections import Counter
    return sorted((Counter(open_fds()) - Counter(before)).elements())


class RawClient:
    """A plain python-socketio client that records every event, unfiltered.

    Unlike LogClient it neither reorders nor drops duplicates, so tests
    can check what the server really sent.
    """

    def __init__(self, url, transports=("websocket",), auth=None):
        import socketio

        self.sio = socketio.Client(reconnection=False)
        self.events = []
        self._lock = threading.Lock()
        self.sio.on("*", self._record)
        try:
            self.sio.connect(url, transports=list(transports), auth=auth, wait_timeout=10)
        except socketio.exceptions.ConnectionError:
            self.sio.disconnect()  # close the half-open transport
            raise

    def _record(self, event, data=None):
        with self._lock:
            self.events.append((event, data))

    def of(self, *names):
        """Return the payloads of the events with these names, in arrival order."""
        with self._lock:
            return [data for event, data in self.events if event in names]

    def line_numbers(self, deployment_id=None):
        """Return every line number received (new_log and log_batch), sorted."""
        numbers = []
        for event, data in list(self.events):
            if deployment_id is not None and data.get("deployment_id") != deployment_id:
                continue
            if event == "new_log":
                numbers.append(data["line"])
            elif event == "log_batch":
                numbers += [item["line"] for item in data["lines"]]
        return sorted(numbers)

    def messages(self, deployment_id=None):
        """Return {line: message} for every line received."""
        found = {}
        for event, data in list(self.events):
            if deployment_id is not None and data.get("deployment_id") != deployment_id:
                continue
            if event == "new_log":
                found[data["line"]] = data["message"]
            elif event == "log_batch":
                found.update((item["line"], item["message"]) for item in data["lines"])
        return found

    def call(self, event, data=None, timeout=10):
        return self.sio.call(event, data, timeout=timeout)

    def close(self):
        self.sio.disconnect()


@pytest.fixture
def raw(server):
    """Open RawClients to the server; closed after the test."""
    opened = []

    def open_raw(url=None, **options):
        client = RawClient(url or server.url, **options)
        opened.append(client)
        return client

    yield open_raw
    for client in opened:
        client.close()
