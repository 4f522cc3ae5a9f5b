"""The follower on its own, with inotify and with the polling fallback."""

import os
import threading

import pytest

from conftest import append, wait_until
from logstream.core.follower import Follower, inotify_available


class Recorder:
    """Collect what a follower publishes."""

    def __init__(self):
        self.lines = []
        self.statuses = []

    def on_lines(self, lines):
        self.lines += lines

    def on_status(self, payload):
        self.statuses.append(payload["type"])

    def texts(self):
        return [text for _, text in self.lines]


@pytest.fixture(params=["inotify", "polling"])
def follow(request, tmp_path):
    if request.param == "inotify" and not inotify_available():
        pytest.skip("inotify_simple is not importable on this machine (not Linux?)")
    started = []

    def start(path):
        recorder = Recorder()
        follower = Follower(path, recorder.on_lines, recorder.on_status,
                            use_inotify=request.param == "inotify", poll_interval=0.01)
        follower.start()
        attached = threading.Event()
        follower.attach("test", lambda history, first, next_line: attached.set(), since=None)
        assert attached.wait(5)
        started.append(follower)
        return follower, recorder

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
        assert follower.use_inotify
    finally:
        follower.stop()


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


def test_symlinked_file_is_not_opened(tmp_path):
    target = tmp_path / "target.txt"
    target.write_text("secret\n")
    link = tmp_path / "link.log"
    os.symlink(target, link)
    rec = Recorder()
    follower = Follower(link, rec.on_lines, rec.on_status).start()
    try:
        done = threading.Event()
        follower.attach("x", lambda history, first, nxt: (list(history), done.set()))
        assert done.wait(5)
        assert follower.lines == 0 and rec.lines == []
    finally:
        follower.stop()
