"""Reach into python-engineio, python-socketio, simple-websocket and wsproto where no public API does the job.

This is the one module in logstream that uses those libraries' private
names; ``PRIVATE_NAMES`` lists each one and why. pyproject.toml pins the four
packages below the releases that may change them, and
tests/test_internals_contract.py checks every name against the installed
versions, failing with a sentence that names the package and what changed.
"""

import time

import simple_websocket
import socketio
from engineio import packet as eio_packet

from wsproto.utilities import RemoteProtocolError

from logstream.support.green import thread_class
from logstream.web.handshake import agreed_window_bits, quick_handshake, refused_handshake
from logstream.web.sendqueue import ByteQueue
from logstream.web.wsconn import LockedSocket, WebSocketConnection, text_frame

# Engine.IO's threading WebSocket wrapper lives in a private module.
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

# package -> {private name: what logstream uses it for}
PRIVATE_NAMES = {
    "python-engineio": {
        "engineio.async_drivers._websocket_wsgi.SimpleWebSocketWSGI":
            "the threading WebSocket class FastWebSocket extends, whose __call__ "
            "QuickWebSocketWSGI repeats with its own connection",
        "engineio.Server._async":
            "the table that says which WebSocket class, send queue and thread class a server uses",
        "engineio.Server.sockets":
            "every open Engine.IO session, to close them at shutdown or when they never join",
        "engineio.socket.Socket.queue": "a session's packets not yet sent (the backlog)",
        "engineio.socket.Socket._websocket_handler":
            "the handler given to the WebSocket class is a method of its session",
    },
    "python-socketio": {
        "socketio.Client._reconnect_task": "whether a client is still trying to reconnect",
        "socketio.base_manager.BaseManager.eio_sid_from_sid":
            "the Engine.IO session behind a Socket.IO sid",
        "socketio.base_manager.BaseManager.basic_disconnect":
            "what a client's leaving cleans up (rooms, callbacks, pending_connect, "
            "pending_disconnect), done by RoomIndex without scanning every room",
    },
    "simple-websocket": {
        "simple_websocket.ws.Base._thread":
            "its reader thread writes pongs and closes through self.sock.send",
    },
    "wsproto": {
        "wsproto.connection.Connection._proto.extensions": "the permessage-deflate window agreed on",
    },
}


# -- python-engineio ---------------------------------------------------------------


def use_thread_class(eio, thread_class):
    """Make one Engine.IO server start its background tasks (one per incoming event) with thread_class."""
    eio._async = dict(eio._async, thread=thread_class)


def use_websocket_class(eio, websocket_class):
    """Make one Engine.IO server open its WebSockets with websocket_class."""
    if eio._async.get("websocket") is SimpleWebSocketWSGI:
        # A copy: the stock dict is shared by every Engine.IO server in the process.
        eio._async = dict(eio._async, websocket=websocket_class)


def close_sessions(eio, timeout=2.0):
    """Close every Engine.IO session, waiting at most timeout for the goodbyes to go out.

    Engine.IO's own disconnect() waits on each session's send queue with no
    limit, and hangs forever when the client closes at the same moment (its
    reader queues one more item after the writer has gone).
    """
    # Sessions already closed may keep a leftover item in their queue.
    sessions = [session for session in eio.sockets.values() if not session.closed]
    for session in sessions:
        session.close(wait=False, reason=eio.reason.SERVER_DISCONNECT)
    deadline = time.monotonic() + timeout
    for session in sessions:
        with session.queue.all_tasks_done:
            session.queue.all_tasks_done.wait_for(
                lambda: not session.queue.unfinished_tasks,
                max(0.0, deadline - time.monotonic()))
    eio.sockets = {}


# -- python-engineio: backlogs in bytes, sessions that never join ----------------


def session_of(handler):
    """Return the Engine.IO session whose WebSocket handler this is, or None."""
    session = getattr(handler, "__self__", None)
    return session if hasattr(session, "sid") and hasattr(session, "queue") else None


def install_byte_queues(socketio):
    """Make every Engine.IO session of socketio queue its packets in a ByteQueue."""
    eio = socketio.server.eio
    # Engine.IO builds each session's queue with _async["queue"]; a copy,
    # because the stock dict is shared by every Engine.IO server in the process.
    eio._async = dict(eio._async, queue=type("ByteQueue", (ByteQueue,), {"backlogged": set()}))


def queued_bytes(sio_server, sid, namespace="/"):
    """Return how many bytes wait to be sent to a Socket.IO client (0 when it is gone)."""
    eio_sid = sio_server.manager.eio_sid_from_sid(sid, namespace)
    session = sio_server.eio.sockets.get(eio_sid) if eio_sid else None
    return getattr(getattr(session, "queue", None), "bytes", 0)


def all_queued_bytes(socketio):
    """Return how many bytes wait to be sent to all of socketio's open sessions together."""
    # The queues holding packets (install_byte_queues); a copy, as other threads change it.
    return sum(queue.bytes for queue in socketio.server.eio._async["queue"].backlogged.copy())


def engineio_sessions(socketio):
    """Return the Engine.IO session ids open right now."""
    return list(socketio.server.eio.sockets)


def joined_namespace(socketio, eio_sid):
    """Return True when the Engine.IO session has joined the Socket.IO namespace."""
    return socketio.server.manager.sid_from_eio_sid(eio_sid, "/") is not None


def close_session(socketio, eio_sid):
    """Close an Engine.IO session without waiting for its client; return False if already closed."""
    sock = socketio.server.eio.sockets.get(eio_sid)
    if sock is None or sock.closed:
        return False
    # Engine.IO's own disconnect() waits for the queue to drain, forever
    # when the client doesn't read; otherwise this is what it does.
    sock.close(wait=False, abort=False)
    socketio.server.eio.sockets.pop(eio_sid, None)
    return True


# -- python-socketio ---------------------------------------------------------------


def gave_up(sio_client):
    """Return True when a python-socketio client is down and will not reconnect by itself."""
    return not sio_client.connected and sio_client._reconnect_task is None


class RoomIndex:
    """A python-socketio client manager mix-in that knows each client's rooms.

    python-socketio's ``basic_disconnect`` looks for the leaving client in
    every room of the namespace, and every client has a room of its own: N
    clients leaving cost N² checks (10,000 viewers leaving took minutes of
    CPU). Here every enter and leave also updates a client -> rooms index,
    and a disconnect leaves only the client's own rooms.
    """

    def __init__(self, *args, **kwargs):
        # Made before the manager is used: two threads must never each make one.
        self._logstream_rooms_of = {}
        super().__init__(*args, **kwargs)

    def basic_enter_room(self, sid, namespace, room, eio_sid=None):
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)
        self._logstream_rooms_of.setdefault((namespace, sid), set()).add(room)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        index = self._logstream_rooms_of
        rooms = index.get((namespace, sid))
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del index[(namespace, sid)]

    def basic_disconnect(self, sid, namespace, **kwargs):
        if namespace not in self.rooms:
            return
        for room in list(self._logstream_rooms_of.get((namespace, sid), ())):
            self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]

    def get_rooms(self, sid, namespace):
        rooms = self._logstream_rooms_of.get((namespace, sid), ())
        return [room for room in rooms if room is not None]


class IndexedManager(RoomIndex, socketio.Manager):
    """python-socketio's in-process client manager, with each client's rooms indexed."""


# -- simple-websocket and wsproto --------------------------------------------------


def locking_thread_class(target, **kwargs):
    """Build simple-websocket's reader thread, first routing its socket's writes through a LockedSocket.

    Passed as simple_websocket.Server's ``thread_class``: it runs after the
    handshake and before the thread starts, so no write ever bypasses the lock.
    """
    ws = target.__self__
    if not isinstance(ws.sock, LockedSocket):
        ws.sock = LockedSocket(ws.sock)
    return thread_class()(target=target, **kwargs)


def deflate_window_bits(ws):
    """Return the permessage-deflate window (bits) a simple-websocket connection agreed on, or None."""
    return agreed_window_bits(getattr(getattr(ws.ws.connection, "_proto", None), "extensions", ()))


# -- a WebSocket opened without simple-websocket where the handshake is well formed ----


def _server_socket(environ):
    """Return (the connection's socket, the HTTP server's name) from a WSGI environ, or (None, None)."""
    for mode in ("werkzeug", "gunicorn"):
        sock = environ.get(f"{mode}.socket")
        if sock is not None:
            return sock, mode
    return None, None


class QuickWebSocketWSGI(SimpleWebSocketWSGI):
    """Engine.IO's threading WebSocket class, reading well-formed connections on the handler's own task.

    A well-formed handshake is answered from the WSGI environ
    (handshake.quick_handshake) and the connection is a
    wsconn.WebSocketConnection: no reader thread, no second parse of the
    request. Anything else goes to simple-websocket and wsproto as before,
    which answer or refuse it.
    """

    def __init__(self, handler, server, **kwargs):
        super().__init__(handler, server, **kwargs)
        self.max_message_bytes = server.max_http_buffer_size

    def opened(self):
        """Called once a connection made here is open, before Engine.IO's handler runs."""

    def _opening(self):
        """Return the frame of the Engine.IO open packet a new session has queued, taken off its queue; or b"".

        A client that opens its session over a WebSocket (no long-polling
        first) gets the open packet in the same write as the 101 answer,
        instead of from Engine.IO's writer task after it starts.
        """
        session = session_of(self.app)
        if session is None or session.connected:
            return b""  # an upgrade: the open packet went out by polling
        waiting = session.queue.queue
        if len(waiting) != 1 or getattr(waiting[0], "packet_type", None) != eio_packet.OPEN:
            return b""
        pkt = session.queue.get_nowait()
        session.queue.task_done()
        return text_frame(pkt.encode())

    def __call__(self, environ, start_response):
        # SimpleWebSocketWSGI.__call__ with the connection made here, and a
        # malformed handshake answered with a sentence, not a crash (500).
        answer = quick_handshake(environ)
        sock, mode = _server_socket(environ)
        if answer is not None and sock is not None:
            response, extensions = answer
            self.ws = WebSocketConnection(sock, mode, response + self._opening(),
                                          agreed_window_bits(extensions), self.max_message_bytes)
            self.opened()
        else:
            try:
                self.ws = simple_websocket.Server(environ, **self.server_args)
            except RemoteProtocolError as error:
                session = session_of(self.app)
                if session is not None:
                    session.close(wait=False, abort=True)
                status, headers, body = refused_handshake(environ, error)
                start_response(status, headers)
                return [body]
        ret = self.app(self)
        if self.ws.mode == "gunicorn":
            raise StopIteration()
        elif self.ws.mode == "werkzeug":
            raise ConnectionError()
        return ret
