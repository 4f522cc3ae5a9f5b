"""Send one room's packet to every member: encoded and framed once, written straight to each WebSocket.

Engine.IO's way is one queue put per member and one writer thread per member
waking for it; with a thousand members that is a thousand thread switches
per batch. Here the publishing thread writes the same frame bytes to every
member's socket without blocking: what a socket can't take at once waits in
that member's byte buffer (at most ``Limits.max_backlog_bytes``) and one flusher
thread writes it out when the socket drains. Members that are not on a
WebSocket (long-polling), or whose Engine.IO queue still holds packets, get
the packet through Engine.IO as before, so nothing overtakes what was queued.
"""

import collections
import os
import selectors
import socket
import threading
import weakref

from engineio import packet as eio_packet
from socketio import PubSubManager
from socketio import packet as sio_packet

from logstream.web.internals import ByteQueue

IOV_MAX = 512


class SendQueue(ByteQueue):
    """Engine.IO's per-session send queue (bytes counted), which also tells when its writer waits on it, empty."""

    writer_waiting = False

    def get(self, block=True, timeout=None):
        if block:
            with self.mutex:
                if not self._qsize():
                    self.writer_waiting = True
        return super().get(block, timeout)

    def _get(self):
        # Runs under the queue's lock as the writer takes a packet: from now
        # until it waits again, a packet may be on its way to the socket.
        self.writer_waiting = False
        return super()._get()

    def drained(self):
        """Return True when nothing is queued or being written by the session's writer."""
        with self.mutex:
            return self.writer_waiting and not self._qsize()


class Flusher:
    """One thread that writes out every socket's buffered bytes as the socket drains."""

    def __init__(self):
        self._lock = threading.Lock()
        self._new = []
        self._thread = None
        # Plain descriptors: they live as long as the process.
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def watch(self, sink):
        with self._lock:
            self._new.append(sink)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="logstream-flusher",
                                                daemon=True)
                self._thread.start()
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:
            pass  # a wake-up is already pending

    def _run(self):
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        while True:
            for key, _ in selector.select():
                sink = key.data
                if sink is None:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                if sink.flush():
                    selector.unregister(key.fileobj)
            with self._lock:
                new, self._new = self._new, []
            for sink in new:
                try:
                    selector.register(sink.fd, selectors.EVENT_WRITE, sink)
                except KeyError:
                    pass  # already watched
                except (ValueError, OSError):
                    sink.drop()  # closed meanwhile


_flusher = Flusher()


class FrameSink:
    """A WebSocket's socket whose every write, whoever makes it, goes out in order and never blocks.

    simple-websocket's reader thread (pongs, closes), Engine.IO's writer
    thread and the publishing thread all write here; each write joins the
    end of what is waiting, so frames never interleave or overtake.
    """

    def __init__(self, sock):
        self._sock = sock
        self.fd = sock.fileno()
        self._lock = threading.Lock()
        self._pending = collections.deque()
        self.pending_bytes = 0
        self.closed = False

    def _write(self, parts):
        # A socket with a timeout is non-blocking underneath, but Python
        # would wait for it to drain; a blocking one takes MSG_DONTWAIT.
        if self._sock.gettimeout() is not None:
            return os.writev(self.fd, parts)
        return self._sock.sendmsg(parts, [], socket.MSG_DONTWAIT)

    def write(self, parts, budget=None):
        """Send parts as one frame, or keep what the socket can't take; return False if over budget."""
        with self._lock:
            if self.closed:
                raise OSError("the WebSocket is closed")
            size = sum(len(part) for part in parts)
            if budget is not None and self.pending_bytes and self.pending_bytes + size > budget:
                return False
            if not self._pending:
                try:
                    sent = self._write(parts)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self.closed = True
                    raise
                if sent == size:
                    return True
                data = b"".join(parts)[sent:]
            else:
                data = b"".join(parts)
            self._pending.append(data)
            self.pending_bytes += len(data)
        _flusher.watch(self)
        return True

    def flush(self):
        """Write what waits; return True when nothing is left (or the socket is gone)."""
        with self._lock:
            while self._pending:
                parts = list(self._pending)[:IOV_MAX]
                try:
                    sent = self._write(parts)
                except BlockingIOError:
                    return False
                except OSError:
                    self._drop_locked()
                    return True
                self.pending_bytes -= sent
                while sent:
                    head = self._pending[0]
                    if sent >= len(head):
                        sent -= len(head)
                        self._pending.popleft()
                    else:
                        self._pending[0] = head[sent:]
                        sent = 0
            return True

    def _drop_locked(self):
        self.closed = True
        self._pending.clear()
        self.pending_bytes = 0

    def drop(self):
        with self._lock:
            self._drop_locked()

    def send(self, data):
        self.write([data])
        return len(data)

    sendall = send

    def send_parts(self, *parts):
        self.write(parts)

    def close(self):
        self.drop()
        self._sock.close()

    def __getattr__(self, name):
        return getattr(self._sock, name)


# -- rooms -----------------------------------------------------------------------

# Engine.IO server -> {Engine.IO sid: its open FastWebSocket}
_websockets = weakref.WeakKeyDictionary()


def websockets_of(eio):
    """Return the open WebSockets of one Engine.IO server, by Engine.IO sid."""
    return _websockets.setdefault(eio, {})


class RoomFanout:
    """Emit an event to a room, writing the same frame to every member's WebSocket."""

    def __init__(self, socketio):
        self.socketio = socketio
        # A message queue (Redis) spreads a room over several servers: its
        # emits must go through it, so the direct path is for one server only.
        self.direct = not isinstance(socketio.server.manager, PubSubManager)

    def emit(self, event, payload, room, on_full, max_backlog_bytes, backlog):
        """Send event to every member of room; call on_full(sid) for members too far behind.

        ``backlog(sid)`` gives the bytes in a member's Engine.IO queue; a
        member's send buffer counts too, and a member past
        ``max_backlog_bytes`` gets nothing more.
        """
        server = self.socketio.server
        if not self.direct:
            self.socketio.emit(event, payload, to=room)
            return
        members = list(server.manager.get_participants("/", room))
        if not members:
            return
        encoded = server.packet_class(sio_packet.EVENT, data=[event, payload],
                                      namespace="/").encode()
        text = "4" + encoded
        frames = {}
        websockets = websockets_of(server.eio)
        eio_message = None
        for sid, eio_sid in members:
            ws = websockets.get(eio_sid)
            if ws is not None and ws.direct_ready():
                frame = frames.get(ws.wbits)
                if frame is None:
                    frame = frames[ws.wbits] = ws.frame(text)
                try:
                    if ws.sink.write(frame, max_backlog_bytes):
                        continue
                except OSError:
                    continue  # gone: its disconnect is on its way
                on_full(sid)
                continue
            buffered = ws.sink.pending_bytes if ws is not None and ws.sink is not None else 0
            if backlog(sid) + buffered > max_backlog_bytes:
                on_full(sid)
                continue
            if eio_message is None:
                eio_message = eio_packet.Packet(eio_packet.MESSAGE, data=encoded)
            server.eio.send_packet(eio_sid, eio_message)
