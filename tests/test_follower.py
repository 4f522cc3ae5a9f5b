"""The follower on its own, with inotify and with the polling fallback."""

import contextlib
import os
import threading

import pytest

from conftest import append, wait_until
from logstream.core import watcher
from logstream.core.follower import Follower, inotify_available


class Recorder:
    """Collect what a follower publishes."""

    def __init__(self):
        self.lines = []
        self.statuses = []
        self.events = []  # lines and statuses, in the order they were published

    def on_lines(self, lines):
        self.lines += lines
        self.events.extend(("line", line) for line in lines)

    def on_status(self, payload):
        self.statuses.append(payload["type"])
        self.events.append(("status", payload))

    def texts(self):
        return [text for _, text in self.lines]


def hide_linux_calls(monkeypatch):
    """Run the core as on macOS or Windows: no pread, pipe2, O_NOFOLLOW or inotify."""
    for name in ("pread", "pipe2", "O_NOFOLLOW"):
        monkeypatch.delattr(os, name, raising=False)
    monkeypatch.setattr(watcher, "inotify_simple", None)


@pytest.fixture(params=["inotify", "polling", "portable"])
def follow(request, tmp_path, monkeypatch):
    if request.param == "inotify" and not inotify_available():
        pytest.skip("inotify_simple is not importable on this machine (not Linux?)")
    # A fresh watcher, so the one in use was started under this test's conditions.
    wait_until(lambda: watcher.current() is None, message="earlier followers to stop")
    if request.param == "portable":
        hide_linux_calls(monkeypatch)
    started = []

    def start(path, rotate_wait=0.2):
        recorder = Recorder()
        follower = Follower(path, recorder.on_lines, recorder.on_status,
                            use_inotify=request.param == "inotify", poll_interval=0.01,
                            rotate_wait=rotate_wait)
        follower.start()
        attached = threading.Event()
        follower.attach("test", lambda history, first, next_line: attached.set(), since=None)
        assert attached.wait(5)
        started.append(follower)
        return follower, recorder

    start.mode = request.param
    yield start
    for follower in started:
        assert follower.stop()


def test_inotify_is_used_on_linux(tmp_path):
    if not inotify_available():
        pytest.skip("inotify_simple is not importable on this machine (not Linux?)")
    path = tmp_path / "a.log"
    path.write_text("")
    follower = Follower(path, lambda lines: None).start()
    try:
        wait_until(lambda: follower.watched, message="the directory to be watched")
        assert follower.use_inotify and watcher.current().inotify_instances() == 1
    finally:
        follower.stop()


@contextlib.contextmanager
def watcher_paused(follow, tmp_path):
    """Hold the one watcher thread (it serves every follower) inside another file's callback."""
    gate, inside = threading.Event(), threading.Event()
    blocker_path = tmp_path / "blocker.log"
    blocker_path.write_text("")
    blocker, _ = follow(blocker_path)
    blocker.on_lines = lambda lines: (inside.set(), gate.wait(10))
    append(blocker_path, "hold\n")
    assert inside.wait(5), "the watcher never reached the blocking callback"
    try:
        yield
    finally:
        gate.set()


def test_truncated_and_regrown_past_the_old_size_is_read_as_a_new_file(follow, tmp_path):
    path = tmp_path / "app.log"
    path.write_text("".join(f"={i} {'x' * 40}\n" for i in range(1, 101)))
    follower, rec = follow(path)
    assert follower.lines == 100
    new_lines = [f"new {i} {'y' * 60}" for i in range(1, 11)]
    with watcher_paused(follow, tmp_path):
        with open(path, "w") as fp:  # what `: > app.log` does, then the app writes
            pass
        append(path, "".join(line + "\n" for line in new_lines))
        assert path.stat().st_size < 100 * 44  # regrown, but...
        append(path, "z" * 4000 + "\n")       # ...past the old size too
    wait_until(lambda: len(rec.lines) == 11, message="the new file's lines")
    assert rec.events[0] == ("status", {"type": "truncated", "next_line": 1})
    assert rec.lines[:10] == list(zip(range(1, 11), new_lines))  # whole, from 1
    assert rec.lines[10] == (11, "z" * 4000)


def test_rewritten_in_place_with_as_many_bytes_is_a_new_file(follow, tmp_path):
    path = tmp_path / "same.log"
    path.write_text("".join(f"a {i}\n" for i in range(1, 6)))
    follower, rec = follow(path)
    size = path.stat().st_size
    with watcher_paused(follow, tmp_path):
        path.write_text("".join(f"b {i}\n" for i in range(1, 6)))  # same inode, same size
        assert path.stat().st_size == size
    wait_until(lambda: len(rec.lines) == 5, message="the rewritten lines")
    assert rec.statuses == ["truncated"]
    assert rec.lines == [(i, f"b {i}") for i in range(1, 6)]


def test_replaced_by_a_same_size_file_is_a_new_file(follow, tmp_path):
    path = tmp_path / "swap.log"
    path.write_text("old 1\nold 2\n")
    follower, rec = follow(path)
    other = tmp_path / "swap.tmp"
    other.write_text("new 1\nnew 2\n")
    os.replace(other, path)
    wait_until(lambda: len(rec.lines) == 2, message="the new file's lines")
    assert rec.statuses == ["rotated"]
    assert rec.lines == [(1, "new 1"), (2, "new 2")]


def test_a_partial_line_of_a_truncated_file_is_never_published(follow, tmp_path):
    path = tmp_path / "torn.log"
    path.write_text("1 complete\n=102 half of a li")
    follower, rec = follow(path)
    with watcher_paused(follow, tmp_path):
        path.write_text("fresh 1\n" + "w" * 200 + "\n")
    wait_until(lambda: len(rec.lines) == 2)
    assert rec.lines == [(1, "fresh 1"), (2, "w" * 200)]
    assert rec.statuses == ["truncated"]


def test_lines_written_to_a_renamed_file_during_rotate_wait_are_kept(follow, tmp_path):
    path = tmp_path / "rot.log"
    path.write_text("1\n2\n3\n")
    follower, rec = follow(path, rotate_wait=1.0)
    os.rename(path, tmp_path / "rot.log.1")
    looked = threading.Event()
    follower.attach("probe", lambda history, first, nxt: looked.set())
    assert looked.wait(5)  # the follower has seen the rename (and no new file yet)
    # The application hasn't reopened its log yet: it still writes the old file.
    append(tmp_path / "rot.log.1", "late 4\nlate 5\n")
    append(path, "new 1\n")
    wait_until(lambda: rec.texts()[-1:] == ["new 1"], message="the switch to the new file")
    assert rec.events == [("line", (4, "late 4")), ("line", (5, "late 5")),
                          ("status", {"type": "rotated", "next_line": 1}),
                          ("line", (1, "new 1"))]


def test_existing_lines_are_history_and_new_ones_are_published(follow, tmp_path):
    path = tmp_path / "a.log"
    path.write_text("old 1\nold 2\npartial")
    follower, rec = follow(path)
    assert follower.lines == 2
    append(path, " line\nnew\n")
    wait_until(lambda: len(rec.lines) == 2)
    assert rec.lines == [(3, "partial line"), (4, "new")]


def test_history_is_read_from_the_index(follow, tmp_path):
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"%06d %s\n" % (i, b"z" * 200) for i in range(1, 20001)))
    follower, _ = follow(path)
    got = []
    done = threading.Event()

    def on_attach(history, first, next_line):
        for batch in history:
            got.extend(batch)
        done.set()

    follower.attach("h", on_attach, since=15000)
    assert done.wait(10)
    assert [n for n, _ in got] == list(range(15001, 20001))
    assert got[0][1].startswith("015001 ")
    assert len(follower._index_offsets) > 2  # it really used checkpoints


def test_truncation_rotation_deletion_and_recreation(follow, tmp_path):
    path = tmp_path / "r.log"
    path.write_text("a\n")
    follower, rec = follow(path)
    append(path, "b\n")
    wait_until(lambda: rec.texts() == ["b"])

    with open(path, "r+") as fp:
        fp.truncate(0)
    append(path, "c\n")
    wait_until(lambda: "truncated" in rec.statuses and rec.texts()[-1:] == ["c"])
    assert rec.lines[-1] == (1, "c")

    os.rename(path, tmp_path / "r.log.1")
    append(path, "d\n")
    # Depending on when the follower looks, it sees the new file at once
    # ("rotated") or first the gap ("deleted", then "created").
    wait_until(lambda: ("rotated" in rec.statuses or "created" in rec.statuses)
               and rec.texts()[-1:] == ["d"])
    assert rec.lines[-1] == (1, "d")

    os.unlink(path)
    wait_until(lambda: rec.statuses[-1] == "deleted")
    append(path, "e\n")
    wait_until(lambda: rec.statuses[-1] == "created" and rec.texts()[-1:] == ["e"])
    assert rec.texts() == ["b", "c", "d", "e"]


def test_stop_closes_everything(tmp_path):
    path = tmp_path / "s.log"
    path.write_text("x\n")
    before = set(os.listdir("/proc/self/fd"))
    follower = Follower(path, lambda lines: None).start()
    wait_until(lambda: follower.lines == 1)
    assert follower.stop()
    assert set(os.listdir("/proc/self/fd")) <= before


def test_symlinked_file_is_not_opened(follow, tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("secret\n")
    link = tmp_path / "link.log"
    os.symlink(target, link)
    follower, rec = follow(link)
    assert follower.lines == 0 and rec.lines == []
    append(target, "more secret\n")
    os.utime(link, follow_symlinks=False)
    follower.attach("again", lambda history, first, nxt: None)
    wait_until(lambda: follower._commands.empty(), message="the follower to look again")
    assert follower.lines == 0 and rec.lines == []


def test_a_subscriber_is_served_on_the_joining_thread_between_turns(follow, tmp_path):
    path = tmp_path / "j.log"
    path.write_text("".join(f"old {i}\n" for i in range(1, 6)))
    follower, _ = follow(path)
    seen = []
    follower.attach("now", lambda history, first, next_line: seen.append(
        (threading.current_thread(), [n for batch in history for n, _ in batch], next_line)))
    # Served before attach() returned, on this thread: no wait for the watcher.
    assert seen == [(threading.current_thread(), [1, 2, 3, 4, 5], 6)]


def test_a_subscriber_joining_while_a_read_is_published_waits_for_the_watcher(tmp_path):
    # A publish that takes a while (on green threads it pauses to let sockets
    # in): a subscriber that joins meanwhile gets its history after it, on
    # the watcher's thread, so the lines being published are in its history
    # or live, never both and never neither.
    wait_until(lambda: watcher.current() is None, message="earlier followers to stop")
    path = tmp_path / "p.log"
    path.write_text("")
    publishing, go_on = threading.Event(), threading.Event()
    live = []

    def on_lines(lines):
        publishing.set()
        assert go_on.wait(10)
        live.extend(lines)

    follower = Follower(path, on_lines, poll_interval=0.01).start()
    try:
        ready = threading.Event()
        follower.attach("first", lambda *args: ready.set())
        assert ready.wait(5)
        append(path, "one\ntwo\n")
        assert publishing.wait(5)
        joined = []
        follower.attach("late", lambda history, first, next_line: joined.append(
            (threading.current_thread().name, [n for batch in history for n, _ in batch],
             next_line)))
        assert joined == []  # not while the read is being published
        go_on.set()
        wait_until(lambda: joined, message="the late subscriber to be served")
        assert joined == [("logstream:watcher", [1, 2], 3)]
        assert [n for n, _ in live] == [1, 2]
    finally:
        go_on.set()
        assert follower.stop()
