"""The follower on a real box: a server process, thousands of files, a stopped process."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import RawClient, append, wait_until
from logstream.core import watcher
from logstream.tools.leanclient import LeanClient
from logstream.web.server import start_server
from test_follower import hide_linux_calls

# A real server in its own process, so its threads, descriptors and inotify
# instances can be counted from /proc without the test's own in the way.
SERVER = """
import errno, logging, sys

data_dir, inotify = sys.argv[1], sys.argv[2]
if inotify == "missing":
    sys.modules["inotify_simple"] = None  # as on macOS or Windows: not importable

from logstream.web.limits import Limits
from logstream.web.server import start_server

logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
if inotify == "exhausted":
    import inotify_simple
    def exhausted(self, *args, **kwargs):
        # What inotify_init1 answers once the user's 128 instances are taken.
        raise OSError(errno.EMFILE, "Too many open files")
    inotify_simple.INotify.__init__ = exhausted
limits = Limits(joins_per_second=1e6, join_burst=1_000_000, streams_per_client=100_000)
handle = start_server(data_dir=data_dir, port=0, quiet=False, limits=limits)
print(handle.url, flush=True)
sys.stdin.read()  # until the test closes our stdin
handle.stop()
"""


class ServerProcess:
    """A logstream server running in a child process."""

    def __init__(self, data_dir, inotify="normal"):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(data_dir), inotify],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://"), self.proc.stderr.read()
        self.pid = self.proc.pid

    def fds(self):
        """Return the targets of the server's open descriptors."""
        found = []
        for fd in os.listdir(f"/proc/{self.pid}/fd"):
            try:
                found.append(os.readlink(f"/proc/{self.pid}/fd/{fd}"))
            except OSError:
                pass  # closed while listing
        return found

    def inotify_instances(self):
        return sum(target == "anon_inode:inotify" for target in self.fds())

    def threads(self):
        with open(f"/proc/{self.pid}/status") as fp:
            return int(next(line for line in fp if line.startswith("Threads:")).split()[1])

    def stop(self):
        """Stop the server and return what it wrote to stderr."""
        if self.proc.stdin.closed:
            return self.log
        os.kill(self.pid, signal.SIGCONT)  # in case a test left it stopped
        self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return self.log


@pytest.fixture
def serve(tmp_path):
    started = []

    def start(inotify="normal"):
        server = ServerProcess(tmp_path, inotify)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def test_truncated_and_regrown_while_the_server_is_stopped(serve, tmp_path):
    path = tmp_path / "app.log"
    path.write_text("".join(f"={i} {'y' * 30}\n" for i in range(1, 102)) + "=102 yyyy")
    server = serve()
    client = RawClient(server.url)
    try:
        reply = client.call("start_streaming",
                            {"deployment_id": "app", "batch": True, "since": 101})
        assert reply["next_line"] == 102  # caught up: no history to send
        os.kill(server.pid, signal.SIGSTOP)
        try:
            with open(path, "w") as fp:  # `: > app.log`, then the application writes
                pass
            append(path, "".join(f"new line {i} {'n' * 400}\n" for i in range(1, 11)))
            assert path.stat().st_size > 101 * 34  # regrown past the old size
        finally:
            os.kill(server.pid, signal.SIGCONT)
        wait_until(lambda: len(client.line_numbers()) == 10, message="the 10 new lines")
        statuses = [s for s in client.of("status") if s["type"] != "streaming_started"]
        assert statuses == [{"type": "truncated", "next_line": 1, "deployment_id": "app"}]
        assert client.messages() == {i: f"new line {i} {'n' * 400}" for i in range(1, 11)}
        # The status came before the new file's first line.
        kinds = [(event, data.get("type")) for event, data in client.events]
        assert kinds.index(("status", "truncated")) < kinds.index(("log_batch", None))
    finally:
        client.close()


FILES = 10_000
CLIENTS = 4


class Joiner:
    """A lean single-threaded Socket.IO client that joins many deployments and reads their lines."""

    def __init__(self, url, deployment_ids):
        self.wire = LeanClient(url)
        self.ids = deployment_ids
        self.replies = []
        self.lines = {}  # deployment id -> {line: message}

    def _handle(self, message):
        if message.startswith(b"43"):
            self.replies.append(json.loads(message[message.index(b"["):])[0])
        elif message.startswith(b'42["log_batch"'):
            batch = json.loads(message[2:])[1]
            self.lines.setdefault(batch["deployment_id"], {}).update(
                (item["line"], item["message"]) for item in batch["lines"])

    def join_all(self, window=100):
        """Join every deployment, at most window joins under way at once."""
        sent = 0
        while len(self.replies) < len(self.ids):
            while sent < len(self.ids) and sent - len(self.replies) < window:
                self.wire.emit("start_streaming", {"deployment_id": self.ids[sent],
                                                   "batch": True, "since": 1}, ack=True)
                sent += 1
            self._handle(self.wire.recv_text())

    def read_until(self, done, timeout=60):
        deadline = time.monotonic() + timeout
        while not done() and time.monotonic() < deadline:
            self._handle(self.wire.recv_text())


def test_ten_thousand_files_one_watcher_bounded_threads_and_descriptors(serve, tmp_path):
    ids = [f"f{i:05d}" for i in range(FILES)]
    for deployment_id in ids:
        (tmp_path / f"{deployment_id}.log").write_text("old\n")
    server = serve()
    joiners = [Joiner(server.url, ids[n::CLIENTS]) for n in range(CLIENTS)]
    threads_connected = server.threads()  # each connection brings its own few
    try:
        started = time.monotonic()
        run_all([joiner.join_all for joiner in joiners])
        joined = time.monotonic() - started
        for joiner in joiners:
            assert [r.get("type") for r in joiner.replies] == ["streaming_started"] * len(joiner.ids)
        for deployment_id in ids:
            append(tmp_path / f"{deployment_id}.log", f"new in {deployment_id}\n")
        run_all([lambda j=j: j.read_until(lambda: len(j.lines) == len(j.ids))
                 for j in joiners])
        lined = time.monotonic() - started - joined
        for joiner in joiners:
            # Every file's new line, numbered 2, and nothing else.
            assert joiner.lines == {d: {2: f"new in {d}"} for d in joiner.ids}
        fds = server.fds()
        assert sum(target.endswith(".log") for target in fds) == FILES  # one per file
        assert server.inotify_instances() == 1
        # Threads: the watcher (and a request thread or two finishing), not
        # one per file.
        threads = server.threads()
        assert threads <= threads_connected + 1 + 2
        print(f"\n{FILES} files: joined in {joined:.1f} s, lines in {lined:.1f} s; "
              f"{threads} threads ({threads_connected} before), {len(fds)} descriptors, "
              f"{server.inotify_instances()} inotify instance")
    finally:
        for joiner in joiners:
            joiner.wire.close()


def run_all(jobs):
    """Run each job on its own thread and wait for all; re-raise the first failure."""
    errors = []

    def run(job):
        try:
            job()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("inotify", ["exhausted", "missing"])
def test_with_inotify_exhausted_polling_takes_over_and_the_log_says_so_once(
        serve, tmp_path, inotify):
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.log").write_text("")
    server = serve(inotify=inotify)
    client = RawClient(server.url)
    try:
        for name in ("a", "b", "c"):
            client.call("start_streaming", {"deployment_id": name})
            append(tmp_path / f"{name}.log", f"line in {name}\n")
        wait_until(lambda: len(client.line_numbers()) == 3, message="lines by polling")
        assert server.inotify_instances() == 0
    finally:
        client.close()
    log = server.stop()
    assert log.count("inotify is unavailable") == 1, log
    assert log.count("polling files instead") == 1


def test_the_server_streams_with_the_linux_calls_hidden(tmp_path, monkeypatch):
    # As on macOS or Windows: no pread, pipe2, O_NOFOLLOW or inotify.
    wait_until(lambda: watcher.current() is None, message="earlier followers to stop")
    hide_linux_calls(monkeypatch)
    path = tmp_path / "app.log"
    path.write_text("1\n2\n")
    with start_server(data_dir=tmp_path, port=0) as handle:
        client = RawClient(handle.url)
        try:
            reply = client.call("start_streaming", {"deployment_id": "app", "since": 0})
            assert reply["next_line"] == 3
            append(path, "3\n")
            wait_until(lambda: client.line_numbers() == [1, 2, 3], message="line 3")
            assert watcher.current().inotify_instances() == 0
            path.write_text("new 1\n" + "n" * 50 + "\n")  # truncated and regrown
            wait_until(lambda: client.messages().get(2) == "n" * 50, message="the new file")
            assert client.messages()[1] == "new 1"
            assert [s["type"] for s in client.of("status")][-1] == "truncated"
        finally:
            client.close()
