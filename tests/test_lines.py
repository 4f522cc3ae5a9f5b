"""Unit tests for splitting bytes into lines."""

from logstream.core.lines import LineSplitter, cut_marker


def feed_all(splitter, *chunks):
    lines = []
    for chunk in chunks:
        lines += splitter.feed(chunk)
    return lines


def test_partial_line_is_held_until_its_newline():
    s = LineSplitter()
    assert s.feed(b"hello wo") == []
    assert s.held_bytes == 8
    assert s.feed(b"rld\nnext") == ["hello world"]
    assert s.feed(b"\n") == ["next"]
    assert s.held_bytes == 0


def test_crlf_and_empty_lines():
    assert LineSplitter().feed(b"a\r\n\r\nb\n") == ["a", "", "b"]


def test_crlf_split_across_reads():
    assert feed_all(LineSplitter(), b"a\r", b"\nb\n") == ["a", "b"]


def test_invalid_utf8_is_replaced_not_raised():
    assert LineSplitter().feed(b"ok \xff\xfe end\n") == ["ok \ufffd\ufffd end"]


def test_multibyte_character_split_across_reads():
    data = "naïve — ünïcode ✓\n".encode()
    for cut in range(1, len(data)):
        assert feed_all(LineSplitter(), data[:cut], data[cut:]) == ["naïve — ünïcode ✓"]


def test_long_line_is_cut_with_marker_and_memory_stays_bounded():
    s = LineSplitter(max_line_bytes=100)
    for _ in range(50):
        assert s.feed(b"x" * 1000) == []
        assert s.held_bytes == len(s._pending) + s._cut
        assert len(s._pending) <= 100
    (line,) = s.feed(b"tail\n")
    assert line == "x" * 100 + cut_marker(50_000 + 4 - 100)
    assert s.feed(b"short\n") == ["short"]


def test_same_lines_whatever_the_chunking():
    data = b"".join(b"%d %s\r\n" % (i, b"y" * (i * 37 % 300)) for i in range(200))
    whole = LineSplitter(max_line_bytes=128).feed(data)
    for size in (1, 7, 64, 129, 4096):
        s = LineSplitter(max_line_bytes=128)
        chunks = [data[i:i + size] for i in range(0, len(data), size)]
        assert feed_all(s, *chunks) == whole
    assert len(whole) == 200
