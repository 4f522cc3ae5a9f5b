"""Search a whole log file and read any stretch of its lines, in bounded time and memory."""

import bisect
import collections
import time

import regex

from logstream.core.fileio import read_at
from logstream.core.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter

BLOCK = 1 << 20
# A stretch (at most INDEX_SPACING + BLOCK long) is searched in one read, so
# the index numbers its lines and they need not be counted.
SEARCH_BLOCK = 4 << 20
SEARCH_SECONDS = 5.0
# One line that keeps a regular expression busy this long is refused outright.
LINE_SECONDS = 0.25
MAX_QUERY_CHARS = 1000


class SearchError(ValueError):
    """A query that can't be run: ``code`` for programs, ``message`` for people."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


class OutOfTime(Exception):
    """Raised inside a search when its time budget is spent."""


def compile_query(text, use_regex=False):
    """Return a function that finds matching lines in a block, or raise SearchError.

    Both kinds ignore case, as the viewer's filter does.
    """
    if not isinstance(text, str) or not text:
        raise SearchError("invalid_query", "Give the text to search for, as q=TEXT.")
    if len(text) > MAX_QUERY_CHARS:
        raise SearchError("invalid_query",
                          f"A search is at most {MAX_QUERY_CHARS} characters, not {len(text)}.")
    if "\n" in text or "\r" in text:
        raise SearchError("invalid_query", "A search can't contain a line break: lines never do.")
    if not use_regex and text.isascii():
        return _literal(text.encode())
    try:
        pattern = regex.compile(text if use_regex else regex.escape(text), regex.IGNORECASE)
    except regex.error as error:
        raise SearchError("invalid_regex", f"{text!r} is not a valid regular expression: {error}.")
    return _pattern(pattern)


def _literal(needle):
    # regex finds an ASCII literal case-insensitively in bytes about as fast as
    # bytes.find finds it exactly: twice as fast as lowering each block first.
    pattern = regex.compile(regex.escape(needle), regex.IGNORECASE)

    def hits(block, deadline):
        found = pattern.search(block)
        line, counted = 0, 0
        while found:
            start = block.rfind(b"\n", 0, found.start()) + 1
            end = block.find(b"\n", found.start())
            line += block.count(b"\n", counted, start)
            counted = start
            yield line, block[start:end]
            found = pattern.search(block, end + 1)
    return hits


# Patterns whose meaning depends on where the text starts or ends: they are
# tried line by line only, never over a whole block.
LINE_ONLY = regex.compile(r"\\[AZz]|\(\?<")
BLOCK_SECONDS = 1.0


def _pattern(pattern):
    def check(line):
        try:
            return pattern.search(line, timeout=LINE_SECONDS)
        except TimeoutError:
            raise SearchError(
                "slow_regex",
                f"The regular expression {pattern.pattern!r} took over {LINE_SECONDS} s on "
                f"one line (it backtracks too much): make it more specific.") from None

    def by_line(text, deadline):
        for line, part in enumerate(text.split("\n")[:-1]):
            if line % 1000 == 999 and time.monotonic() > deadline:
                raise OutOfTime
            if check(part):
                yield line, part

    def hits(block, deadline):
        text = block.decode("utf-8", "replace")
        if line_only:
            yield from by_line(text, deadline)
            return
        # Over the whole block first: only the lines where it matches are
        # looked at one by one, so a rare pattern costs one scan.
        pos, line, counted = 0, 0, 0
        while pos < len(text):
            try:
                found = block_pattern.search(text, pos, timeout=BLOCK_SECONDS)
            except TimeoutError:
                for number, part in by_line(text[pos:], deadline):
                    yield line + text.count("\n", counted, pos) + number, part
                return
            if not found:
                return
            start = text.rfind("\n", 0, found.start()) + 1
            end = text.find("\n", found.start())
            line += text.count("\n", counted, start)
            counted = start
            part = text[start:end]
            if check(part):
                yield line, part
            pos = end + 1
            if time.monotonic() > deadline:
                raise OutOfTime

    line_only = LINE_ONLY.search(pattern.pattern) is not None
    block_pattern = regex.compile(pattern.pattern, pattern.flags | regex.MULTILINE)
    return hits


def _message(raw, max_line_bytes):
    if isinstance(raw, str):
        raw = raw.encode()
    (text,) = LineSplitter(max_line_bytes).feed(raw + b"\n")
    return text


def _blocks(fd, start, end):
    """Yield (block, where it ends) for each run of whole lines from start to end (a line start).

    A line longer than a block is cut to its first block, so memory stays
    bounded whatever the file holds.
    """
    pos = start
    while pos < end:
        chunk = read_at(fd, min(SEARCH_BLOCK, end - pos), pos)
        if not chunk:
            return
        cut = chunk.rfind(b"\n") + 1
        if cut:
            pos += cut
            yield chunk[:cut], pos
            continue
        pos += len(chunk)
        while pos < end:  # skip the rest of the long line
            rest = read_at(fd, min(BLOCK, end - pos), pos)
            if not rest:
                return
            newline = rest.find(b"\n")
            if newline >= 0:
                pos += newline + 1
                break
            pos += len(rest)
        yield chunk + b"\n", pos


def search(fd, index, key, hits, *, limit=100, before=None,
           max_line_bytes=DEFAULT_MAX_LINE_BYTES, budget=SEARCH_SECONDS):
    """Return the newest matches before line ``before``, at most limit of them.

    The result is ``{"matches": [{"line", "message"}], "truncated": bool,
    "next_before": N}``: truncated means older matches may remain (there
    were more than limit, or the time budget ran out), and next_before is
    the ``before`` that continues from where this one stopped.
    """
    deadline = time.monotonic() + budget
    offsets, lines, end, total = _snapshot(index, fd, key)
    before = total + 1 if before is None else min(before, total + 1)
    matches = []
    searched_from = before  # every line from here to before - 1 has been searched
    for k in range(len(offsets) - 1, -1, -1):
        first = lines[k] + 1
        if first >= before:
            continue
        stop = offsets[k + 1] if k + 1 < len(offsets) else end
        found = collections.deque(maxlen=limit - len(matches))
        seen = 0
        number = first
        timed_out = False
        try:
            for block, block_end in _blocks(fd, offsets[k], stop):
                if time.monotonic() > deadline:
                    raise OutOfTime
                for line, raw in hits(block, deadline):
                    if number + line >= before:
                        break
                    found.append((number + line, raw))
                    seen += 1
                # Only a stretch longer than one read needs its lines counted;
                # the index numbers each stretch's first line.
                if block_end < stop:
                    number += block.count(b"\n")
        except OutOfTime:
            timed_out = True
        if timed_out:
            return _result(matches, True, searched_from)
        matches.extend({"line": n, "message": _message(raw, max_line_bytes)}
                       for n, raw in reversed(found))
        searched_from = first
        if len(matches) >= limit:
            more = seen > len(found) or k > 0
            return _result(matches, more, matches[-1]["line"] if more else None)
    return _result(matches, False, None)


def _result(matches, truncated, next_before):
    result = {"matches": matches, "truncated": truncated}
    if truncated:
        result["next_before"] = next_before
    return result


def read_lines(fd, index, key, since=0, limit=100, max_line_bytes=DEFAULT_MAX_LINE_BYTES):
    """Return ``(lines, total)``: up to limit (number, text) pairs after line since."""
    offsets, lines, end, total = _snapshot(index, fd, key)
    k = bisect.bisect_right(lines, since) - 1
    offset, number = offsets[k], lines[k]
    splitter = LineSplitter(max_line_bytes)
    found = []
    while offset < end and len(found) < limit:
        chunk = read_at(fd, min(BLOCK, end - offset), offset)
        if not chunk:
            break
        offset += len(chunk)
        for text in splitter.feed(chunk):
            number += 1
            if number > since:
                found.append((number, text))
                if len(found) == limit:
                    break
    return found, total


def _snapshot(indexes, fd, key):
    """Return (offsets, lines, end, total) of the file's complete lines, from the shared index."""
    index = indexes.index(fd, key)
    return index.offsets, index.lines, index.end, index.total
