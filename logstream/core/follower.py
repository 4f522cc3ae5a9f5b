"""Follow one growing log file and hand its new lines to subscribers."""

import bisect
import errno
import logging
import os
import queue
import stat
import threading
import time

from logstream.core import watcher as watching
from logstream.core.fileio import open_no_follow, read_at
from logstream.core.fingerprint import Fingerprint, stat_path
from logstream.core.lineindex import INDEX_SPACING, INDEXES
from logstream.core.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter
from logstream.core.watcher import DEFAULT_POLL_INTERVAL, inotify_available  # noqa: F401

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
HISTORY_BATCH = 1000
# After a rename, the application may write to the old file until it reopens
# its log (logrotate's postrotate signal): keep reading it this long.
DEFAULT_ROTATE_WAIT = 5.0

_open_no_follow = open_no_follow  # the name logstream.scale.relay imports


class Follower:
    """Tail one file, numbering its lines from 1, on the process's watcher thread.

    ``on_lines(lines)`` receives each read's new lines as ``(number, text)``
    pairs and ``on_status(payload)`` hears of truncation, rotation and
    deletion; ``on_failure(exc)`` hears that following failed (the follower
    has then stopped). All run on the watcher's thread, the only one that
    publishes for this file, so subscribers see lines in order. Subscribers
    join with :meth:`attach`; their history is read on the same thread between
    two reads, so there is no gap and no duplicate between history and live
    lines.
    """

    def __init__(self, path, on_lines, on_status=None, *,
                 max_line_bytes=DEFAULT_MAX_LINE_BYTES, poll_interval=None,
                 use_inotify=True, name=None, rotate_wait=DEFAULT_ROTATE_WAIT,
                 on_failure=None):
        self.path = os.fspath(path)
        self.name = name or f"follower:{os.path.basename(self.path)}"
        self.on_lines = on_lines
        self.on_status = on_status or (lambda payload: None)
        self.on_failure = on_failure
        self.max_line_bytes = max_line_bytes
        self.poll_interval = poll_interval or DEFAULT_POLL_INTERVAL
        self.rotate_wait = DEFAULT_ROTATE_WAIT if rotate_wait is None else rotate_wait
        self.wants_inotify = use_inotify  # False: polling was asked for (--poll)
        self.use_inotify = use_inotify and inotify_available()
        self.watched = False  # set by the watcher: inotify tells us of changes
        self.watch_key = None
        self.lines = 0  # complete lines read so far
        self.error = None  # the exception that ended following, if one did
        self._commands = queue.SimpleQueue()
        self._attached = set()
        self._attach_lock = threading.Lock()
        self._watcher = None
        self._started = False
        self._stopped = threading.Event()
        self._fd = None
        self._fp = None
        self._draining_until = None  # set while reading a renamed file's last lines
        self._seen = None
        self._reset()

    # -- called from other threads ------------------------------------------

    def start(self):
        """Start following the file."""
        self._watcher = watching.join(self)
        return self

    def attach(self, key, on_attach, since=None, tail=50, serve=True):
        """Queue a subscriber: on_attach(history, first_line, next_line) runs
        between two reads, before live lines reach it.

        With ``serve`` it is served at once (serve_attached); a caller that
        holds a lock on_attach might need passes False and calls
        serve_attached() once it has let go.
        """
        with self._attach_lock:
            self._attached.add(key)
        self._commands.put((key, on_attach, since, tail))
        if serve:
            self.serve_attached()

    def serve_attached(self):
        """Serve the subscribers attach() queued: on this thread when the watcher is between turns, else on its next."""
        if self._watcher is not None and not self._watcher.serve_now(self):
            self._watcher.wake(self)

    @property
    def started(self):
        """True once the watcher has opened the file and counted its lines."""
        return self._started

    def detach(self, key):
        """Forget a subscriber; waits while its history is being sent."""
        with self._attach_lock:
            self._attached.discard(key)

    def stop(self, timeout=5.0):
        """Stop following and close the file; return True once nothing more will be published."""
        if self._watcher is None or self._stopped.is_set():
            return True
        return self._watcher.remove(self, timeout)

    def wait_stopped(self, timeout=None):
        """Return True once the follower has stopped (closed, nothing more to publish)."""
        return self._stopped.wait(timeout)

    # -- on the watcher thread ----------------------------------------------

    def wants_ticks(self):
        """Return True when the file must be checked every poll interval."""
        return not self.watched or self._draining_until is not None

    def step(self, full=True):
        """Read what is new, notice truncation and rotation, then serve new subscribers.

        ``full`` is False for a routine poll: a file whose size and time
        haven't changed is left alone.
        """
        if not self._started:
            self._started = True
            self._open_file(scan=True)
        self._check_file(full)
        self._run_commands()

    def failed(self, exc):
        """Record that following failed (the watcher has already let go) and tell on_failure."""
        self.error = exc
        log.error("following %s failed: %s: %s", self.path, type(exc).__name__, exc,
                  exc_info=exc)
        if self.on_failure is not None:
            try:
                self.on_failure(exc)
            except Exception:  # pragma: no cover - a bug in the reporter itself
                log.exception("reporting the failure of %s failed", self.path)

    def close(self):
        """Close the file; called by the watcher once it has let go of this follower."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._stopped.set()

    def _open_file(self, scan):
        """Open the file; return False if it is missing.

        With scan, lines already in the file count as history; without, they
        are new (a rotated-in file) and will be published.
        """
        try:
            fd = open_no_follow(self.path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return False
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return False
        self._fd = fd
        self._fp = Fingerprint(info)
        self._reset()
        if scan:
            self._scan()
        self._fp.settle(fd, self._read_pos)
        return True

    def _reset(self):
        """Forget the old file: numbering restarts at line 1."""
        self.lines = 0
        self._index_offsets = [0]
        self._index_lines = [0]
        self._splitter = LineSplitter(self.max_line_bytes)
        self._line_end = 0
        self._read_pos = 0
        self._seen = None
        if self._fp is not None:
            self._fp.guard = b""
            self._fp.head_len = 0

    def _scan(self):
        """Take the count and index of the complete lines already in the file.

        The process's shared index has them when the listing, a search or an
        earlier follower already read the file: only what was added since is read.
        """
        index = INDEXES.index(self._fd, self.path)
        self.lines = index.total
        self._index_offsets, self._index_lines = index.offsets, index.lines
        # Start reading right after the last complete line, so a partial
        # line already on disk is picked up when its newline arrives.
        self._line_end = index.end
        self._read_pos = index.end

    def _remember(self, line_end):
        if line_end - self._index_offsets[-1] >= INDEX_SPACING:
            self._index_offsets.append(line_end)
            self._index_lines.append(self.lines)

    def _read_new(self):
        """Publish the complete lines written since the last read."""
        while self._fd is not None:
            # Asking for just what is there avoids allocating a 1 MiB buffer
            # for every empty read, which thousands of files would feel.
            size = os.fstat(self._fd).st_size
            if size < self._read_pos:
                self._restart("truncated")
                return
            chunk = self._fp.read_on(self._fd, self._read_pos,
                                     min(READ_SIZE, size - self._read_pos))
            if chunk is None:
                # The bytes before our offset changed: the file was truncated
                # and written again. What we hold of a line belonged to the
                # old file, so it is dropped, never published torn.
                self._restart("truncated")
                return
            if not chunk:
                return
            self._read_pos += len(chunk)
            self._fp.advance(self._fd, chunk, self._read_pos)
            texts = self._splitter.feed(chunk)
            if not texts:
                continue
            first = self.lines + 1
            self.lines += len(texts)
            self._line_end = self._read_pos - self._splitter.held_bytes
            self._remember(self._line_end)
            self.on_lines(list(zip(range(first, first + len(texts)), texts)))

    def _check_file(self, full):
        """Notice truncation, rotation and deletion, and carry on."""
        if self._fd is None:
            if self._open_file(scan=False):
                self._announce("created")
            return
        if self._draining_until is not None:
            self._read_new()
            if time.monotonic() >= self._draining_until:
                self._switch()
            return
        if not self._fp.is_path(stat_path(self.path)):
            self._read_new()  # the old file's last lines still count
            if (self.rotate_wait > 0 and self._fd is not None
                    and os.fstat(self._fd).st_nlink > 0):
                # Renamed: the application may still be writing to it until
                # it reopens its log. (A deleted file is let go at once.)
                self._draining_until = time.monotonic() + self.rotate_wait
            else:
                self._switch()
            return
        info = os.fstat(self._fd)
        seen = (info.st_size, info.st_mtime_ns)
        if not full and seen == self._seen:
            return
        self._seen = seen
        if info.st_size < self._read_pos or self._fp.head_changed(self._fd):
            # Read the file again from its start: whatever was written after
            # the truncation is new.
            self._restart("truncated")
            return
        self._read_new()

    def _switch(self):
        """Let go of the old file and follow whatever the path now holds."""
        self._draining_until = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._open_file(scan=False):
            self._announce("rotated")
        else:
            self._reset()
            self._announce("deleted")

    def _restart(self, kind):
        self._reset()
        self._announce(kind)

    def _announce(self, kind):
        self.on_status({"type": kind, "next_line": self.lines + 1})
        self._read_new()

    def run_commands(self):
        """Serve the queued subscribers; only while the watcher is between reads of this file (Watcher.serve_now)."""
        self._run_commands()

    def _run_commands(self):
        while True:
            try:
                key, on_attach, since, tail = self._commands.get_nowait()
            except queue.Empty:
                return
            with self._attach_lock:
                if key not in self._attached:
                    continue  # it left before its turn came
                if since is None or since > self.lines:
                    # since beyond the end means the file was truncated or
                    # rotated while the client was away: start over at line 1.
                    first = 1 if since is not None else max(1, self.lines - tail + 1)
                else:
                    first = since + 1
                on_attach(self._history(first), first, self.lines + 1)

    def _history(self, first):
        """Yield lists of (number, text) for lines first..self.lines."""
        if self._fd is None or first > self.lines:
            return
        at = bisect.bisect_right(self._index_lines, first - 1) - 1
        offset, number = self._index_offsets[at], self._index_lines[at]
        splitter = LineSplitter(self.max_line_bytes)
        batch = []
        while offset < self._line_end:
            chunk = read_at(self._fd, min(READ_SIZE, self._line_end - offset), offset)
            if not chunk:
                break
            offset += len(chunk)
            for text in splitter.feed(chunk):
                number += 1
                if number >= first:
                    batch.append((number, text))
                    if len(batch) == HISTORY_BATCH:
                        yield batch
                        batch = []
        if batch:
            yield batch
