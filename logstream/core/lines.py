"""Split a stream of bytes into text lines, holding back a partial last line."""

DEFAULT_MAX_LINE_BYTES = 64 * 1024


def cut_marker(cut_bytes):
    """Return the visible marker appended to a line that was cut short."""
    return f" … [{cut_bytes} bytes cut]"


class LineSplitter:
    """Turn chunks of bytes into complete lines of text.

    A line ends at ``\\n``; a trailing ``\\r`` is dropped; invalid UTF-8 is
    replaced rather than raising; a line longer than ``max_line_bytes`` is cut
    with a visible marker so one huge line can't exhaust memory.
    """

    def __init__(self, max_line_bytes=DEFAULT_MAX_LINE_BYTES):
        self.max_line_bytes = max_line_bytes
        self._pending = bytearray()
        self._cut = 0

    @property
    def held_bytes(self):
        """Return how many bytes of an unfinished line have been consumed."""
        return len(self._pending) + self._cut

    def feed(self, data):
        """Consume data and return the list of lines it completed."""
        end = data.rfind(b"\n")
        if end < 0:
            self._hold(data)
            return []
        limit = self.max_line_bytes
        if not self._pending and not self._cut and end <= limit:
            # The common case: no line can be over the limit, decode in one go.
            # Splitting after decoding is safe because b"\n" never occurs
            # inside a multi-byte UTF-8 sequence.
            text = data[:end].decode("utf-8", "replace")
            lines = text.split("\n")
            if "\r" in text:
                lines = [line[:-1] if line.endswith("\r") else line for line in lines]
        else:
            pieces = data[:end].split(b"\n")
            first_cut = 0
            if self._pending or self._cut:
                self._hold(pieces[0])
                pieces[0] = bytes(self._pending)
                first_cut = self._cut
                self._pending.clear()
                self._cut = 0
            lines = [self._decode(piece, first_cut if i == 0 else 0)
                     for i, piece in enumerate(pieces)]
        self._hold(data[end + 1:])
        return lines

    def _decode(self, raw, cut):
        if len(raw) > self.max_line_bytes:
            cut += len(raw) - self.max_line_bytes
            raw = raw[: self.max_line_bytes]
        text = raw.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        return text + cut_marker(cut) if cut else text

    def _hold(self, data):
        room = self.max_line_bytes - len(self._pending)
        if len(data) <= room:
            self._pending += data
        else:
            self._pending += data[: max(room, 0)]
            self._cut += len(data) - max(room, 0)
