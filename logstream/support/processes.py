"""Start a child process with its output in a file, wait until it is ready, stop it."""

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from logstream.support.waiting import wait_until

# The folder holding the logstream package, so children import this very copy.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent.parent


def logstream_command(*args):
    """Return the command line that runs `logstream ARGS...` with this Python."""
    return [sys.executable, "-m", "logstream", *map(str, args)]


def answers(url, timeout=1.0):
    """Return True when a GET of url answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


class ChildProcess:
    """One child process whose output goes to a file, not to the terminal or notebook.

    ``ready()``, when given, says when a started child is ready to use (a
    server answers, say); start() waits for it. ``env`` is the child's whole
    environment; by default it is ours, with this logstream first on
    PYTHONPATH.
    """

    def __init__(self, name, args, log_path, ready=None, env=None):
        self.name = name
        self.args = [str(arg) for arg in args]
        self.log_path = Path(log_path)
        self.ready = ready
        self.env = env
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def start(self, timeout=30.0):
        """Start it and wait until it is ready; raise, with its output, if it exits first."""
        env = self.env
        if env is None:
            # The child imports this logstream, even from a source checkout.
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")])))
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        if self.ready is not None:
            try:
                wait_until(self._is_ready, timeout=timeout, what=f"{self.name} to be ready")
            except (TimeoutError, RuntimeError):
                self.stop()
                raise
        return self

    def _is_ready(self):
        if not self.running():
            raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}:\n"
                               f"{self.output()}")
        return self.ready()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self, tail=2000):
        """Return the last tail characters it printed."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def kill(self):
        """Kill it hard, as a crash would."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Ask it to end with sig; kill it when it takes longer than timeout."""
        if self.running():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
