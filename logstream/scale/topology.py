"""Run a scale-out topology on this machine: redis-server, web workers and a shipper."""

import shutil
import tempfile
from pathlib import Path

from logstream.support.host import free_port
from logstream.support.processes import ChildProcess, answers, logstream_command


def redis_server_path():
    """Return the path of redis-server, or None when it is not installed."""
    return shutil.which("redis-server")


def redis_process(port, scratch):
    """Return a throwaway redis-server on port (nothing saved), ready once it answers a ping.

    Its ``url`` is the ``redis://`` URL of database 0.
    """
    import redis

    url = f"redis://127.0.0.1:{port}/0"

    def pings():
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return client.ping()
        except redis.ConnectionError:
            return False
        finally:
            client.close()

    child = ChildProcess("redis-server", [
        redis_server_path(), "--port", port, "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", scratch], Path(scratch) / "redis.out", ready=pings)
    child.url = url
    return child


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
        scratch = Path(self._scratch.name)
        self.redis = redis_process(free_port(), scratch)
        self.redis_url = self.redis.url
        self.workers = []
        for n in range(workers):
            worker_port = free_port()
            url = f"http://127.0.0.1:{worker_port}"
            child = ChildProcess(f"worker{n + 1}", logstream_command(
                "serve", "--port", worker_port, "--data-dir", self.data_dir,
                "--message-queue", self.redis_url), scratch / f"worker{n + 1}.out",
                ready=lambda url=url: answers(url + "/healthz"))
            child.url = url
            self.workers.append(child)
        self.shipper = ChildProcess("shipper", logstream_command(
            "ship", "--data-dir", self.data_dir, "--message-queue", self.redis_url),
            scratch / "shipper.out")

    @property
    def worker_urls(self):
        """Return the URL of every web worker."""
        return [worker.url for worker in self.workers]

    def start(self):
        """Start redis-server, then the workers and the shipper; wait until they answer."""
        self.redis.start(timeout=20)
        for worker in self.workers:
            self.start_worker(worker)
        self.shipper.start()
        return self

    def start_worker(self, worker):
        """Start (or restart) one worker and wait until it serves."""
        worker.start()

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

