"""Open, read and wake portably: Linux calls where they exist, plain ones elsewhere.

macOS and Windows lack some of what the follower would like to use
(``os.pread`` on Windows, ``os.pipe2`` on both, ``O_NOFOLLOW`` on Windows).
Each is looked up when called, so the fallbacks are used wherever the call is
missing — and tests can hide a call to run the fallback on Linux.
"""

import errno
import os
import selectors
import socket
import stat
import threading

# seek+read is two calls; the lock keeps another reader from moving the
# offset between them.
_seek_lock = threading.Lock()


def read_at(fd, size, offset):
    """Return up to size bytes of fd from offset, without moving a shared file offset."""
    pread = getattr(os, "pread", None)
    if pread is not None:
        return pread(fd, size, offset)
    with _seek_lock:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)


def open_no_follow(path):
    """Open path read-only, refusing a symlink (OSError ELOOP) so nothing outside it is read."""
    # O_NONBLOCK: a FIFO put in a log's place would block open() until
    # someone writes to it; callers check that what they opened is a file.
    flags = (os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
             | getattr(os, "O_NONBLOCK", 0))
    nofollow = getattr(os, "O_NOFOLLOW", None)
    if nofollow is not None:
        return os.open(path, flags | nofollow)
    # Without O_NOFOLLOW: refuse a symlink, then make sure the file opened is
    # the one looked at (a swap between the two calls is refused too).
    before = os.lstat(path)
    if stat.S_ISLNK(before.st_mode):
        raise OSError(errno.ELOOP, "refusing to follow a symlink", path)
    fd = os.open(path, flags)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise OSError(errno.ELOOP, "the file was swapped while opening it", path)
    return fd


class Wakeup:
    """A descriptor other threads make readable to wake a thread waiting in a selector."""

    def __init__(self):
        pipe2 = getattr(os, "pipe2", None)
        if pipe2 is not None:
            self._r, self._w = pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self._read, self._write = os.read, os.write
            self._files = None
        else:
            # A connected socket pair works everywhere, Windows included,
            # where select() takes sockets only.
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            self._files = (a, b)
            self._r, self._w = a.fileno(), b.fileno()
            self._read = lambda fd, n: a.recv(n)
            self._write = lambda fd, data: b.send(data)
        self._lock = threading.Lock()
        self._closed = False

    def fileno(self):
        """Return the descriptor to register with a selector."""
        return self._r

    def wake(self):
        """Make the descriptor readable; harmless after close."""
        # Under the lock: once closed, the descriptor number may be reused by
        # another file, which must never receive our byte.
        with self._lock:
            if self._closed:
                return
            try:
                self._write(self._w, b"x")
            except (BlockingIOError, InterruptedError):
                pass  # full, so the thread is awake anyway

    def drain(self):
        """Consume every pending wake-up."""
        try:
            while self._read(self._r, 4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def close(self):
        """Close both ends."""
        with self._lock:
            self._closed = True
            if self._files is not None:
                for sock in self._files:
                    sock.close()
            else:
                os.close(self._r)
                os.close(self._w)


def make_selector():
    """Return the best selector this platform has (epoll, kqueue, poll, or select)."""
    return selectors.DefaultSelector()
