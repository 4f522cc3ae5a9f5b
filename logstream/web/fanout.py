"""Send one room's packet to every member on green threads: encoded and framed once, written straight to each WebSocket.

Engine.IO's way is a queue put per member and a writer per member waking
for it; with a thousand viewers of one deployment that is a thousand task
switches and a thousand encodings per batch. When the server runs on
gevent's green threads (`logstream serve`), the publishing task instead
writes the same frame bytes to each member's socket, without blocking:

- a member whose Engine.IO queue still holds packets, whose socket is being
  written by someone else, or who is not on a WebSocket (long-polling) gets
  the packet through Engine.IO as before, so nothing overtakes what is queued;
- what a socket can't take at once is finished by a small task that holds
  the socket's write lock meanwhile, so later packets queue behind it (counted
  in the backlog, ``Limits.max_backlog_bytes``): at most one frame is ever
  outside the count.

This is exact only on green threads, where a task runs until it waits: the
check "nothing queued, nobody writing" and the write happen with no other
task in between. On OS threads a writer may hold a packet it has taken off
the queue and not yet written, so the threading server keeps Engine.IO's
room emit.
"""

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from logstream.web import internals
from logstream.web.websocket import LogPacket


def room_packet(event, payload):
    """Return the Socket.IO packet text that carries an event to any client."""
    return LogPacket(sio_packet.EVENT, namespace="/", data=[event, payload]).encode()


class RoomFanout:
    """Emit to a room, writing frames straight to its members' WebSockets where that is safe."""

    def __init__(self, socketio, websockets, direct):
        self.socketio = socketio
        # Engine.IO sid -> the FastWebSocket serving it (see websocket.py).
        self.websockets = websockets
        self.direct = direct
        self.direct_writes = 0
        self.queued_writes = 0

    def backlog(self, sid):
        """Return how many bytes are queued for a client and not yet sent."""
        return internals.queued_bytes(self.socketio.server, sid)

    def emit(self, event, payload, room, max_backlog=None, on_lagging=None):
        """Send event to every member of room; members whose backlog is over
        max_backlog bytes get on_lagging(sid) instead."""
        members = list(self.socketio.server.manager.get_participants("/", room))
        if not members:
            return
        if not self.direct:
            if on_lagging is not None:
                for sid, _ in members:
                    if self.backlog(sid) > max_backlog:
                        on_lagging(sid)
            self.socketio.emit(event, payload, to=room)
            return
        packet = room_packet(event, payload)
        message = eio_packet.Packet(eio_packet.MESSAGE, packet).encode()
        eio = self.socketio.server.eio
        frames = {}  # one frame per compression setting, shared by every member
        websockets = self.websockets
        direct = queued = 0
        for sid, eio_sid in members:
            websocket = websockets.get(eio_sid)
            if on_lagging is not None:
                backlog = (websocket.queue.bytes if websocket is not None
                           else self.backlog(sid))
                if backlog > max_backlog:
                    on_lagging(sid)
                    continue
            if websocket is not None and websocket.write_now(message, frames):
                direct += 1
            else:
                # Through Engine.IO's queue, every member holding the same
                # string: a stalled room costs its packets once, not per member.
                queued += 1
                eio.send(eio_sid, packet)
        self.direct_writes += direct
        self.queued_writes += queued
