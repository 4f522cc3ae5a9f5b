"""Run a scale-out topology on this machine: redis-server, web workers and a shipper."""

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from logstream.support.host import free_port




def redis_server_path():
    """Return the path of redis-server, or None when it is not installed."""
    return shutil.which("redis-server")


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


class Child:
    """One child process whose output goes to a file, not to the notebook."""

    def __init__(self, name, args, log_dir):
        self.name = name
        self.args = args
        self.log_path = Path(log_dir) / f"{name}.out"
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """Kill it hard, as a crash would."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Topology:
    """redis-server, `workers` × `logstream serve --message-queue` and one `logstream ship`.

    Use it as a context manager; every process is stopped at the end.
    """

    def __init__(self, data_dir, workers=2):
        if redis_server_path() is None:
            raise RuntimeError("redis-server is not installed (Debian: apt-get install "
                               "redis-server), so the scale-out topology can't start.")
        self.data_dir = Path(data_dir)
        self._scratch = tempfile.TemporaryDirectory(prefix="logstream-topology-")
        port = free_port()
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        self.redis = Child("redis", [redis_server_path(), "--port", str(port), "--bind",
                                     "127.0.0.1", "--save", "", "--appendonly", "no",
                                     "--dir", self._scratch.name], self._scratch.name)
        logstream = [sys.executable, "-m", "logstream.cli"]
        self.workers = []
        for n in range(workers):
            worker_port = free_port()
            child = Child(f"worker{n + 1}", logstream + [
                "serve", "--port", str(worker_port), "--data-dir", str(self.data_dir),
                "--message-queue", self.redis_url], self._scratch.name)
            child.url = f"http://127.0.0.1:{worker_port}"
            self.workers.append(child)
        self.shipper = Child("shipper", logstream + [
            "ship", "--data-dir", str(self.data_dir), "--message-queue", self.redis_url],
            self._scratch.name)

    @property
    def worker_urls(self):
        """Return the URL of every web worker."""
        return [worker.url for worker in self.workers]

    def start(self):
        """Start redis-server, then the workers and the shipper; wait until they answer."""
        import redis

        self.redis.start()
        client = redis.Redis.from_url(self.redis_url)
        try:
            _wait(lambda: self._pings(client), 20, "redis-server answering")
        finally:
            client.close()
        for worker in self.workers:
            self.start_worker(worker)
        self.shipper.start()
        return self

    def start_worker(self, worker):
        """Start (or restart) one worker and wait until it serves."""
        worker.start()
        _wait(lambda: self._healthy(worker), 30, f"{worker.name} serving")

    @staticmethod
    def _pings(client):
        import redis

        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    @staticmethod
    def _healthy(worker):
        if not worker.running():
            raise RuntimeError(f"{worker.name} exited: {worker.log_path.read_text()[-2000:]}")
        try:
            return httpx.get(worker.url + "/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self):
        """Stop every process and remove the scratch folder."""
        for child in [self.shipper, *self.workers, self.redis]:
            child.stop()
        self._scratch.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def topology_available():
    """Return (True, "") when a topology can start here, else (False, why)."""
    if redis_server_path() is None:
        return False, ("redis-server is not installed on this machine "
                       "(Debian: apt-get install redis-server).")
    try:
        import redis  # noqa: F401
    except ImportError:
        return False, "the redis Python package is missing: pip install 'logstream[scale]'."
    return True, ""

