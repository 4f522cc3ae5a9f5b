"""Socket.IO events: join a deployment's room, receive its lines, ping the server."""

import contextlib
import logging
import threading
import time

from socketio.exceptions import ConnectionRefusedError

from logstream.web import auth, internals
from logstream.core.deployments import UnknownDeployment
from logstream.web.limits import PIECE_BYTES, ClientLimits, byte_pieces
from logstream.web.outlet import SocketOutlet
from logstream.web.payloads import (batch_json, batch_room, lagging_status, line_json,
                                     line_room)
from logstream.web.validation import (RequestError, start_streaming_request,
                         stop_streaming_request)

log = logging.getLogger(__name__)

HISTORY_TAIL = 50
CLIENT_LOCKS = 8
ATTACH_TIMEOUT = 10.0


def register_events(app, socketio, hub, limits, clients=None, fanout=None):
    """Attach the logstream protocol's event handlers to socketio, the Flask-SocketIO of app.

    The handlers are python-socketio's own, called with the client's sid:
    none needs Flask's request context, which Flask-SocketIO would build
    for every event (a tenth of a viewer's join). ``clients`` is the
    ClientLimits shared with the SSE route, so both count toward the same
    connection and stream caps.
    """
    sio = socketio.server
    lock = threading.Lock()
    streams = {}  # sid -> {deployment_id: batch?}
    joined = set()  # (sid, deployment_id) whose client is in the room
    waiting = {}  # (sid, deployment_id) -> (attached event, reply) of a join under way
    # One change at a time per client and deployment: two joins racing (a
    # double click, a reconnect crossing a join) would otherwise both
    # subscribe. A few locks per client, picked by the deployment's hash,
    # keep joins of different deployments from waiting on each other.
    client_locks = {}  # sid -> {slot: Lock}, made as its joins need them
    clients = clients or ClientLimits(limits)

    def drop_lagging(sid, deployment_id, status):
        # Runs on the follower thread; the client catches up from disk with
        # `since`, so its memory on the server stays bounded.
        if leave(sid, deployment_id):
            socketio.emit("status", status, to=sid)

    def source_failed(deployment_id, sids, payload):
        # On the publishing thread, which is also the one that lets joins
        # into rooms: a client in `joined` here belongs to the failed source.
        for sid in sids:
            if not isinstance(sid, str):
                continue  # an SSE subscriber; its outlet tells it
            join = waiting.get((sid, deployment_id))
            if join is not None:
                join[1].update(payload)
                join[0].set()
            with lock:
                member = (sid, deployment_id) in joined
                batch = streams.get(sid, {}).pop(deployment_id, None) if member else None
                joined.discard((sid, deployment_id))
                if batch is not None:
                    (outlet.batch_members if batch else outlet.line_members)[deployment_id] -= 1
            if batch is not None:
                clients.close_stream()
                socketio.server.leave_room(
                    sid, batch_room(deployment_id) if batch else line_room(deployment_id),
                    namespace="/")
            socketio.emit("stream_error", payload, to=sid)

    outlet = SocketOutlet(socketio, limits.max_backlog_bytes, drop_lagging, source_failed,
                          fanout)
    hub.outlets.append(outlet)

    def refuse(sid, error):
        payload = error.payload()
        socketio.emit("stream_error", payload, to=sid)
        return payload

    def event(name):
        """Register a client event's handler; a failure in it is logged and answered."""
        def register(handler):
            def run(sid, *args):
                try:
                    return handler(sid, *args)
                except Exception:  # noqa: BLE001 - the client gets a sentence, the log the rest
                    log.exception("error handling the Socket.IO event %r", name)
                    return refuse(sid, RequestError(
                        "internal_error",
                        "The server failed to handle that request; it was logged."))
            sio.on(name, run)
            return handler
        return register

    def one_argument(args, event):
        if len(args) > 1:
            raise RequestError(
                "invalid_payload", f"{event} takes one argument, not {len(args)}.")
        return args[0] if args else None

    def leave(sid, deployment_id, release=True):
        with lock:
            joined.discard((sid, deployment_id))
            batch = streams.get(sid, {}).pop(deployment_id, None)
            if batch is None:
                return False
            (outlet.batch_members if batch else outlet.line_members)[deployment_id] -= 1
        if release:
            clients.close_stream()
        hub.unsubscribe(deployment_id, sid)
        socketio.server.leave_room(
            sid, batch_room(deployment_id) if batch else line_room(deployment_id),
            namespace="/")
        return True

    def limited(sid, action, what):
        if clients.allow(sid, action):
            return None
        return refuse(sid, RequestError(
            "rate_limited", f"Too many {what} requests; slow down and try again in a second."))

    def sent_by_client(sid):
        # python-socketio hands a client's events named "connect" or
        # "disconnect" (with any arguments) to those handlers too; its own
        # calls come while the client is still connecting, or already leaving.
        return sio.manager.is_connected(sid, "/")

    @sio.on("connect")
    def connect(sid, environ=None, auth_payload=None, *_):
        if sent_by_client(sid):
            return unknown_event("connect", sid)
        # Fails closed: whatever goes wrong while checking refuses the client.
        try:
            if not auth.connection_ok(app, environ, auth_payload):
                raise ConnectionRefusedError(
                    "This logstream server needs a token: connect with auth {\"token\": ...}.")
            if not clients.admit(sid):
                raise ConnectionRefusedError(
                    "This logstream server is full; try again later.")
            with lock:
                streams[sid] = {}
                client_locks[sid] = {}  # made as joins need them: most clients join once
        except ConnectionRefusedError:
            raise
        except Exception:  # noqa: BLE001 - any failure to check is a refusal
            log.exception("refusing a connection that could not be checked")
            clients.disconnected(sid)
            with lock:
                streams.pop(sid, None)
                client_locks.pop(sid, None)
            raise ConnectionRefusedError(
                "The server failed to check this connection; it was logged.") from None

    @sio.on("disconnect")
    def disconnect(sid, *_):
        if sent_by_client(sid):
            return unknown_event("disconnect", sid)
        with lock:
            # From here on no join of this client takes a lock (lock_for
            # answers None); those holding one finish before it leaves.
            locks = client_locks.pop(sid, {})
        with contextlib.ExitStack() as held:
            for slot in sorted(locks):  # always in the same order: no deadlock
                held.enter_context(locks[slot])
            with lock:
                deployment_ids = list(streams.get(sid, ()))
            for deployment_id in deployment_ids:
                leave(sid, deployment_id)
            with lock:
                streams.pop(sid, None)
        clients.disconnected(sid)

    @event("start_streaming")
    def start_streaming(sid, *args):
        try:
            deployment_id, since, batch = start_streaming_request(
                one_argument(args, "start_streaming"))
        except RequestError as error:
            return refuse(sid, error)
        refused = limited(sid, "start_streaming", "start_streaming")
        if refused:
            return refused
        client_lock = lock_for(sid, deployment_id)
        if client_lock is None:
            return None  # disconnected meanwhile
        with client_lock:
            return join(sid, deployment_id, since, batch)

    def too_many_streams(count):
        return RequestError(
            "too_many_streams",
            f"You are already streaming {count} deployments, the most one "
            f"connection may; stop one first.")

    def lock_for(sid, deployment_id):
        """Return the lock of the client's joins of deployment_id, or None once it is leaving."""
        slot = hash(deployment_id) % CLIENT_LOCKS
        with lock:
            locks = client_locks.get(sid)
            if locks is None:
                return None
            client_lock = locks.get(slot)
            if client_lock is None:
                client_lock = locks[slot] = threading.Lock()
        return client_lock

    def join(sid, deployment_id, since, batch):
        with lock:
            if ((sid, deployment_id) in joined
                    and streams.get(sid, {}).get(deployment_id) == batch):
                return rejoin(sid, deployment_id, batch)
            others = set(streams.get(sid, ())) - {deployment_id}
        if len(others) >= limits.streams_per_client:
            return refuse(sid, too_many_streams(len(others)))
        # Joining again replaces the old subscription and keeps its place
        # among the server's streams; a new one needs a free place.
        if not leave(sid, deployment_id, release=False) and not clients.open_stream():
            return refuse(sid, RequestError(
                "too_many_streams",
                "This server has as many streams open as it may; try again later."))
        reply = {}
        attached = threading.Event()

        def on_attach(history, first_line, next_line):
            # Runs on the follower's thread between two reads: history up to
            # next_line - 1, then the room, so no line is missed or repeated.
            status = {"type": "streaming_started", "deployment_id": deployment_id,
                      "first_line": first_line, "next_line": next_line,
                      "batch": batch}
            socketio.emit("status", status, to=sid)
            sent = 0
            piece_bytes = min(PIECE_BYTES, limits.max_backlog_bytes // 4)
            # What all clients' queues may still take, summed once a join.
            room_left = limits.max_total_backlog_bytes - internals.all_queued_bytes(socketio)
            for lines in (piece for read in history for piece in byte_pieces(read, piece_bytes)):
                # Counted against what is already queued for this client,
                # so repeated requests for history don't stack up.
                if outlet.backlog(sid) >= limits.max_backlog_bytes or room_left <= 0:
                    # Too much history to queue at once: send the rest when
                    # the client asks again, so memory stays bounded.
                    socketio.emit("status", lagging_status(
                        deployment_id, first_line + sent - 1,
                        next_line - first_line - sent), to=sid)
                    # Not joined to the room; the subscription stays counted
                    # until the client asks again (or leaves), so no other
                    # thread has to undo it.
                    reply.update(status)
                    attached.set()
                    return
                sent += len(lines)
                room_left -= sum(len(text) for _, text in lines)
                if batch:
                    socketio.emit("log_batch", batch_json(deployment_id, lines, True),
                                  to=sid)
                else:
                    for number, text in lines:
                        socketio.emit("new_log",
                                      line_json(deployment_id, number, text, True),
                                      to=sid)
            try:
                socketio.server.enter_room(
                    sid, batch_room(deployment_id) if batch else line_room(deployment_id),
                    namespace="/")
            except ValueError:
                # The client is disconnecting (its leave() is on its way); an
                # exception here would end the follower for every subscriber.
                pass
            else:
                with lock:
                    joined.add((sid, deployment_id))
            reply.update(status)
            attached.set()

        with lock:
            if sid not in streams:
                clients.close_stream()
                return None  # disconnected meanwhile
            # Checked again where it is taken: another join of this client
            # (another deployment) may have got in since.
            streaming = len(streams[sid])
            if streaming < limits.streams_per_client:
                streams[sid][deployment_id] = batch
                (outlet.batch_members if batch else outlet.line_members)[deployment_id] += 1
        if streaming >= limits.streams_per_client:
            clients.close_stream()
            return refuse(sid, too_many_streams(streaming))
        waiting[sid, deployment_id] = (attached, reply)
        try:
            hub.subscribe(deployment_id, sid, on_attach, since=since, tail=HISTORY_TAIL)
        except UnknownDeployment:
            waiting.pop((sid, deployment_id), None)
            with lock:
                streams[sid].pop(deployment_id, None)
                (outlet.batch_members if batch else outlet.line_members)[deployment_id] -= 1
            clients.close_stream()
            return refuse(sid, RequestError(
                "unknown_deployment", f"There is no deployment called {deployment_id!r}."))
        except BaseException:
            waiting.pop((sid, deployment_id), None)
            raise
        attached.wait(ATTACH_TIMEOUT)
        waiting.pop((sid, deployment_id), None)
        if "error" in reply:
            # Its source failed before it joined (source_failed told it).
            with lock:
                dropped = streams.get(sid, {}).pop(deployment_id, None) is not None
                if dropped:
                    (outlet.batch_members if batch else outlet.line_members)[deployment_id] -= 1
            if dropped:
                clients.close_stream()
            hub.unsubscribe(deployment_id, sid)
        return reply or None

    def rejoin(sid, deployment_id, batch):
        """Answer a join for a deployment the client already streams like a resume: no resend."""
        reply = {}
        attached = threading.Event()

        def on_attach(history, first_line, next_line):
            # Between two reads: every line before next_line is already on
            # its way to the client, so nothing is sent again.
            reply.update({"type": "streaming_started", "deployment_id": deployment_id,
                          "first_line": next_line, "next_line": next_line, "batch": batch})
            socketio.emit("status", reply, to=sid)
            attached.set()

        waiting[sid, deployment_id] = (attached, reply)
        try:
            hub.subscribe(deployment_id, sid, on_attach, since=None, tail=0)
        except UnknownDeployment:
            waiting.pop((sid, deployment_id), None)
            leave(sid, deployment_id)  # deleted meanwhile
            return refuse(sid, RequestError(
                "unknown_deployment", f"There is no deployment called {deployment_id!r}."))
        attached.wait(ATTACH_TIMEOUT)
        waiting.pop((sid, deployment_id), None)
        return reply or None

    @event("stop_streaming")
    def stop_streaming(sid, *args):
        try:
            deployment_id = stop_streaming_request(one_argument(args, "stop_streaming"))
        except RequestError as error:
            return refuse(sid, error)
        with lock_for(sid, deployment_id) or contextlib.nullcontext():
            leave(sid, deployment_id)
        status = {"type": "streaming_stopped", "deployment_id": deployment_id}
        socketio.emit("status", status, to=sid)
        return status

    @event("ping")
    def ping(sid, *args):
        try:
            payload = one_argument(args, "ping")
        except RequestError as error:
            return refuse(sid, error)
        refused = limited(sid, "ping", "ping")
        if refused:
            return refused
        pong = {"server_time": time.time(), "echo": payload}
        socketio.emit("pong", pong, to=sid)
        return pong

    @sio.on("*")
    def unknown_event(name, sid, *args):
        return refuse(sid, RequestError(
            "unknown_event",
            f"There is no event called {name!r}; use start_streaming, "
            "stop_streaming or ping."))

    return outlet
