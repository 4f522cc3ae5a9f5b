"""Whole-file routes: search a log, read a stretch of it, download it, watch the list."""

import io
import json
import os
import stat
import threading
import time

from flask import Blueprint, Response, abort, current_app, jsonify, make_response, request, send_file

from logstream.core.deployments import InvalidDeploymentId, UnknownDeployment
from logstream.core.fileio import open_no_follow
from logstream.core.lineindex import INDEXES
from logstream.core.search import (SEARCH_SECONDS, SearchError, compile_query,
                                   read_lines, search)
from logstream.web.sse import DEPARTURE_CHECK_SECONDS, _client_gone
from logstream.web.validation import RequestError, deployment_id_from

bp = Blueprint("files", __name__)

# Searches running at once, server-wide: each may keep a core busy for its
# whole time budget, so more wait their turn with a 429.
MAX_SEARCHES = 2
MAX_DOWNLOADS = 8
MAX_LIST_STREAMS = 100
MAX_RESULTS = 1000
DEFAULT_RESULTS = 100
# The deployment list is computed at most this often, however many pages watch it.
LIST_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0


class FilesState:
    """What the whole-file routes share: the line index, the slots of each cap, the listing."""

    def __init__(self, config):
        self.index = INDEXES
        self.searches = threading.BoundedSemaphore(
            config.get("LOGSTREAM_MAX_SEARCHES", MAX_SEARCHES))
        self.downloads = threading.BoundedSemaphore(
            config.get("LOGSTREAM_MAX_DOWNLOADS", MAX_DOWNLOADS))
        self.list_streams = threading.BoundedSemaphore(
            config.get("LOGSTREAM_MAX_LIST_STREAMS", MAX_LIST_STREAMS))
        self.closing = threading.Event()
        self._lock = threading.Lock()
        self._listing = (float("-inf"), "[]")

    def listing(self, state):
        """Return the deployment list as JSON text, computed at most once per LIST_SECONDS."""
        with self._lock:
            at, text = self._listing
            if time.monotonic() - at >= LIST_SECONDS:
                text = json.dumps(state.sources.describe(state.line_counts))
                self._listing = (time.monotonic(), text)
            return text


def files_state():
    return current_app.extensions["logstream.web.files"]


def init_app(app):
    """Register the whole-file routes and their shared state on app."""
    shared = app.extensions["logstream.web.files"] = FilesState(app.config)
    app.extensions["logstream"].shutdown_hooks.append(shared.closing.set)
    app.register_blueprint(bp)


def refuse(status, code, message):
    """Return an HTTP error whose JSON body is a sentence a person understands."""
    return make_response(jsonify(error=code, message=message), status)


@bp.errorhandler(RequestError)
def request_error(error):
    return refuse(400, error.code, error.message)


@bp.errorhandler(SearchError)
def search_error(error):
    return refuse(400, error.code, error.message)


def open_deployment(deployment_id):
    """Return (descriptor, path) of deployment_id's regular file, or abort with 400/404."""
    deployment_id_from(deployment_id)
    state = current_app.extensions["logstream"]
    try:
        path = os.fspath(state.sources.resolve(deployment_id))
        fd = open_no_follow(path)
    except (InvalidDeploymentId, UnknownDeployment, FileNotFoundError, OSError):
        # OSError too: a followed file replaced by a symlink (ELOOP) is not served.
        fd = None
    if fd is not None and not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)  # a FIFO or device put in a log's place is not read
        fd = None
    if fd is None:
        abort(refuse(404, "unknown_deployment",
                     f"There is no deployment called {deployment_id!r}."))
    return fd, path


def whole_number(name, default=None, least=0, most=None):
    """Return the query parameter name as an int within [least, most], or raise RequestError."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < least or (most is not None and value > most):
        bounds = f"from {least} to {most}" if most is not None else f"{least} or more"
        raise RequestError(f"invalid_{name}",
                           f"{name} must be a whole number {bounds}, not {raw!r}.")
    return value


def flag(name):
    """Return the query parameter name as a boolean (1/true or 0/false)."""
    raw = request.args.get(name, "0").lower()
    if raw not in ("0", "1", "true", "false"):
        raise RequestError(f"invalid_{name}", f"{name} must be 1 or 0, not {raw!r}.")
    return raw in ("1", "true")


@bp.get("/api/deployments/<deployment_id>/search")
def search_log(deployment_id):
    query = compile_query(request.args.get("q", ""), use_regex=flag("regex"))
    limit = whole_number("limit", DEFAULT_RESULTS, least=1, most=MAX_RESULTS)
    before = whole_number("before", None, least=1)
    shared = files_state()
    if not shared.searches.acquire(blocking=False):
        return refuse(429, "too_many_searches",
                      "Other searches are running; try again in a moment.")
    try:
        fd, path = open_deployment(deployment_id)
        try:
            return jsonify(search(
                fd, shared.index, path, query, limit=limit, before=before,
                max_line_bytes=current_app.config["LOGSTREAM_MAX_LINE_BYTES"],
                budget=current_app.config.get("LOGSTREAM_SEARCH_SECONDS", SEARCH_SECONDS)))
        finally:
            os.close(fd)
    finally:
        shared.searches.release()


@bp.get("/api/deployments/<deployment_id>/lines")
def lines(deployment_id):
    since = whole_number("since", 0, least=0)
    limit = whole_number("limit", DEFAULT_RESULTS, least=1, most=MAX_RESULTS)
    fd, path = open_deployment(deployment_id)
    try:
        found, total = read_lines(
            fd, files_state().index, path, since=since, limit=limit,
            max_line_bytes=current_app.config["LOGSTREAM_MAX_LINE_BYTES"])
    finally:
        os.close(fd)
    return jsonify(lines=[{"line": n, "message": text} for n, text in found], total=total)


class Snapshot(io.RawIOBase):
    """The first ``size`` bytes of an open file, so a log that grows mid-download
    never sends more than its Content-Length."""

    def __init__(self, fd, size):
        self._fd, self._size, self._pos = fd, size, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer):
        wanted = max(0, min(len(buffer), self._size - self._pos))
        data = os.pread(self._fd, wanted, self._pos) if wanted else b""
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self):
        if not self.closed:
            os.close(self._fd)
        super().close()


@bp.get("/deployments/<deployment_id>/raw")
def raw(deployment_id):
    shared = files_state()
    if not shared.downloads.acquire(blocking=False):
        return refuse(429, "too_many_downloads",
                      "Too many downloads are running; try again in a moment.")
    try:
        fd, _ = open_deployment(deployment_id)
    except BaseException:  # a 404 (abort) included: the slot is given back
        shared.downloads.release()
        raise
    info = os.fstat(fd)
    response = send_file(
        io.BufferedReader(Snapshot(fd, info.st_size)), mimetype="text/plain",
        as_attachment=True, download_name=f"{deployment_id}.log",
        last_modified=info.st_mtime, etag=f"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}",
        conditional=False)
    response.content_length = info.st_size
    response.mimetype_params["charset"] = "utf-8"
    # Range and If-None-Match are answered here, now that the length is known.
    response = response.make_conditional(request.environ, accept_ranges=True,
                                         complete_length=info.st_size)
    response.call_on_close(shared.downloads.release)
    return response


@bp.get("/api/deployments/events")
def deployment_events():
    shared = files_state()
    state = current_app.extensions["logstream"]
    key = object()
    # An open SSE response, so it counts toward the server's connection cap.
    if not state.clients.admit(key):
        return refuse(503, "server_full", "This logstream server is full; try again later.")
    if not shared.list_streams.acquire(blocking=False):
        state.clients.disconnected(key)
        return refuse(429, "too_many_streams",
                      "Too many pages are watching the deployment list; try again later.")
    sock = request.environ.get("werkzeug.socket")
    heartbeat = current_app.config.get("SSE_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS)

    def stream():
        sent = None
        next_heartbeat = time.monotonic() + heartbeat
        while True:
            text = shared.listing(state)
            if text != sent:
                sent = text
                next_heartbeat = time.monotonic() + heartbeat
                yield f"event: deployments\ndata: {text}\n\n"
            elif time.monotonic() >= next_heartbeat:
                next_heartbeat = time.monotonic() + heartbeat
                yield ": heartbeat\n\n"
            deadline = time.monotonic() + LIST_SECONDS
            while time.monotonic() < deadline:
                if _client_gone(sock) or shared.closing.wait(
                        min(DEPARTURE_CHECK_SECONDS, max(0.0, deadline - time.monotonic()))):
                    return

    response = Response(stream(), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    response.call_on_close(shared.list_streams.release)
    response.call_on_close(lambda: state.clients.disconnected(key))
    return response
