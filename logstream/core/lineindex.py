"""Count and index a file's lines once per process, and only read what was added since.

The listing counts every file's lines, each new follower needs the count and
an index to find line N, and a search walks the file by the same index. A
large log read three times over for that (a 1 GB file took 2–3 s each time)
is read once here: later callers get the cached index and read only the bytes
added since. A cached entry is trusted only while the file is the same file —
device, inode, a checksum of its first bytes and the bytes just before where
counting stopped (see ``fingerprint``) — so a truncated, regrown or replaced
file is counted again from its start.

Budget: ``MAX_FILES`` entries (least recently used go first), each about
16 bytes per MiB of file plus ``GUARD_BYTES``.
"""

import collections
import os
import threading
import zlib

from logstream.core.fileio import open_no_follow, read_at
from logstream.core.fingerprint import GUARD_BYTES, HEAD_BYTES

READ_SIZE = 1 << 20
# Record where a line starts about every this many bytes, so line N is found
# by seeking to the nearest mark instead of reading the file from the start.
INDEX_SPACING = 1 << 20
MAX_FILES = 4096


class Index:
    """Where a file's complete lines end: ``lines[i]`` lines end before ``offsets[i]``."""

    __slots__ = ("dev", "ino", "offsets", "lines", "end", "total", "head_crc", "guard")

    def __init__(self, dev, ino):
        self.dev, self.ino = dev, ino
        self.offsets, self.lines = [0], [0]
        self.end = 0  # where the last complete line ends
        self.total = 0  # complete lines before end
        self.head_crc = None
        self.guard = b""

    def copy(self):
        """Return a copy that can be extended without touching this one."""
        other = Index(self.dev, self.ino)
        other.offsets, other.lines = list(self.offsets), list(self.lines)
        other.end, other.total = self.end, self.total
        other.head_crc, other.guard = self.head_crc, self.guard
        return other

    def still_describes(self, fd, info):
        """Return True when the open file is the one this index was made from, unchanged up to end."""
        if (info.st_dev, info.st_ino) != (self.dev, self.ino) or info.st_size < self.end:
            return False
        if self.end == 0:
            return True
        head = read_at(fd, min(HEAD_BYTES, self.end), 0)
        if zlib.crc32(head) != self.head_crc:
            return False
        start = max(0, self.end - GUARD_BYTES)
        return read_at(fd, self.end - start, start) == self.guard

    def extend(self, fd, size):
        """Count and index the complete lines between end and size; return the bytes read."""
        offset = read = self.end
        while offset < size:
            chunk = read_at(fd, min(READ_SIZE, size - offset), offset)
            if not chunk:
                break
            count = chunk.count(b"\n")
            if count:
                self.total += count
                self.end = offset + chunk.rfind(b"\n") + 1
                if self.end - self.offsets[-1] >= INDEX_SPACING:
                    self.offsets.append(self.end)
                    self.lines.append(self.total)
            offset += len(chunk)
        if self.end:
            self.head_crc = zlib.crc32(read_at(fd, min(HEAD_BYTES, self.end), 0))
            start = max(0, self.end - GUARD_BYTES)
            self.guard = read_at(fd, self.end - start, start)
        return offset - read


class LineIndexes:
    """The indexes of the files this process read lately, shared by every reader."""

    def __init__(self, max_files=MAX_FILES):
        self.max_files = max_files
        self.bytes_read = 0  # for tests and the curious: what counting cost so far
        self._lock = threading.Lock()
        self._files = collections.OrderedDict()

    def index(self, fd, key):
        """Return an up-to-date Index of the complete lines of the open file fd.

        ``key`` names the file between calls (its path). The caller gets its
        own copy, free to extend as the file grows.
        """
        info = os.fstat(fd)
        with self._lock:
            cached = self._files.get(key)
        if cached is None or not cached.still_describes(fd, info):
            cached = Index(info.st_dev, info.st_ino)
        index = cached.copy()
        read = index.extend(fd, info.st_size)
        with self._lock:
            self.bytes_read += read
            current = self._files.get(key)
            # Another reader may have counted further meanwhile; keep the longer.
            if current is None or current.ino != index.ino or current.end <= index.end:
                self._files[key] = index.copy()
            self._files.move_to_end(key)
            while len(self._files) > self.max_files:
                self._files.popitem(last=False)
        return index

    def count(self, path):
        """Return the number of complete lines in the file at path (never a symlink's target)."""
        fd = open_no_follow(path)
        try:
            return self.index(fd, os.fspath(path)).total
        finally:
            os.close(fd)

    def forget(self):
        """Drop every cached index."""
        with self._lock:
            self._files.clear()


# One per process: the listing, the followers and the searches share it.
INDEXES = LineIndexes()
