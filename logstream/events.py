"""Socket.IO events: join a deployment's room, receive its lines, ping the server."""

import json
import logging
import threading
import time
from collections import Counter

from flask import request
from flask_socketio import emit

from .deployments import UnknownDeployment
from .transport import RawJSON
from .validation import (RequestError, start_streaming_request,
                         stop_streaming_request)

log = logging.getLogger(__name__)

HISTORY_TAIL = 50
ATTACH_TIMEOUT = 10.0
# What json.dumps uses for strings by default, so the text below is byte for
# byte what json.dumps(..., separators=(",", ":")) would give.
_quote = json.encoder.encode_basestring_ascii


def line_room(deployment_id):
    """Return the room whose members get one new_log event per line."""
    return deployment_id


def batch_room(deployment_id):
    """Return the room whose members get one log_batch event per read."""
    # '#' can't occur in an id, so this never collides with a line room.
    return deployment_id + "#batch"


def line_event(deployment_id, number, text, historical=False):
    """Return the payload of a new_log event."""
    payload = {"deployment_id": deployment_id, "line": number, "message": text}
    if historical:
        payload["is_historical"] = True
    return payload


def batch_event(deployment_id, lines, historical=False):
    """Return the payload of a log_batch event."""
    payload = {"deployment_id": deployment_id,
               "lines": [{"line": n, "message": text} for n, text in lines]}
    if historical:
        payload["is_historical"] = True
    return payload


def line_json(deployment_id, number, text, historical=False):
    """Return the new_log payload already encoded, as line_event would encode."""
    tail = ',"is_historical":true' if historical else ""
    return RawJSON(f'{{"deployment_id":{_quote(deployment_id)},"line":{number},'
                   f'"message":{_quote(text)}{tail}}}')


def batch_json(deployment_id, lines, historical=False):
    """Return the log_batch payload already encoded, as batch_event would encode.

    Encoding the lines here, once per read, is several times faster than
    letting Socket.IO walk and encode a list of dicts.
    """
    items = ",".join([f'{{"line":{n},"message":{_quote(text)}}}' for n, text in lines])
    tail = ',"is_historical":true' if historical else ""
    return RawJSON(f'{{"deployment_id":{_quote(deployment_id)},"lines":[{items}]{tail}}}')


class SocketOutlet:
    """Emit a follower's lines into its deployment's rooms, encoded once per room."""

    def __init__(self, socketio):
        self.socketio = socketio
        # How many clients want each kind of event, so no packet is encoded
        # for an empty room.
        self.line_members = Counter()
        self.batch_members = Counter()

    def publish(self, deployment_id, lines):
        if self.batch_members[deployment_id]:
            self.socketio.emit("log_batch", batch_json(deployment_id, lines),
                               to=batch_room(deployment_id))
        if self.line_members[deployment_id]:
            room = line_room(deployment_id)
            for number, text in lines:
                self.socketio.emit("new_log", line_json(deployment_id, number, text),
                                   to=room)

    def status(self, deployment_id, payload):
        payload = dict(payload, deployment_id=deployment_id)
        for room in (line_room(deployment_id), batch_room(deployment_id)):
            self.socketio.emit("status", payload, to=room)


def register_events(socketio, hub):
    """Attach the logstream protocol's event handlers to socketio."""
    outlet = SocketOutlet(socketio)
    hub.outlets.append(outlet)
    lock = threading.Lock()
    streams = {}  # sid -> {deployment_id: batch?}

    def refuse(error):
        payload = error.payload()
        emit("stream_error", payload)
        return payload

    def one_argument(args, event):
        if len(args) > 1:
            raise RequestError(
                "invalid_payload", f"{event} takes one argument, not {len(args)}.")
        return args[0] if args else None

    def leave(sid, deployment_id):
        with lock:
            batch = streams.get(sid, {}).pop(deployment_id, None)
            if batch is None:
                return False
            (outlet.batch_members if batch else outlet.line_members)[deployment_id] -= 1
        hub.unsubscribe(deployment_id, sid)
        socketio.server.leave_room(
            sid, batch_room(deployment_id) if batch else line_room(deployment_id),
            namespace="/")
        return True

    @socketio.on("connect")
    def connect(auth=None):
        with lock:
            streams[request.sid] = {}

    @socketio.on("disconnect")
    def disconnect(reason=None):
        sid = request.sid
        with lock:
            deployment_ids = list(streams.get(sid, ()))
        for deployment_id in deployment_ids:
            leave(sid, deployment_id)
        with lock:
            streams.pop(sid, None)

    @socketio.on("start_streaming")
    def start_streaming(*args):
        try:
            deployment_id, since, batch = start_streaming_request(
                one_argument(args, "start_streaming"))
        except RequestError as error:
            return refuse(error)
        sid = request.sid
        leave(sid, deployment_id)  # joining again replaces the old subscription
        reply = {}
        attached = threading.Event()

        def on_attach(history, first_line, next_line):
            # Runs on the follower's thread between two reads: history up to
            # next_line - 1, then the room, so no line is missed or repeated.
            status = {"type": "streaming_started", "deployment_id": deployment_id,
                      "first_line": first_line, "next_line": next_line,
                      "batch": batch}
            socketio.emit("status", status, to=sid)
            for lines in history:
                if batch:
                    socketio.emit("log_batch", batch_json(deployment_id, lines, True),
                                  to=sid)
                else:
                    for number, text in lines:
                        socketio.emit("new_log",
                                      line_json(deployment_id, number, text, True),
                                      to=sid)
            socketio.server.enter_room(
                sid, batch_room(deployment_id) if batch else line_room(deployment_id),
                namespace="/")
            reply.update(status)
            attached.set()

        with lock:
            if sid not in streams:
                return None  # disconnected meanwhile
            streams[sid][deployment_id] = batch
            (outlet.batch_members if batch else outlet.line_members)[deployment_id] += 1
        try:
            hub.subscribe(deployment_id, sid, on_attach, since=since, tail=HISTORY_TAIL)
        except UnknownDeployment:
            with lock:
                streams[sid].pop(deployment_id, None)
                (outlet.batch_members if batch else outlet.line_members)[deployment_id] -= 1
            return refuse(RequestError(
                "unknown_deployment", f"There is no deployment called {deployment_id!r}."))
        attached.wait(ATTACH_TIMEOUT)
        return reply or None

    @socketio.on("stop_streaming")
    def stop_streaming(*args):
        try:
            deployment_id = stop_streaming_request(one_argument(args, "stop_streaming"))
        except RequestError as error:
            return refuse(error)
        leave(request.sid, deployment_id)
        status = {"type": "streaming_stopped", "deployment_id": deployment_id}
        emit("status", status)
        return status

    @socketio.on("ping")
    def ping(*args):
        try:
            payload = one_argument(args, "ping")
        except RequestError as error:
            return refuse(error)
        pong = {"server_time": time.time(), "echo": payload}
        emit("pong", pong)
        return pong

    @socketio.on("*")
    def unknown_event(event, *args):
        return refuse(RequestError(
            "unknown_event",
            f"There is no event called {event!r}; use start_streaming, "
            "stop_streaming or ping."))

    @socketio.on_error_default
    def internal_error(exc):
        log.error("error handling a Socket.IO event", exc_info=exc)
        return refuse(RequestError(
            "internal_error", "The server failed to handle that request; it was logged."))

    return outlet
