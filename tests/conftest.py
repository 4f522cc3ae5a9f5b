"""Fixtures: a real logstream server on a free port, real clients, and log files."""

import os
import threading
import time

import pytest

from logstream.client import LogClient
from logstream.server import start_server


def wait_until(predicate, timeout=10.0, interval=0.01, message="condition"):
    """Return once predicate() is true; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def append(path, text):
    """Append text to a file in one write, as a logging process would."""
    with open(path, "a", encoding="utf-8", newline="") as fp:
        fp.write(text)


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


def open_fds():
    return len(os.listdir("/proc/self/fd"))
