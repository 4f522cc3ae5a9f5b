"""The fast path from an emit to the socket: pre-encoded payloads, cheap frames, shared compression."""

import collections
import json
import os
import socket
import threading
import zlib

from socketio.packet import Packet

from logstream.web.internals import (QuickWebSocketWSGI, deflate_window_bits,
                                     locking_thread_class, session_of, use_websocket_class)
from logstream.web.wsconn import DEFLATE_TAIL, WebSocketConnection, frame_header


# How json.dumps quotes a str by default (ensure_ascii), minus its overhead.
_quote = json.encoder.encode_basestring_ascii


class RawJSON(str):
    """JSON text that goes into a Socket.IO packet as it is, not as a string."""


class _PacketJSON:
    """The json module the packets use: stdlib json, splicing RawJSON in unchanged."""

    loads = staticmethod(json.loads)

    @staticmethod
    def dumps(obj, **kwargs):
        if type(obj) is list and len(obj) == 2 and type(obj[1]) is RawJSON \
                and type(obj[0]) is str:
            return f"[{_quote(obj[0])},{obj[1]}]"  # [event, payload]: every line's shape
        if isinstance(obj, list) and any(type(item) is RawJSON for item in obj):
            # The event name is a plain str: quoting it directly skips the
            # JSONEncoder that json.dumps would build for every line.
            return "[" + ",".join(
                item if type(item) is RawJSON
                else _quote(item) if type(item) is str else json.dumps(item, **kwargs)
                for item in obj) + "]"
        return json.dumps(obj, **kwargs)


class LogPacket(Packet):
    """A Socket.IO packet that encodes RawJSON arguments without walking them."""

    json = _PacketJSON

    @classmethod
    def data_is_binary(cls, data):
        # The stock check walks every value of every line of a batch, which
        # cost more than encoding it; strings (RawJSON too) are never binary.
        if isinstance(data, list) and all(isinstance(item, str) for item in data):
            return False
        return _holds_bytes(data)


def _holds_bytes(data):
    """Return True when data, or a value in its lists and dicts, is bytes (what the stock check answers).

    The stock check builds a list and reduces it at every level, for each
    status, reply and connect packet.
    """
    if isinstance(data, (bytes, bytearray)):
        return True
    if isinstance(data, list):
        return any(_holds_bytes(item) for item in data)
    if isinstance(data, dict):
        return any(_holds_bytes(item) for item in data.values())
    return False


# -- WebSocket frames ------------------------------------------------------------

# Smaller messages go out uncompressed even when the client offered
# permessage-deflate (RFC 7692 lets each message choose): deflating a line
# costs more than sending it, and saves next to nothing.
COMPRESS_MIN_BYTES = 1024
# Level 1 keeps most of the saving on log text at a third of the default's cost.
COMPRESS_LEVEL = 1


class SharedDeflate:
    """Compress each message once, however many clients it goes to.

    A message is compressed on its own (no shared window), so the same bytes
    are valid on every connection; a room's emit hands every client's writer
    the same string object, which is what the cache is keyed on.
    """

    def __init__(self, size=32):
        self._lock = threading.Lock()
        self._items = collections.OrderedDict()
        self._size = size

    def compress(self, message, data, wbits):
        key = (id(message), wbits)
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] is message:
                return hit[1]
        compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -wbits)
        payload = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-len(DEFLATE_TAIL)]
        with self._lock:
            # Holding the message keeps its id from being reused while cached.
            self._items[key] = (message, payload)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return payload


_shared_deflate = SharedDeflate()


class FastWebSocket(QuickWebSocketWSGI):
    """Engine.IO's threading WebSocket, with a faster handshake and send.

    simple-websocket has wsproto parse the handshake's request again (the
    HTTP server has parsed it); QuickWebSocketWSGI answers from the WSGI
    environ. It frames every message through wsproto and, when the
    client offered permessage-deflate (browsers always do), deflates every
    message separately for every client. This builds frames directly,
    deflates only large messages, once per room, and turns off Nagle's
    algorithm so small frames (pongs, single lines) leave at once instead of
    waiting up to 40 ms for the previous frame's ACK. Every write to the
    socket, simple-websocket's own pongs and closes included, goes through
    one lock, so frames never interleave.
    """

    _ready = False
    _wbits = None
    # Set when the session has finished any upgrade: it writes to this socket for good.
    _settled = False
    # Engine.IO sid -> FastWebSocket, for room emits that write frames
    # directly (fanout.py); filled only where that is safe (green threads).
    registry = None

    def __init__(self, handler, server, **kwargs):
        super().__init__(handler, server, thread_class=locking_thread_class, **kwargs)
        self.session = session_of(handler)
        self.queue = getattr(self.session, "queue", None)

    def __call__(self, environ, start_response):
        try:
            return super().__call__(environ, start_response)
        finally:
            if self.registry is not None and self.session is not None:
                if self.registry.get(self.session.sid) is self:
                    del self.registry[self.session.sid]
                self.session.queue.direct = None

    def opened(self):
        self._prepare()

    def _prepare(self):
        ws = self.ws
        ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._wbits = (ws.deflate_bits if isinstance(ws, WebSocketConnection)
                       else deflate_window_bits(ws))
        # What write_now() reads for every member of a room, kept at hand:
        # the descriptor (written only while ws.connected, so never after
        # the reader has closed it) and the lock every other write takes.
        self._fd = ws.sock.fileno()
        self._lock = ws.sock.lock
        self._ready = True
        if self.registry is not None and self.session is not None:
            self.registry[self.session.sid] = self
            # Packets for this client alone (replies, history, pings) also
            # skip the queue and the writer's wake-up when nothing waits.
            self.session.queue.direct = self.write_packet

    def frame(self, message):
        """Return the frame (header, data) that carries message to this client."""
        if isinstance(message, (bytes, bytearray)):
            first, data = 0x82, bytes(message)
        else:
            first, data = 0x81, message.encode()
        if self._wbits is not None and len(data) >= COMPRESS_MIN_BYTES:
            data = _shared_deflate.compress(message, data, self._wbits)
            first |= 0x40
        return frame_header(first, len(data)), data

    def send(self, message):
        ws = self.ws
        if not ws.connected:
            raise OSError("the WebSocket is closed")
        if not self._ready:
            self._prepare()
        ws.sock.send_parts(*self.frame(message))

    def _settle(self):
        # Only reached after _prepare() with a session (the registry and the
        # queue's direct path are both set there). Not while an upgrade from
        # long-polling is under way: until the client has switched, its
        # packets still go out by polling.
        session = self.session
        self._settled = session.upgraded and not session.upgrading
        return self._settled

    def write_now(self, message, frames):
        """Write message's frame unless a packet is queued or being written; return True if written.

        ``frames`` caches the frame by compression setting across a room's
        members. Only for green threads (see fanout.py): nothing else runs
        between the checks and the write, which never waits. It runs for
        every member of a room on every publish, so it reads the socket's
        state directly instead of asking the objects that keep it.
        """
        if not (self._settled or self._settle()) or not self.ws.connected \
                or self.queue.queue or self._lock.locked():
            return False  # packets wait, or someone is writing: this one goes behind them
        framed = frames.get(self._wbits)
        if framed is None:
            parts = self.frame(message)
            framed = frames[self._wbits] = (parts, len(parts[0]) + len(parts[1]))
        parts, total = framed
        try:
            sent = os.writev(self._fd, parts)
        except BlockingIOError:
            sent = 0
        except OSError:
            return False  # closed: Engine.IO's path reports it
        if sent != total:
            self.ws.sock.finish_later(parts, sent)
        return True

    def write_packet(self, pkt):
        """Write one Engine.IO packet now unless one is queued or being written; return True if written."""
        return self.write_now(pkt.encode(), {})

    def close(self):
        super().close()
        # simple-websocket then waits on its reader thread for the client's
        # closing frame, forever when the client never sends one (a refused
        # or timed-out session of a hostile client): end the TCP connection.
        try:
            self.ws.sock.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass  # already gone, or never opened


def install(socketio, direct=False):
    """Make socketio's Engine.IO server use FastWebSocket for its WebSockets.

    With ``direct`` (green threads only), return the registry of open
    WebSockets by Engine.IO sid that room emits write to (fanout.py).
    """
    registry = {} if direct else None
    websocket_class = type("FastWebSocket", (FastWebSocket,), {"registry": registry})
    use_websocket_class(socketio.server.eio, websocket_class)
    return registry
