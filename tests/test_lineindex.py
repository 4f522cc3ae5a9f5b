"""A large log is counted once per process: the listing, followers and searches share its index."""

import os

import httpx

from conftest import wait_until
from logstream.core.lineindex import INDEXES, LineIndexes

LINE = "2026-11-30 12:00:00 INFO  [app] a line long enough to make the file large %07d\n"


def bytes_read_by_this_process():
    """Return what every read of this process (the server runs in it) has returned so far."""
    with open("/proc/self/io") as fp:
        return next(int(line.split()[1]) for line in fp if line.startswith("rchar:"))


def write_big(path, count):
    with open(path, "w") as fp:
        fp.writelines(LINE % i for i in range(1, count + 1))
    return os.path.getsize(path)


def test_listing_followers_and_searches_read_a_large_file_once(server, logs, connect):
    name, path = logs.make()
    size = write_big(path, 120_000)  # ~10 MiB
    http = httpx.Client(base_url=server.url)

    before = INDEXES.bytes_read
    listed = {d["id"]: d for d in http.get("/api/deployments").json()}
    assert listed[name]["lines"] == 120_000
    assert INDEXES.bytes_read - before == size  # the first look reads it all, once

    counted = INDEXES.bytes_read
    read_so_far = bytes_read_by_this_process()
    client = connect()
    lines = client.follow(name)
    assert lines.get(timeout=10)[0] == 120_000 - 49  # the usual tail of 50
    client.unfollow(name)
    wait_until(lambda: name not in server.app.extensions["logstream"].hub.followed(),
               message="the follower to be let go")
    again = client.follow(name)  # a new follower for the same file
    assert again.get(timeout=10)[0] == 120_000 - 49
    # Two followers read their history (at most an index stretch, 1 MiB, each)
    # and messages: less than the file itself, so neither counted its lines.
    assert bytes_read_by_this_process() - read_so_far < size
    # A search reads the lines it looks through, but counts nothing again.
    found = http.get(f"/api/deployments/{name}/search", params={"q": "0000007"}).json()
    assert [m["line"] for m in found["matches"]] == [7]
    assert INDEXES.bytes_read == counted

    with open(path, "a") as fp:
        fp.write(LINE % 120_001)
    received = [again.get(timeout=10)]
    while received[-1][0] < 120_001 and len(received) < 200:  # what is left of the tail first
        received.append(again.get(timeout=10))
    assert received[-1] == (120_001, (LINE % 120_001).rstrip("\n"))
    client.unfollow(name)
    listed = {d["id"]: d for d in http.get("/api/deployments").json()}
    assert listed[name]["lines"] == 120_001
    assert INDEXES.bytes_read - counted == len(LINE % 120_001)  # only the new line


def test_a_file_rewritten_in_place_is_counted_again(tmp_path):
    indexes = LineIndexes()
    path = tmp_path / "app.log"
    path.write_text("a\n" * 1000)
    assert indexes.count(path) == 1000
    # The same size and inode, other content: a cached count would be wrong.
    with open(path, "r+") as fp:
        fp.write("bb\n" * 600 + "c" * 200)
    assert indexes.count(path) == 600
    # Truncated and regrown past the old size before anyone looked.
    with open(path, "w") as fp:
        fp.write("x\n" * 1500)
    assert indexes.count(path) == 1500
    assert indexes.bytes_read == 2000 + 2000 + 3000
