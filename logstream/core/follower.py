"""Follow one growing log file in a thread and hand its new lines to subscribers."""

import bisect
import errno
import logging
import os
import queue
import select
import threading

from logstream.core.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter

try:  # inotify is Linux-only; elsewhere the follower polls.
    import inotify_simple
except ImportError:  # pragma: no cover - exercised on non-Linux machines
    inotify_simple = None

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
HISTORY_BATCH = 1000
# With inotify the follower still checks the file this often, in case an
# event was missed (a rename that raced with opening the file, say).
SAFETY_CHECK_SECONDS = 1.0
DEFAULT_POLL_INTERVAL = 0.05
# Record where a line starts about every this many bytes, so history from
# line N is found by seeking instead of rereading the whole file.
INDEX_SPACING = 1 << 20


def inotify_available():
    """Return True when this machine can watch files with inotify."""
    return inotify_simple is not None


def _open_no_follow(path):
    # O_NOFOLLOW: a log replaced by a symlink after validation is refused,
    # so no file outside the data directory is ever opened.
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


class Follower:
    """Tail one file from a single thread, numbering its lines from 1.

    ``on_lines(lines)`` receives each read's new lines as ``(number, text)``
    pairs and ``on_status(payload)`` hears of truncation, rotation and
    deletion. Both run on the follower's thread, which is the only thread
    that publishes for this file, so subscribers see lines in order.
    Subscribers join with :meth:`attach`; their history is read on the same
    thread between two reads, so there is no gap and no duplicate between
    history and live lines.
    """

    def __init__(self, path, on_lines, on_status=None, *,
                 max_line_bytes=DEFAULT_MAX_LINE_BYTES, poll_interval=None,
                 use_inotify=True, name=None):
        self.path = os.fspath(path)
        self.on_lines = on_lines
        self.on_status = on_status or (lambda payload: None)
        self.max_line_bytes = max_line_bytes
        self.poll_interval = poll_interval or DEFAULT_POLL_INTERVAL
        self.use_inotify = use_inotify and inotify_available()
        self.lines = 0  # complete lines read so far
        self._commands = queue.SimpleQueue()
        self._attached = set()
        self._attach_lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name=name or f"follower:{os.path.basename(self.path)}",
            daemon=True)
        self._fd = None
        self._inotify = None
        self._file_watch = None

    # -- called from other threads ------------------------------------------

    def start(self):
        """Start following the file."""
        self._thread.start()
        return self

    def attach(self, key, on_attach, since=None, tail=50):
        """Queue a subscriber: on_attach(history, first_line, next_line) runs on
        the follower thread, and returns once live lines follow the history."""
        with self._attach_lock:
            self._attached.add(key)
        self._commands.put((key, on_attach, since, tail))
        self._wake()

    def detach(self, key):
        """Forget a subscriber; waits while its history is being sent."""
        with self._attach_lock:
            self._attached.discard(key)

    def stop(self, timeout=5.0):
        """Stop the thread and close the file; return True when it ended."""
        self._stopping.set()
        self._wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _wake(self):
        # Under the lock: once the thread has closed the pipe its fd number
        # may be reused by another file, which must never receive our byte.
        with self._wake_lock:
            if self._wake_w is None:
                return
            try:
                os.write(self._wake_w, b"x")
            except BlockingIOError:
                pass  # the pipe is full, so the thread is awake anyway

    # -- the follower thread ------------------------------------------------

    def _run(self):
        try:
            if self.use_inotify:
                self._inotify = inotify_simple.INotify()
                flags = inotify_simple.flags
                self._inotify.add_watch(
                    os.path.dirname(self.path) or ".",
                    flags.CREATE | flags.MOVED_TO | flags.MOVED_FROM | flags.DELETE)
            self._open_file(scan=True)
            poller = select.poll()
            poller.register(self._wake_r, select.POLLIN)
            if self._inotify is not None:
                poller.register(self._inotify.fileno(), select.POLLIN)
                timeout = SAFETY_CHECK_SECONDS
            else:
                timeout = self.poll_interval
            while not self._stopping.is_set():
                self._read_new()
                self._check_file()
                self._run_commands()
                if self._stopping.is_set():
                    break
                poller.poll(timeout * 1000)
                self._drain_wakeups()
        except Exception:  # pragma: no cover - a bug; keep the server alive
            log.exception("follower for %s failed", self.path)
        finally:
            self._close()

    def _drain_wakeups(self):
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        if self._inotify is not None:
            self._inotify.read(timeout=0)

    def _open_file(self, scan):
        """Open the file; return False if it is missing.

        With scan, lines already in the file count as history; without, they
        are new (a rotated-in file) and will be published.
        """
        try:
            fd = _open_no_follow(self.path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):
                return False
            raise
        self._fd = fd
        self._ino = os.fstat(fd).st_ino
        if self._inotify is not None:
            flags = inotify_simple.flags
            if self._file_watch is not None:
                try:
                    self._inotify.rm_watch(self._file_watch)
                except OSError:
                    pass  # the old file is gone and took its watch with it
            self._file_watch = self._inotify.add_watch(
                self.path, flags.MODIFY | flags.ATTRIB | flags.MOVE_SELF
                | flags.DELETE_SELF | flags.DONT_FOLLOW)
        self._reset()
        if scan:
            self._scan()
        return True

    def _reset(self):
        """Forget the old file: numbering restarts at line 1."""
        self.lines = 0
        self._index_offsets = [0]
        self._index_lines = [0]
        self._splitter = LineSplitter(self.max_line_bytes)
        self._line_end = 0
        self._read_pos = 0

    def _scan(self):
        """Count the complete lines already in the file and index them."""
        offset = 0
        line_end = 0
        while chunk := os.pread(self._fd, READ_SIZE, offset):
            count = chunk.count(b"\n")
            if count:
                self.lines += count
                line_end = offset + chunk.rfind(b"\n") + 1
                self._remember(line_end)
            offset += len(chunk)
        # Start reading right after the last complete line, so a partial
        # line already on disk is picked up when its newline arrives.
        self._line_end = line_end
        self._read_pos = line_end

    def _remember(self, line_end):
        if line_end - self._index_offsets[-1] >= INDEX_SPACING:
            self._index_offsets.append(line_end)
            self._index_lines.append(self.lines)

    def _read_new(self):
        if self._fd is None:
            return
        while not self._stopping.is_set():
            chunk = os.pread(self._fd, READ_SIZE, self._read_pos)
            if not chunk:
                return
            self._read_pos += len(chunk)
            texts = self._splitter.feed(chunk)
            if not texts:
                continue
            first = self.lines + 1
            self.lines += len(texts)
            self._line_end = self._read_pos - self._splitter.held_bytes
            self._remember(self._line_end)
            self.on_lines(list(zip(range(first, first + len(texts)), texts)))

    def _check_file(self):
        """Notice truncation, rotation and deletion, and carry on."""
        if self._fd is None:
            if self._open_file(scan=False):
                self._announce("created")
            return
        try:
            on_disk = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            on_disk = None
        if on_disk is None or on_disk.st_ino != self._ino:
            self._read_new()  # the old file's last lines still count
            os.close(self._fd)
            self._fd = None
            if on_disk is not None and self._open_file(scan=False):
                self._announce("rotated")
            else:
                self._reset()
                self._announce("deleted")
            return
        if os.fstat(self._fd).st_size < self._read_pos:
            # Read the file again from its start: whatever was written after
            # the truncation is new.
            self._reset()
            self._announce("truncated")

    def _announce(self, kind):
        self.on_status({"type": kind, "next_line": self.lines + 1})
        self._read_new()

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
            chunk = os.pread(self._fd, min(READ_SIZE, self._line_end - offset), offset)
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

    def _close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        with self._wake_lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = None
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
