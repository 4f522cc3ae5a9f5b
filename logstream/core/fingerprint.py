"""Tell whether an open file is still the file it was: device, inode and content.

The inode alone can't tell: a file truncated and regrown past its old size
(``: > app.log`` then more writes), or rewritten in place with as many bytes,
keeps its inode. Like Vector's fingerprinter, the follower also remembers a
checksum of the file's first bytes, and the bytes just before its read offset;
if either changed, the file it holds is a new file.
"""

import os
import zlib

from logstream.core.fileio import read_at

HEAD_BYTES = 256
GUARD_BYTES = 64


class Fingerprint:
    """What a follower remembers of the file it reads: identity, head checksum, guard bytes."""

    __slots__ = ("dev", "ino", "head_len", "head_crc", "guard")

    def __init__(self, info):
        self.dev, self.ino = info.st_dev, info.st_ino
        self.head_len = 0
        self.head_crc = 0
        self.guard = b""  # the bytes just before the read offset

    def is_path(self, info):
        """Return True when a stat of the path shows this same file."""
        return info is not None and (info.st_dev, info.st_ino) == (self.dev, self.ino)

    def advance(self, fd, consumed, read_pos):
        """Remember the bytes just read (ending at read_pos) and, early on, the head."""
        guard = self.guard + consumed if len(consumed) < GUARD_BYTES else consumed
        self.guard = bytes(guard[-GUARD_BYTES:])
        if self.head_len < HEAD_BYTES and read_pos > self.head_len:
            head = read_at(fd, HEAD_BYTES, 0)[:min(HEAD_BYTES, read_pos)]
            self.head_len, self.head_crc = len(head), zlib.crc32(head)

    def settle(self, fd, read_pos):
        """Take head and guard from disk after a scan that ended at read_pos."""
        self.guard = b""
        self.head_len = 0
        if read_pos:
            start = max(0, read_pos - GUARD_BYTES)
            self.guard = read_at(fd, read_pos - start, start)
            self.advance(fd, b"", read_pos)

    def head_changed(self, fd):
        """Return True when the file's first bytes are no longer those remembered."""
        if not self.head_len:
            return False
        head = read_at(fd, self.head_len, 0)
        return len(head) < self.head_len or zlib.crc32(head) != self.head_crc

    def read_on(self, fd, read_pos, size):
        """Return the bytes from read_pos (at most size), or None when the file changed under us.

        The guard bytes are read in the same call as the new data, so checking
        that the bytes before the offset are unchanged costs no extra read.
        """
        g = len(self.guard)
        data = read_at(fd, size + g, read_pos - g)
        if data[:g] != self.guard:
            return None
        return data[g:]


def stat_path(path):
    """Return the path's own stat (not a symlink's target), or None when it is gone."""
    try:
        return os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
