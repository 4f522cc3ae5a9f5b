"""Watch every followed file of the process from one thread and one inotify instance.

Linux allows 128 inotify instances per user by default, so one per followed
file fails silently past a hundred or so. Here one :class:`Watcher` serves the
whole process: it watches each followed file's *directory* once (a directory
watch reports writes, truncations, renames and creations of the files in it,
by name), and its one thread does every follower's reading, checking and
publishing. Threads and inotify instances stay at one whatever the number of
files; each follower holds one open file. Where inotify is missing (macOS,
Windows), turned off, or can't be had (instances or watches exhausted), the
same thread polls instead, and the log says so once.
"""

import collections
import logging
import os
import selectors
import sys
import threading
import time

from logstream.core.fileio import Wakeup, make_selector

try:  # inotify is Linux-only; elsewhere the watcher polls.
    import inotify_simple
except ImportError:  # pragma: no cover - exercised on non-Linux machines
    inotify_simple = None

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 0.05
# With inotify every file is still checked this often, in case an event was
# missed (a rename that raced with opening the file, say).
SAFETY_CHECK_SECONDS = 1.0
# Checking thousands of files has a cost: a round of polling may take at most
# this share of the thread's time, so polling never pins a core; the safety
# sweeps (inotify already tells of changes) a smaller one.
MAX_CHECK_SHARE = 0.2
MAX_SWEEP_SHARE = 0.05

_shared = None
_shared_lock = threading.Lock()
_told = set()  # what the log has already been told about polling


def inotify_available():
    """Return True when this machine can watch files with inotify."""
    return inotify_simple is not None


def _tell_once(what, message, *args):
    if what not in _told:
        _told.add(what)
        log.warning(message, *args)


def join(follower):
    """Return the process's watcher, started if need be, with follower counted in."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Watcher()
        _shared._users += 1
        watcher = _shared
    watcher._command(("add", follower, None))
    return watcher


def current():
    """Return the running watcher, or None when nothing is followed."""
    return _shared


def followed_names():
    """Return the names of every follower of the process, sorted."""
    watcher = _shared
    return sorted(f.name for f in watcher.followers()) if watcher is not None else []


class Watcher:
    """One thread that wakes, reads and checks every follower of the process."""

    def __init__(self):
        self._users = 0  # followers counted in; guarded by _shared_lock
        self._commands = collections.deque()
        self._wakeup = Wakeup()
        self._selector = make_selector()
        self._selector.register(self._wakeup, selectors.EVENT_READ)
        self._inotify = None
        self._inotify_failed = not inotify_available()
        self._dirs = {}  # directory -> [watch descriptor, followers in it]
        self._wd_dirs = {}
        self._by_name = collections.defaultdict(set)  # (directory, name) -> followers
        self._followers = set()
        self._list_lock = threading.Lock()  # for other threads' view of _followers
        self._ticking = set()  # followers checked every poll interval
        self._due = set()  # followers to step on this turn of the loop
        self._next_safety = time.monotonic() + SAFETY_CHECK_SECONDS
        self._next_tick = 0.0
        self._poll_interval = float("inf")  # the smallest asked for
        self._closed = False
        # Held while a turn reads, checks and publishes (see serve_now).
        self._serving = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="logstream:watcher", daemon=True)
        self.thread.start()

    # -- called from other threads ------------------------------------------

    def _command(self, command):
        self._commands.append(command)
        self._wakeup.wake()

    def wake(self, follower):
        """Have follower stepped soon (a subscriber is waiting, say)."""
        self._command(("step", follower, None))

    def remove(self, follower, timeout=5.0):
        """Stop watching follower and close its file; return True once done."""
        if threading.current_thread() is self.thread:
            self._remove(follower)
            return True
        done = threading.Event()
        self._command(("remove", follower, done))
        return done.wait(timeout)

    def followers(self):
        """Return the followers being watched right now."""
        with self._list_lock:
            return list(self._followers)

    def inotify_instances(self):
        """Return how many inotify instances this watcher holds (0 or 1)."""
        return int(self._inotify is not None)

    # -- the watcher thread -------------------------------------------------

    def _run(self):
        while not self._closed:
            try:
                self._turn()
            except Exception:  # pragma: no cover - a bug here; keep watching
                log.exception("the file watcher failed; carrying on")
                time.sleep(0.1)

    def serve_now(self, follower):
        """Serve follower's queued subscribers on the calling thread if no turn is under way; return True if served.

        Between two turns every follower is between two reads, so a
        subscriber's history and its first live line meet exactly; a turn
        holds the lock through all its reading and publishing (which, on
        green threads, pauses to let sockets in). Serving here spares a
        joining client two task switches and a wake-up of this thread.
        """
        if not follower.started or follower not in self._followers:
            return False  # the watcher has not opened its file yet
        if not self._serving.acquire(blocking=False):
            return False
        try:
            if follower not in self._followers:
                return False
            follower.run_commands()
        finally:
            self._serving.release()
        return True

    def _turn(self):
        now = time.monotonic()
        deadline = self._next_safety
        if self._ticking:
            deadline = min(deadline, self._next_tick)
        timeout = 0 if self._commands or self._due else max(0.0, deadline - now)
        for key, _ in self._selector.select(timeout):
            if key.fileobj is self._wakeup:
                self._wakeup.drain()
            else:
                self._read_events()
        with self._serving:
            self._process()

    def _process(self):
        while self._commands:
            kind, follower, done = self._commands.popleft()
            if kind == "add":
                self._add(follower)
            elif kind == "remove":
                self._remove(follower)
                done.set()
            elif follower in self._followers:
                self._due.add(follower)
            if self._closed:
                return
        due, self._due = self._due, set()
        for follower in due:
            self._step(follower, full=True)
        start = time.monotonic()
        if start >= self._next_safety:
            checked, full = list(self._followers), True
        elif self._ticking and start >= self._next_tick:
            checked, full = list(self._ticking), False
        else:
            return
        for follower in checked:
            if follower not in due:
                self._step(follower, full)
        # Thousands of files: space the rounds so that checking them takes
        # at most MAX_CHECK_SHARE of the time.
        spent = time.monotonic() - start
        self._next_tick = start + max(self._poll_interval, spent / MAX_CHECK_SHARE)
        if full:
            self._next_safety = start + max(SAFETY_CHECK_SECONDS, spent / MAX_SWEEP_SHARE)

    def _step(self, follower, full):
        if follower not in self._followers:
            return
        try:
            follower.step(full)
        except Exception as exc:
            self._remove(follower)
            follower.failed(exc)
            return
        if follower.wants_ticks():
            self._ticking.add(follower)
        else:
            self._ticking.discard(follower)

    def _add(self, follower):
        with self._list_lock:
            self._followers.add(follower)
        self._poll_interval = min(self._poll_interval, follower.poll_interval)
        self._due.add(follower)
        if follower.use_inotify and self._watch(follower):
            follower.watched = True
        else:
            if follower.wants_inotify and not inotify_available():
                _tell_once("missing", "inotify is unavailable on %s; polling files instead",
                           sys.platform)
            follower.watched = False
            self._ticking.add(follower)

    def _remove(self, follower):
        if follower not in self._followers:
            return
        with self._list_lock:
            self._followers.discard(follower)
        self._ticking.discard(follower)
        self._due.discard(follower)
        if follower.watched:
            self._unwatch(follower)
        follower.close()
        with _shared_lock:
            global _shared
            self._users -= 1
            if self._users == 0:
                if _shared is self:
                    _shared = None
                self._close()

    def _ensure_inotify(self):
        if self._inotify is None and not self._inotify_failed:
            try:
                self._inotify = inotify_simple.INotify()
            except OSError as exc:
                self._inotify_failed = True
                _tell_once("instance", "inotify is unavailable (%s); polling files instead", exc)
                return False
            self._selector.register(self._inotify, selectors.EVENT_READ)
        return self._inotify is not None

    def _watch(self, follower):
        directory, name = os.path.split(os.path.abspath(follower.path))
        entry = self._dirs.get(directory)
        if entry is None:
            if not self._ensure_inotify():
                return False
            flags = inotify_simple.flags
            try:
                wd = self._inotify.add_watch(
                    directory, flags.MODIFY | flags.ATTRIB | flags.CREATE | flags.DELETE
                    | flags.MOVED_FROM | flags.MOVED_TO | flags.DELETE_SELF | flags.ONLYDIR)
            except OSError as exc:
                _tell_once(("watch", exc.errno),
                           "inotify can't watch %s (%s); polling files there instead",
                           directory, exc)
                return False
            entry = self._dirs[directory] = [wd, 0]
            self._wd_dirs[wd] = directory
        entry[1] += 1
        self._by_name[directory, name].add(follower)
        follower.watch_key = (directory, name)
        return True

    def _unwatch(self, follower):
        directory, name = follower.watch_key
        followers = self._by_name.get((directory, name))
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._by_name[directory, name]
        entry = self._dirs.get(directory)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del self._dirs[directory]
            self._wd_dirs.pop(entry[0], None)
            try:
                self._inotify.rm_watch(entry[0])
            except OSError:
                pass  # the directory is gone and took its watch with it

    def _read_events(self):
        flags = inotify_simple.flags
        for event in self._inotify.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                self._due.update(self._followers)  # events were lost: look at everything
                continue
            directory = self._wd_dirs.get(event.wd)
            if directory is None:
                continue
            if event.mask & (flags.IGNORED | flags.DELETE_SELF):
                # The directory itself went away: its files can only be polled now.
                self._wd_dirs.pop(event.wd, None)
                self._dirs.pop(directory, None)
                for (d, _), followers in list(self._by_name.items()):
                    if d == directory:
                        for follower in followers:
                            follower.watched = False
                            self._ticking.add(follower)
                        del self._by_name[d, _]
                continue
            self._due.update(self._by_name.get((directory, event.name), ()))

    def _close(self):
        self._closed = True
        self._selector.close()
        self._wakeup.close()
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
