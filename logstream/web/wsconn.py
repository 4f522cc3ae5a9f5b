"""A server's WebSocket connection, read on the task that serves it: RFC 6455 frames and permessage-deflate, no reader thread.

simple-websocket reads every connection on a reader thread of its own, has
wsproto parse the frames there and hands each message over through an event
to the task that waits for it: one more task and two hand-offs per
connection and message. Engine.IO's handler already waits for the next
message on a task of its own, so here that task reads the socket itself.

``FrameReader`` is the protocol without I/O (bytes in, events out);
``WebSocketConnection`` is one accepted connection: the socket, its write
lock, and the answers the protocol owes the client (pongs, closes). Writing
data frames is the send path's job (``websocket.FastWebSocket``).
"""

import struct
import threading
import zlib

from logstream.support.green import thread_class

RECV_BYTES = 16 * 1024
DEFLATE_TAIL = b"\x00\x00\xff\xff"

# Close codes (RFC 6455 7.4.1).
NORMAL = 1000
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
TOO_BIG = 1009

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
# Codes a peer may send in a close frame: 1000-1003, 1007-1014, and the
# ranges left to libraries and applications.
_SENDABLE = frozenset(range(1000, 1004)) | frozenset(range(1007, 1015))


class ProtocolError(Exception):
    """The client broke RFC 6455; ``code`` is the close code to answer with."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code


def _unmask(key, data):
    n = len(data)
    if not n:
        return b""
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def close_payload(code, reason=""):
    """Return a close frame's payload: the code, then the reason (at most 123 bytes of it)."""
    return struct.pack("!H", code) + reason.encode()[:123]


def frame_header(first_byte, length):
    """Return the header of an unmasked server frame carrying length bytes."""
    if length < 126:
        return bytes((first_byte, length))
    if length < 1 << 16:
        return struct.pack("!BBH", first_byte, 126, length)
    return struct.pack("!BBQ", first_byte, 127, length)


def text_frame(text):
    """Return a whole, uncompressed text frame carrying text."""
    data = text.encode()
    return frame_header(0x81, len(data)) + data


def control_frame(opcode, payload=b""):
    """Return a server's (unmasked) control frame; payload at most 125 bytes."""
    return bytes((0x80 | opcode, len(payload))) + payload


class FrameReader:
    """Turn a client's bytes into messages and control frames (sans-I/O).

    ``feed(data)`` adds what arrived; ``next()`` returns the next event or
    None when more bytes are needed: ``("message", str | bytes)``, ``("ping",
    payload)``, ``("pong", payload)`` or ``("close", code, reason)`` (code
    None when the client gave none). A message is at most
    ``max_message_bytes`` once inflated, and nothing larger is ever held:
    its frames are refused as they arrive. Raises ProtocolError.
    """

    def __init__(self, max_message_bytes, deflate=False):
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflate else None
        self._parts = None  # the frames of a fragmented message so far
        self._size = 0
        self._opcode = None
        self._compressed = False

    def feed(self, data):
        self._buffer += data

    def next(self):
        while True:
            frame = self._frame()
            if frame is None:
                return None
            fin, rsv1, opcode, payload = frame
            if opcode >= CLOSE:
                return self._control(opcode, payload)
            event = self._data(fin, rsv1, opcode, payload)
            if event is not None:
                return event

    def _frame(self):
        """Return (fin, rsv1, opcode, unmasked payload) of the next whole frame, or None."""
        buffer = self._buffer
        have = len(buffer)
        if have < 2:
            return None
        first, second = buffer[0], buffer[1]
        if first & 0x30 or (first & 0x40 and self._inflater is None):
            raise ProtocolError(PROTOCOL_ERROR, "a frame set a reserved bit nothing agreed on")
        if not second & 0x80:
            raise ProtocolError(PROTOCOL_ERROR, "a client's frames must be masked")
        opcode = first & 0x0F
        length = second & 0x7F
        start = 2
        if length == 126:
            if have < 4:
                return None
            length = int.from_bytes(buffer[2:4], "big")
            start = 4
        elif length == 127:
            if have < 10:
                return None
            length = int.from_bytes(buffer[2:10], "big")
            start = 10
        if opcode >= CLOSE:
            if length > 125 or not first & 0x80 or first & 0x40:
                raise ProtocolError(PROTOCOL_ERROR,
                                    "control frames are whole, plain and 125 bytes at most")
        elif self._size + length > self.max_message_bytes:
            raise ProtocolError(TOO_BIG, "the message is larger than the server takes")
        end = start + 4 + length
        if have < end:
            return None
        payload = _unmask(bytes(buffer[start:start + 4]), bytes(buffer[start + 4:end]))
        del buffer[:end]
        return bool(first & 0x80), bool(first & 0x40), opcode, payload

    def _control(self, opcode, payload):
        if opcode == PING:
            return ("ping", payload)
        if opcode == PONG:
            return ("pong", payload)
        if opcode != CLOSE:
            raise ProtocolError(PROTOCOL_ERROR, f"there is no opcode {opcode:#x}")
        if not payload:
            return ("close", None, "")
        if len(payload) == 1:
            raise ProtocolError(PROTOCOL_ERROR, "a close frame's code takes two bytes")
        code = int.from_bytes(payload[:2], "big")
        if code not in _SENDABLE and not 3000 <= code < 5000:
            raise ProtocolError(PROTOCOL_ERROR, f"{code} is not a close code a peer may send")
        try:
            return ("close", code, payload[2:].decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_DATA, "a close frame's reason must be UTF-8") from None

    def _data(self, fin, rsv1, opcode, payload):
        if opcode in (TEXT, BINARY):
            if self._parts is not None:
                raise ProtocolError(PROTOCOL_ERROR, "a new message began inside another")
            self._opcode, self._compressed = opcode, rsv1
            self._parts, self._size = [], 0
        elif opcode != 0:
            raise ProtocolError(PROTOCOL_ERROR, f"there is no opcode {opcode:#x}")
        elif self._parts is None:
            raise ProtocolError(PROTOCOL_ERROR, "a continuation frame came with no message")
        elif rsv1:
            raise ProtocolError(PROTOCOL_ERROR, "only a message's first frame says it is deflated")
        self._parts.append(payload)
        self._size += len(payload)
        if not fin:
            return None
        data = payload if len(self._parts) == 1 else b"".join(self._parts)
        self._parts, self._size = None, 0
        if self._compressed:
            data = self._inflate(data)
        if self._opcode == BINARY:
            return ("message", data)
        try:
            return ("message", data.decode("utf-8"))
        except UnicodeDecodeError:
            raise ProtocolError(INVALID_DATA, "a text message must be UTF-8") from None

    def _inflate(self, data):
        # Bounded while it inflates: a small frame can't become a huge message.
        limit = self.max_message_bytes
        try:
            out = self._inflater.decompress(data + DEFLATE_TAIL, limit + 1)
        except zlib.error:
            raise ProtocolError(INVALID_DATA, "a deflated message did not inflate") from None
        if len(out) > limit or self._inflater.unconsumed_tail:
            raise ProtocolError(TOO_BIG, "the message is larger than the server takes")
        return out


class LockedSocket:
    """A socket whose every write, whoever makes it, goes out whole under one lock.

    Data frames, pongs and closes are written by different tasks; one lock
    keeps a control frame from landing inside a data frame that is half sent.
    """

    def __init__(self, sock):
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data):
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    sendall = send

    def send_parts(self, *parts):
        """Write the parts as one frame; a partial sendmsg is finished before unlocking."""
        with self._lock:
            sent = self._sock.sendmsg(parts)
            total = sum(len(part) for part in parts)
            if sent < total:
                self._sock.sendall(b"".join(parts)[sent:])

    @property
    def lock(self):
        """The lock every write holds; green threads' fan-out writes only while it is free (see fanout.py)."""
        return self._lock

    def finish_later(self, parts, sent):
        """Hand the rest of a frame the socket took only sent bytes of to a task that holds the lock meanwhile.

        Never waits: the caller has just found the lock free, with nothing
        run in between (green threads, see fanout.py), so later writes queue
        behind the rest of this frame.
        """
        if not self._lock.acquire(blocking=False):
            raise RuntimeError("finish_later needs the lock free: only for green threads' fan-out")
        rest = b"".join(parts)[sent:]
        thread_class()(target=self._finish, args=(rest,), daemon=True,
                       name="logstream:finish-frame").start()

    def _finish(self, rest):
        try:
            self._sock.sendall(rest)
        except OSError:
            pass  # the connection is gone; its reader notices
        finally:
            self._lock.release()

    def __getattr__(self, name):
        return getattr(self._sock, name)


class WebSocketConnection:
    """One accepted WebSocket, read by whichever task calls receive().

    ``deflate_bits`` is the permessage-deflate window agreed on for the
    server's messages, or None; ``mode`` names the HTTP server whose socket
    this is, as simple-websocket does ("werkzeug", "gunicorn").
    """

    def __init__(self, sock, mode, response, deflate_bits, max_message_bytes):
        self.sock = LockedSocket(sock)
        self.mode = mode
        self.deflate_bits = deflate_bits
        self.reader = FrameReader(max_message_bytes, deflate=deflate_bits is not None)
        self.sock.sendall(response)
        self.connected = True

    def receive(self):
        """Return the next message (str or bytes), answering pings meanwhile; None once closed."""
        reader = self.reader
        while self.connected:
            try:
                event = reader.next()
            except ProtocolError as error:
                self.close(error.code, str(error))
                return None
            if event is None:
                try:
                    data = self.sock.recv(RECV_BYTES)
                except OSError:
                    data = b""
                if not data:
                    self.connected = False
                    return None
                reader.feed(data)
                continue
            kind = event[0]
            if kind == "message":
                return event[1]
            if kind == "ping":
                self._answer(control_frame(PONG, event[1]))
            elif kind == "close":
                # Echo the client's code (none when it gave none), then stop.
                self._answer(control_frame(CLOSE, b"" if event[1] is None
                                           else close_payload(event[1])))
                self.connected = False
        return None

    def close(self, code=NORMAL, reason=""):
        """Send a close frame (once) and stop reading."""
        if not self.connected:
            return
        self.connected = False
        self._answer(control_frame(CLOSE, close_payload(code, reason)))

    def _answer(self, frame):
        try:
            self.sock.send(frame)
        except OSError:
            self.connected = False  # gone: nothing more to say or read
