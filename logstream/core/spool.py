"""Copy a stream such as standard input into a bounded spool file that a Follower follows."""

import io
import os
import select
import shutil
import tempfile
import threading

# The spool of one stream holds at most this many bytes; past it the file is
# replaced by a fresh one (the follower reports a rotation and numbers from 1).
DEFAULT_SPOOL_BYTES = 64 * 1024 * 1024
MIN_SPOOL_BYTES = 1024
READ_SIZE = 64 * 1024


class StdinSpool:
    """Read a binary stream on a thread and append it to ``<state dir>/<name>.log``.

    When the file would pass ``max_bytes`` it is replaced, at a line boundary
    when there is one, by a new file holding what comes next, so the disk
    used stays under ``max_bytes`` plus one read. When the stream ends, a
    missing final newline is added and ``finished`` becomes true.
    """

    def __init__(self, stream, name="stdin", max_bytes=DEFAULT_SPOOL_BYTES, state_dir=None):
        if max_bytes < MIN_SPOOL_BYTES:
            raise ValueError(f"a spool needs at least {MIN_SPOOL_BYTES} bytes, not {max_bytes}.")
        self.stream = stream
        self.name = name
        self.max_bytes = max_bytes
        self._own_dir = state_dir is None
        self.state_dir = state_dir or tempfile.mkdtemp(prefix="logstream-spool-")
        self.path = os.path.join(self.state_dir, "stdin.log")
        self.rotations = 0
        self._done = threading.Event()
        self._fd = self._create(self.path)
        self._size = 0
        self._last = b"\n"
        self._thread = threading.Thread(target=self._run, name=f"spool:{name}", daemon=True)

    @property
    def finished(self):
        """Return True once the stream has ended and every byte is in the spool."""
        return self._done.is_set()

    def start(self):
        """Start copying the stream."""
        self._thread.start()
        return self

    def wait(self, timeout=None):
        """Wait until the stream has ended; return True if it has."""
        return self._done.wait(timeout)

    @staticmethod
    def _create(path):
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)

    def _reader(self):
        """Return a function that reads at most n bytes of the stream, b"" at its end.

        A stream with a descriptor is read through it, after select says it
        has bytes: waiting in select, not in read(), lets the green threads
        of `logstream serve` run meanwhile (gevent patches select).
        """
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            return getattr(self.stream, "read1", self.stream.read)

        def read(size):
            try:
                select.select([fd], [], [])
            except OSError:
                pass  # select can't wait on it (a Windows pipe): just read
            return os.read(fd, size)
        return read

    def _run(self):
        read = self._reader()
        try:
            while chunk := read(READ_SIZE):
                self._write(chunk)
        except (OSError, ValueError, TypeError):
            pass  # the stream broke, or close() came first: what arrived is kept
        finally:
            if self._fd is not None and self._last != b"\n":
                self._append(b"\n")  # the last line counts even without its newline
            self._done.set()

    def _write(self, chunk):
        while chunk:
            room = self.max_bytes - self._size
            if len(chunk) <= room:
                self._append(chunk)
                return
            cut = chunk.rfind(b"\n", 0, room) + 1
            if cut == 0 and self._size == 0:
                cut = room  # one line longer than the whole budget: split it
            self._append(chunk[:cut])
            self._rotate()
            chunk = chunk[cut:]

    def _append(self, data):
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)
        if data:
            self._last = data[-1:]

    def _rotate(self):
        """Replace the spool by an empty file in one rename, as logrotate's create mode does."""
        fresh = self.path + ".new"
        fd = self._create(fresh)
        os.replace(fresh, self.path)
        os.close(self._fd)
        self._fd = fd
        self._size = 0
        self.rotations += 1

    def close(self):
        """Stop writing and delete the spool (the reading thread ends with the process)."""
        fd, self._fd = self._fd, None
        if fd is not None and self._done.is_set():
            os.close(fd)
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)
