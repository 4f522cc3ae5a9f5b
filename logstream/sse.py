"""Server-Sent Events: the one-way counterpart of the Socket.IO stream."""

import json
import queue
import select
import socket
import threading

from flask import Blueprint, Response, current_app, request

from .deployments import UnknownDeployment
from .validation import RequestError, deployment_id_from, since_from

bp = Blueprint("sse", __name__)

RETRY_MS = 2000
HEARTBEAT_SECONDS = 15.0
# How often an idle stream checks whether its client has gone away.
DEPARTURE_CHECK_SECONDS = 0.5
HISTORY_TAIL = 50
_CLOSE = object()


def line_frame(number, text):
    """Return one SSE event for a log line: its number is the event id."""
    return f"id: {number}\ndata: {json.dumps({'line': number, 'message': text})}\n\n"


def named_frame(event, payload):
    """Return one SSE event of the given type with a JSON payload."""
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n"


class SSEOutlet:
    """Copy a follower's lines into the queue of every SSE response for that deployment."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queues = {}

    def add(self, deployment_id, q):
        with self._lock:
            self._queues.setdefault(deployment_id, set()).add(q)

    def remove(self, deployment_id, q):
        with self._lock:
            queues = self._queues.get(deployment_id)
            if queues is not None:
                queues.discard(q)
                if not queues:
                    del self._queues[deployment_id]

    def _queues_of(self, deployment_id):
        with self._lock:
            return list(self._queues.get(deployment_id, ()))

    def publish(self, deployment_id, lines):
        queues = self._queues_of(deployment_id)
        if not queues:
            return  # encoding costs more than all the rest of a read
        # One string per read: a batch of lines is one write to the socket.
        frames = "".join(line_frame(n, text) for n, text in lines)
        for q in queues:
            q.put(frames)

    def status(self, deployment_id, payload):
        queues = self._queues_of(deployment_id)
        if not queues:
            return
        frame = named_frame("status", dict(payload, deployment_id=deployment_id))
        for q in queues:
            q.put(frame)

    def close_all(self):
        with self._lock:
            queues = [q for qs in self._queues.values() for q in qs]
        for q in queues:
            q.put(_CLOSE)


def _client_gone(sock):
    """Return True when the peer closed the connection (readable with nothing to read)."""
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (OSError, ValueError):
        return True


def _requested_since():
    """Return the line to resume after: Last-Event-ID wins over ?since=."""
    header = request.headers.get("Last-Event-ID")
    if header is not None and header.strip():
        raw, name = header.strip(), "Last-Event-ID"
    else:
        raw, name = request.args.get("since"), "since"
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = raw
    return since_from(value, name)


@bp.errorhandler(RequestError)
def request_error(error):
    return error.payload(), 400


@bp.get("/deployments/<deployment_id>/events")
def events(deployment_id):
    deployment_id_from(deployment_id)
    since = _requested_since()
    state = current_app.extensions["logstream"]
    outlet = current_app.extensions["logstream.sse"]
    heartbeat = current_app.config.get("SSE_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)
    sock = request.environ.get("werkzeug.socket")
    q = queue.SimpleQueue()
    key = object()

    def on_attach(history, first_line, next_line):
        # On the follower thread: history, then live lines join the same queue.
        q.put(named_frame("status", {"type": "streaming_started", "deployment_id": deployment_id,
                                     "first_line": first_line, "next_line": next_line}))
        for lines in history:
            q.put("".join(line_frame(n, text) for n, text in lines))
        outlet.add(deployment_id, q)

    try:
        state.hub.subscribe(deployment_id, key, on_attach, since=since, tail=HISTORY_TAIL)
    except UnknownDeployment:
        return {"error": "unknown_deployment",
                "message": f"There is no deployment called {deployment_id!r}."}, 404

    def stream():
        yield f"retry: {RETRY_MS}\n\n"
        idle = 0.0
        while True:
            try:
                item = q.get(timeout=DEPARTURE_CHECK_SECONDS)
            except queue.Empty:
                idle += DEPARTURE_CHECK_SECONDS
                if _client_gone(sock):
                    return
                if idle >= heartbeat:
                    idle = 0.0
                    yield ": heartbeat\n\n"
                continue
            if item is _CLOSE:
                return
            idle = 0.0
            yield item

    def release():
        # The WSGI server calls this however the response ends, even when
        # the client left before the first byte was sent.
        state.hub.unsubscribe(deployment_id, key)
        outlet.remove(deployment_id, q)

    response = Response(stream(), mimetype="text/event-stream", headers={
        "Cache-Control": "no-cache",
        # Tell nginx and friends not to buffer the stream.
        "X-Accel-Buffering": "no",
    })
    response.call_on_close(release)
    return response
