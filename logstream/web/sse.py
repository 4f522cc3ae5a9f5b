"""Server-Sent Events: the one-way counterpart of the Socket.IO stream."""

import json
import logging
import queue
import select
import socket
import threading
import time

from flask import Blueprint, Response, current_app, request

from logstream.core.deployments import UnknownDeployment
from logstream.web.limits import PIECE_BYTES, byte_pieces
from logstream.web.validation import RequestError, deployment_id_from, since_from

log = logging.getLogger(__name__)

bp = Blueprint("sse", __name__)

RETRY_MS = 2000
HEARTBEAT_SECONDS = 15.0
SEND_TIMEOUT_SECONDS = 60.0
# How often an idle stream checks whether its client has gone away.
DEPARTURE_CHECK_SECONDS = 0.5
HISTORY_TAIL = 50
_CLOSE = object()


def line_frame(number, text):
    """Return one SSE event for a log line: its number is the event id."""
    return f"id: {number}\ndata: {json.dumps({'line': number, 'message': text})}\n\n"


def status_frame(payload, retry_ms=None):
    """Return one `status` event whose id is the line a reconnect should resume after.

    streaming_started resumes before its first line; truncated, rotated and
    deleted resume in the file's new numbering, so a client that reconnects
    after one of them doesn't skip the new file's first lines.
    """
    if "first_line" in payload:
        fields = f"id: {payload['first_line'] - 1}\n"
    elif "next_line" in payload:
        fields = f"id: {payload['next_line'] - 1}\n"
    else:
        fields = ""
    if retry_ms is not None:
        fields = f"retry: {retry_ms}\n" + fields
    return f"{fields}event: status\ndata: {json.dumps(payload)}\n\n"


class Backlog:
    """One SSE response's queue of frames, bounded by the bytes waiting in it."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._bytes = 0

    def put(self, frame, lines=0):
        """Queue a frame holding `lines` lines; return False, queuing nothing, when full.

        Frames without lines (statuses) are always queued, and counted.
        """
        size = len(frame) if isinstance(frame, str) else 0  # ASCII: json escapes the rest
        with self._lock:
            # An empty queue takes any frame, so a huge read still goes through.
            if lines and self._bytes and self._bytes + size > self.max_bytes:
                return False
            self._bytes += size
        self._queue.put((frame, size))
        return True

    def get(self, timeout):
        """Return the next frame, or raise queue.Empty after timeout seconds."""
        frame, size = self._queue.get(timeout=timeout)
        with self._lock:
            self._bytes -= size
        return frame

    def lag(self, deployment_id, last_line, skipped):
        """End this stream with a lagging status whose id makes EventSource resume after last_line."""
        payload = {"type": "lagging", "deployment_id": deployment_id, "last_line": last_line,
                   "skipped": skipped,
                   "message": f"Too many lines were waiting for you, so this stream ends after "
                              f"line {last_line}; reconnect with Last-Event-ID: {last_line}."}
        self._queue.put((f"id: {last_line}\nevent: status\ndata: {json.dumps(payload)}\n\n", 0))
        self._queue.put((_CLOSE, 0))


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
            if not q.put(frames, len(lines)):
                # A slow reader: stop feeding it; EventSource comes back with
                # Last-Event-ID and catches up from disk.
                log.warning("an SSE reader of %s is lagging: over %d bytes wait to be sent "
                            "to it (Limits.max_backlog_bytes)", deployment_id, q.max_bytes)
                self.remove(deployment_id, q)
                q.lag(deployment_id, lines[0][0] - 1, len(lines))

    def status(self, deployment_id, payload):
        queues = self._queues_of(deployment_id)
        if not queues:
            return
        frame = status_frame(dict(payload, deployment_id=deployment_id))
        for q in queues:
            q.put(frame)

    def failed(self, deployment_id, keys, payload):
        """End the streams of a failed source with a status event; EventSource comes back to a fresh one."""
        frame = status_frame(dict(payload, type="stream_error", deployment_id=deployment_id))
        for q in keys:
            if isinstance(q, Backlog):
                self.remove(deployment_id, q)
                q.put(frame)
                q.put(_CLOSE)

    def close_all(self):
        with self._lock:
            queues = [q for qs in self._queues.values() for q in qs]
        for q in queues:
            q.put(_CLOSE)  # an uncounted frame: always accepted


def _client_gone(sock):
    """Return True when the peer closed the connection (readable with nothing to read)."""
    if sock is None:
        return False  # not Werkzeug: the next heartbeat's failed write will tell
    # poll, not select: select fails outright on descriptors above 1023.
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
    except (OSError, ValueError):
        return True  # the socket is already closed
    events = poller.poll(0)
    if not events:
        return False
    if events[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False
    except ValueError:
        return False  # a TLS socket can't peek; the next heartbeat will tell
    except OSError:
        return True  # reset by the peer


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
    outlet = current_app.extensions["logstream.web.sse"]
    heartbeat = current_app.config.get("SSE_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)
    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        # A reader that takes nothing for this long is let go: otherwise a
        # client that never reads holds this thread, blocked in a write, forever.
        sock.settimeout(current_app.config.get("SSE_SEND_TIMEOUT", SEND_TIMEOUT_SECONDS))
    q = Backlog(state.limits.max_backlog_bytes)
    key = q  # the hub hands a failed source's keys back: this queue is told
    if not state.clients.admit(key):
        return {"error": "server_full",
                "message": "This logstream server is full; try again later."}, 503
    if not state.clients.open_stream():
        state.clients.disconnected(key)
        return {"error": "too_many_streams",
                "message": "This server has as many streams open as it may; "
                           "try again later."}, 503

    def on_attach(history, first_line, next_line):
        # On the follower thread: history, then live lines join the same queue.
        q.put(status_frame({"type": "streaming_started", "deployment_id": deployment_id,
                            "first_line": first_line, "next_line": next_line},
                           retry_ms=RETRY_MS))
        sent = first_line - 1
        piece_bytes = min(PIECE_BYTES, q.max_bytes // 4)
        for lines in (piece for read in history for piece in byte_pieces(read, piece_bytes)):
            if not q.put("".join(line_frame(n, text) for n, text in lines), len(lines)):
                # More history than one stream may queue: send the rest after
                # EventSource reconnects, so memory stays bounded.
                q.lag(deployment_id, sent, next_line - 1 - sent)
                return
            sent = lines[-1][0]
        outlet.add(deployment_id, q)

    try:
        state.hub.subscribe(deployment_id, key, on_attach, since=since, tail=HISTORY_TAIL)
    except BaseException as exc:
        # Not streaming after all: give back its places.
        state.clients.close_stream()
        state.clients.disconnected(key)
        if isinstance(exc, UnknownDeployment):
            return {"error": "unknown_deployment",
                    "message": f"There is no deployment called {deployment_id!r}."}, 404
        raise

    def stream():
        # The retry hint travels with the first frame, streaming_started.
        next_heartbeat = time.monotonic() + heartbeat
        while True:
            wait = min(DEPARTURE_CHECK_SECONDS, max(0.0, next_heartbeat - time.monotonic()))
            try:
                item = q.get(timeout=wait)
            except queue.Empty:
                if _client_gone(sock):
                    return
                if time.monotonic() >= next_heartbeat:
                    next_heartbeat = time.monotonic() + heartbeat
                    yield ": heartbeat\n\n"
                continue
            if item is _CLOSE:
                return
            next_heartbeat = time.monotonic() + heartbeat
            yield item

    def release():
        # The WSGI server calls this however the response ends, even when
        # the client left before the first byte was sent.
        state.hub.unsubscribe(deployment_id, key)
        outlet.remove(deployment_id, q)
        state.clients.close_stream()
        state.clients.disconnected(key)

    response = Response(stream(), mimetype="text/event-stream", headers={
        "Cache-Control": "no-cache",
        # Tell nginx and friends not to buffer the stream.
        "X-Accel-Buffering": "no",
    })
    response.call_on_close(release)
    return response
