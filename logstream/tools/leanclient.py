"""A lean Socket.IO client for the benchmark: one thread, one WebSocket, no event threads.

python-socketio's client runs every incoming event in a new thread, which
would make the client, not the server, the bottleneck of a benchmark. This
one speaks the same wire protocol (Engine.IO 4 / Socket.IO 5 over a
WebSocket, with or without permessage-deflate, as a browser would offer it)
and hands whole messages to its caller on the caller's thread.
"""

import base64
import json
import os
import socket
import struct
import sys
import time
import zlib
from urllib.parse import urlsplit

DEFLATE_TAIL = b"\x00\x00\xff\xff"
RECV_BYTES = 1 << 20
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value, where Python lacks the name
TIMESTAMP_SPACE = socket.CMSG_SPACE(16)  # struct timespec


class WireError(ConnectionError):
    """The server broke the protocol or closed the connection."""


def _mask(payload):
    # Client frames must be masked (RFC 6455 5.3); whole-int XOR is fast enough.
    key = os.urandom(4)
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")
    return key + masked


def _frame(text):
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return header + _mask(payload)


class LeanClient:
    """A connected Socket.IO client: send events, read messages one by one.

    ``pongs`` keeps the payload of every WebSocket pong the server sent;
    ``heartbeats`` counts the Engine.IO pings it answered.
    """

    def __init__(self, url, deflate=True, timeout=10.0, eio=4, namespace=None):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((self.host, self.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._pos = 0
        self._inflate = None
        self._reset_inflate = False
        self._ack_id = 0
        self.inflated = 0  # how many messages arrived compressed
        self.pongs = []
        self.heartbeats = 0
        self._stamping = False
        self.arrived_ns = None  # see stamp_arrivals()
        self._handshake(deflate, eio)
        opened = self.recv_text()
        if not opened.startswith(b"0"):
            raise WireError(f"expected an Engine.IO open packet, got {opened[:80]!r}")
        if eio == 4:
            self.send_raw("40")
        connected = self.recv_text()  # Engine.IO 3 servers join "/" unasked
        if not connected.startswith(b"40"):
            raise WireError(f"expected a Socket.IO connect reply, got {connected[:80]!r}")
        if namespace:
            self.send_raw(f"40{namespace},")
            while not self.recv_text().startswith(f"40{namespace}".encode()):
                pass

    def _handshake(self, deflate, eio=4):
        key = base64.b64encode(os.urandom(16)).decode()
        request = [f"GET /socket.io/?EIO={eio}&transport=websocket HTTP/1.1",
                   f"Host: {self.host}:{self.port}", "Upgrade: websocket",
                   "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                   "Sec-WebSocket-Version: 13"]
        if deflate:
            request.append("Sec-WebSocket-Extensions: permessage-deflate; "
                           "client_max_window_bits")
        self.sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self._buf:
            self._fill()
        end = self._buf.index(b"\r\n\r\n") + 4
        head = bytes(self._buf[:end]).decode("latin-1")
        del self._buf[:end]
        if not head.startswith("HTTP/1.1 101"):
            raise WireError(f"the server refused the WebSocket: {head.splitlines()[0]}")
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions" and "permessage-deflate" in value:
                self._inflate = zlib.decompressobj(-15)
                self._reset_inflate = "server_no_context_takeover" in value

    @property
    def compressed(self):
        """Return True when the server agreed to permessage-deflate."""
        return self._inflate is not None

    def stamp_arrivals(self):
        """Have the kernel time each read: ``arrived_ns`` is then when its last bytes reached the socket.

        A benchmark's client processes share the machine with the server;
        the kernel's receive timestamp (wall clock, like the stamps written
        in the lines) leaves out how long the client itself took to get to
        the data.
        """
        if sys.platform.startswith("linux"):  # elsewhere, the time the client read it
            self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._stamping = True

    def _fill(self):
        if self._stamping:
            data, ancillary, _, _ = self.sock.recvmsg(RECV_BYTES, TIMESTAMP_SPACE)
            self.arrived_ns = time.time_ns()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("qq", value[:16])
                    self.arrived_ns = seconds * 1_000_000_000 + nanoseconds
        else:
            data = self.sock.recv(RECV_BYTES)
        if not data:
            raise WireError("the server closed the connection")
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += data

    def _next_frame(self):
        """Return (fin, rsv1, opcode, payload) of the next complete frame, or None."""
        buf, pos = self._buf, self._pos
        if len(buf) - pos < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        n = b1 & 0x7F
        start = pos + 2
        if n == 126:
            if len(buf) - start < 2:
                return None
            n = int.from_bytes(buf[start:start + 2], "big")
            start += 2
        elif n == 127:
            if len(buf) - start < 8:
                return None
            n = int.from_bytes(buf[start:start + 8], "big")
            start += 8
        if b1 & 0x80:
            raise WireError("the server sent a masked frame")
        if len(buf) - start < n:
            return None
        self._pos = start + n
        return b0 & 0x80, b0 & 0x40, b0 & 0x0F, buf[start:start + n]

    def recv_text(self, block=True):
        """Return the next whole text message as a bytearray; None when not blocking and none is ready."""
        parts, compressed = [], False
        while True:
            frame = self._next_frame()
            if frame is None:
                if not block and not parts:
                    return None
                self._fill()
                continue
            fin, rsv1, opcode, payload = frame
            if opcode == 0x8:
                raise WireError("the server closed the WebSocket")
            if opcode == 0x9:  # a WebSocket ping: answer in kind
                self._send_frame(0x8A, payload)
                continue
            if opcode == 0xA:
                self.pongs.append(bytes(payload))
                continue
            if opcode != 0x0:
                compressed = bool(rsv1)
            parts.append(payload)
            if not fin:
                continue
            message = parts[0] if len(parts) == 1 else bytearray(b"".join(parts))
            if compressed:
                message = self._inflate.decompress(message + DEFLATE_TAIL)
                self.inflated += 1
                if self._reset_inflate:
                    self._inflate = zlib.decompressobj(-15)
            if message == b"2":  # Engine.IO ping: the server closes us without a pong
                self.send_raw("3")
                self.heartbeats += 1
                parts, compressed = [], False
                continue
            return message

    def pending(self):
        """Return True when whole frames are already buffered."""
        return len(self._buf) - self._pos >= 2

    def _send_frame(self, first_byte, payload):
        self.sock.sendall(struct.pack("!BB", first_byte, 0x80 | len(payload)) + _mask(payload))

    def ping(self, payload=b""):
        """Send a WebSocket ping control frame (at most 125 bytes of payload)."""
        self._send_frame(0x89, payload)

    def send_raw(self, text):
        """Send one Engine.IO packet as a text message."""
        self.sock.sendall(_frame(text))

    def emit(self, event, data=None, ack=False):
        """Send a Socket.IO event; return its ack id when ack is asked for."""
        args = [event] if data is None else [event, data]
        ack_id = ""
        if ack:
            self._ack_id += 1
            ack_id = str(self._ack_id)
        self.send_raw("42" + ack_id + json.dumps(args, separators=(",", ":")))
        return self._ack_id if ack else None

    def call(self, event, data=None, on_other=None, timeout=10.0):
        """Send an event, wait for its ack and return the ack's arguments."""
        ack_id = self.emit(event, data, ack=True)
        prefix = b"43" + str(ack_id).encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.recv_text()
            if message.startswith(prefix) and message[len(prefix):len(prefix) + 1] == b"[":
                return json.loads(message[len(prefix):])
            if on_other is not None:
                on_other(message)
        raise TimeoutError(f"no answer to {event} in {timeout} s")

    def join(self, deployment_id, batch=None, timeout=10.0):
        """Start streaming deployment_id, passing over whatever else arrives first; return the reply."""
        request = {"deployment_id": deployment_id}
        if batch is not None:
            request["batch"] = batch
        return self.call("start_streaming", request, on_other=lambda message: None,
                         timeout=timeout)

    def fileno(self):
        return self.sock.fileno()

    def close(self, timeout=1.0):
        """Leave the namespace, close the WebSocket and wait briefly for the server to agree."""
        try:
            self.sock.sendall(_frame("41"))
            self._send_frame(0x88, struct.pack("!H", 1000))
            self.sock.settimeout(timeout)
            while self.sock.recv(RECV_BYTES):
                pass  # the server's last frames, then its close
        except OSError:
            pass  # gone already, or slow: either way we are done
        self.sock.close()


def joined_viewers(url, deployment_id, count, batch=None, **options):
    """Return count LeanClients of url, connected and joined to deployment_id one after another."""
    viewers = []
    for _ in range(count):
        viewer = LeanClient(url, **options)
        viewer.join(deployment_id, batch)
        viewers.append(viewer)
    return viewers
