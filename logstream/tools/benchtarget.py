"""The server a benchmark measures: started here or found by its port, and sampled while it runs."""

import os
import signal
import sys
import threading
import time
from urllib.parse import urlsplit

import psutil

from logstream.support.host import free_port
from logstream.support.processes import ChildProcess, answers, logstream_command

SAMPLE_SECONDS = 0.05


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


class Target:
    """A server under test: its url, data directory and process (if known)."""

    def __init__(self, design, url, data_dir, process=None, child=None):
        self.design = design
        self.url = url
        self.data_dir = data_dir
        self.process = process
        self._child = child

    @classmethod
    def start(cls, design, data_dir, timeout=30.0, options=()):
        """Start a server process of the given design (with `logstream serve` options) and wait until it answers."""
        port = free_port()
        if design == "logstream":
            command = logstream_command("serve", "--port", port, "--data-dir", data_dir, *options)
        elif design == "naive":
            command = [sys.executable, "-m", "logstream.tools.baseline_app", "--port", str(port),
                       "--data-dir", str(data_dir)]
        else:
            raise BenchError(f"There is no server design called {design!r}; use logstream or naive.")
        url = f"http://127.0.0.1:{port}"
        child = ChildProcess(f"the {design} server", command,
                             os.path.join(data_dir, f".{design}-server.out"),
                             ready=lambda: answers(url + "/healthz"))
        try:
            child.start(timeout)
        except (TimeoutError, RuntimeError) as error:
            raise BenchError(f"The {design} server did not start: {error}\n{child.output()}")
        return cls(design, url, data_dir, psutil.Process(child.pid), child)

    @classmethod
    def existing(cls, url, data_dir):
        """Describe a server someone else started; find its process by its port."""
        if not data_dir or not os.path.isdir(data_dir):
            raise BenchError("--url needs --data-dir: the folder that server reads its "
                             "<deployment>.log files from, so the benchmark can write to it.")
        target = cls("logstream", url.rstrip("/"), data_dir)
        if not answers(target.url + "/healthz"):
            raise BenchError(f"No logstream server answers at {url}/healthz.")
        port = urlsplit(url).port or 80
        try:
            for conn in psutil.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                    target.process = psutil.Process(conn.pid)
        except psutil.AccessDenied:
            pass  # server CPU and memory will be reported as unknown
        return target

    def stop(self):
        """Stop the server if the benchmark started it."""
        if self._child is not None:
            self._child.stop(signal.SIGINT, timeout=5)


class Sampler:
    """Sample a process's CPU time, memory and threads while a scenario runs."""

    def __init__(self, process):
        self.process = process
        self.rss_peak = self.threads_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        with self.process.oneshot():
            self.rss_peak = max(self.rss_peak, self.process.memory_info().rss)
            self.threads_peak = max(self.threads_peak, self.process.num_threads())

    def _run(self):
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                self._sample()
            except psutil.Error:
                return

    def __enter__(self):
        if self.process is not None:
            times = self.process.cpu_times()
            self._cpu0, self._t0 = times.user + times.system, time.perf_counter()
            self._sample()
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.process is None:
            self.result = None
            return
        self._stop.set()
        self._thread.join()
        times = self.process.cpu_times()
        seconds = time.perf_counter() - self._t0
        self.result = {
            "cpu_percent": round(100 * (times.user + times.system - self._cpu0) / seconds, 1),
            "rss_mb_peak": round(self.rss_peak / 2**20, 1),
            "threads_peak": self.threads_peak,
        }


def snapshot(process):
    """Return a process's memory, thread count and open descriptors now."""
    with process.oneshot():
        return {"rss_mb": round(process.memory_info().rss / 2**20, 1),
                "threads": process.num_threads(),
                "fds": process.num_fds() if hasattr(process, "num_fds") else None}
