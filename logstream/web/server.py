"""Run the app on a real HTTP server, in the foreground or in a background thread."""

import collections
import gc
import html
import logging
import re
import socket
import threading
from urllib.parse import quote, urlencode

from werkzeug.serving import WSGIRequestHandler, make_server

from logstream.support.green import thread_class
from logstream.web.app import create_app
from logstream.web.internals import close_sessions
from logstream.web.hosts import names_for_bind

# Loggers whose output must stay out of notebook cells in quiet mode.
SERVER_LOGGERS = ("werkzeug", "logstream", "engineio.server", "socketio.server")
# Seconds a new connection may take to send its request line and headers;
# a connection that sends nothing would otherwise hold a thread forever.
HEADER_TIMEOUT = 10.0
# Query parameters whose values are secrets: the token, and Engine.IO's
# session id, which lets whoever knows it speak for the session.
_SECRET_PARAMS = re.compile(r"([?&](?:token|sid)=)[^&\s\"]*")

log = logging.getLogger(__name__)
# The cyclic garbage collector's thresholds while `logstream serve` runs
# (Python's default: 700, 10, 10), see settle_heap().
GC_THRESHOLDS = (20_000, 20, 10)


def redact(text):
    """Return text with the values of secret query parameters replaced by '…'."""
    return _SECRET_PARAMS.sub(r"\1…", text)


def raise_fd_limit():
    """Raise this process's soft limit on open files to its hard limit; return the new limit."""
    try:
        import resource
    except ImportError:
        return None  # Windows: no such limit to raise
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard or soft == resource.RLIM_INFINITY:
        return soft
    # Each connection is a descriptor; the common soft limit of 1,024 is
    # reached long before the connection cap.
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


class MemoryLog(logging.Handler):
    """Keep the server's most recent log lines in memory instead of printing them."""

    def __init__(self, capacity=1000):
        super().__init__()
        self.records = collections.deque(maxlen=capacity)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record):
        self.records.append(self.format(record))


class RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, sending small frames at once and closing finished WebSockets."""

    header_timeout = HEADER_TIMEOUT

    def handle_one_request(self):
        # The timeout covers waiting for the request line and headers only:
        # streams and WebSockets may stay quiet much longer.
        # A timeout ends the connection with a "Request timed out" log line.
        self.connection.settimeout(self.header_timeout)
        super().handle_one_request()

    def parse_request(self):
        ok = super().parse_request()
        # Back to blocking: simple-websocket reads this socket and would
        # take a timeout for a broken connection.
        self.connection.settimeout(None)
        return ok

    def log(self, type, message, *args):
        # Request lines carry query strings, and so any ?token= or guess.
        super().log(type, "%s", redact(message % args))

    def setup(self):
        super().setup()
        # Without TCP_NODELAY a frame written right after another (an event
        # then its ack, SSE headers then the first event) waits for the
        # client's delayed ACK: about 40 ms per round trip on Linux.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # not TCP (a Unix socket): there is no Nagle to turn off
        connections = getattr(self.server, "open_connections", None)
        if connections is not None:
            connections.add(self.connection)

    def finish(self):
        connections = getattr(self.server, "open_connections", None)
        if connections is not None:
            connections.discard(self.connection)
        super().finish()

    def run_wsgi(self):
        super().run_wsgi()
        if self.headers.get("Upgrade", "").lower() == "websocket":
            # Otherwise Werkzeug reads the finished WebSocket's last frames
            # as a new HTTP request and logs a "Bad request syntax" error.
            self.close_connection = True


class QuietRequestHandler(RequestHandler):
    """A request handler that logs through `logging` only, never to stderr."""

    def log(self, type, message, *args):
        logging.getLogger("werkzeug").log(
            logging.ERROR if type == "error" else logging.INFO,
            "%s - %s", self.address_string(), redact(message % args))


class ServerHandle:
    """A running logstream server: its url, app and log; stop() ends it."""

    def __init__(self, app, httpd, thread, memory_log=None):
        self.app = app
        self.socketio = app.extensions["socketio"]
        self.httpd = httpd
        self.host, self.port = httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}"
        self.data_dir = app.extensions["logstream"].data_dir
        self._thread = thread
        self._memory_log = memory_log
        self._stopped = False

    @property
    def viewer_url(self):
        """Return the viewer's address as the notebook's browser reaches it, through Jupyter's proxy if any."""
        return self.page_url()

    def page_url(self, deployment_id=None):
        """Return the address of the deployment list, or of one deployment's live page, for this browser."""
        from logstream.web.jupyter_proxy import viewer_url

        url = viewer_url(self.port, self.url)
        if deployment_id is not None:
            url += f"deployments/{quote(deployment_id)}"
        token = self.app.config.get("LOGSTREAM_TOKEN")
        return f"{url}?{urlencode({'token': token})}" if token else url

    def iframe(self, deployment_id=None, width="100%", height=520):
        """Return the viewer (a deployment's page, or the list) embedded in the notebook."""
        from IPython.display import IFrame

        return IFrame(self.page_url(deployment_id), width=width, height=height)

    def _repr_html_(self):
        state = "stopped" if self._stopped else "running"
        url = html.escape(self.viewer_url, quote=True)
        return (f'<p>logstream server on port {self.port} ({state}): '
                f'<a href="{url}" target="_blank" rel="noopener">open the viewer</a> '
                f'<code>{url}</code></p>')

    def logs(self):
        """Return the server's recent log lines (quiet mode keeps them here)."""
        return list(self._memory_log.records) if self._memory_log else []

    def new_deployment(self):
        """Start a simulated deployment and return its id."""
        return self.app.extensions["logstream"].simulator.start()

    def stop(self):
        """Stop serving, close every connection and free the port."""
        if self._stopped:
            return
        self._stopped = True
        shutdown_app(self.app)
        self.httpd.shutdown()
        self.httpd.server_close()
        close_connections(self.httpd)
        if self._thread is not None:
            self._thread.join(5)
        if self._memory_log is not None:
            for name in SERVER_LOGGERS:
                logging.getLogger(name).removeHandler(self._memory_log)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        state = "stopped" if self._stopped else "running"
        return f"<logstream server {self.url} ({state})>"


def shutdown_app(app):
    """Stop the app's writers and followers and disconnect its clients."""
    state = app.extensions["logstream"]
    state.simulator.stop()
    state.hub.stop()
    for hook in state.shutdown_hooks:
        hook()
    socketio = app.extensions["socketio"]
    close_sessions(socketio.server.eio)
    socketio.server.shutdown()


def track_connections(httpd):
    """Keep the set of httpd's open client connections, so stop() can end them."""
    httpd.open_connections = set()
    return httpd


def close_connections(httpd):
    """End every connection still open (WebSockets, SSE, polls) at the TCP level.

    The close packets sent before may never be read; a shut-down socket is
    noticed by every client at once, instead of after its heartbeat times
    out (45 s with Engine.IO's defaults).
    """
    for connection in list(getattr(httpd, "open_connections", ())):
        try:
            connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by its handler


def _quiet_logging():
    """Send the server loggers to memory; call it before creating the app."""
    memory_log = MemoryLog()
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(memory_log)
        if logger.level == logging.NOTSET:
            # Engine.IO and Socket.IO add a stderr handler to a logger whose
            # level is unset, and log every packet at INFO: errors only.
            logger.setLevel(logging.ERROR if name.endswith(".server") else logging.INFO)
        # Without this, records reach Python's last-resort handler, which
        # prints to stderr and so into whatever notebook cell is running.
        logger.propagate = False
    return memory_log


def make_httpd(app, host, port, handler=RequestHandler, header_timeout=HEADER_TIMEOUT):
    """Return a threaded HTTP server for app on host:port, answering to host's name too."""
    limit = raise_fd_limit()
    if limit is not None:
        log.info("open files allowed: %d", limit)
    handler = type(handler.__name__, (handler,), {"header_timeout": header_timeout})
    httpd = track_connections(make_server(host, port, app, threaded=True,
                                          request_handler=handler))
    serve_connections_on_tasks(httpd)
    hosts = app.extensions.get("logstream.web.hosts")
    if hosts is not None:
        hosts.allow(*names_for_bind(host))
    return httpd


def serve_connections_on_tasks(httpd):
    """On green threads, serve each connection on a bare greenlet rather than a patched thread.

    Werkzeug's threaded server starts a ``threading.Thread`` per connection;
    on green threads that is a greenlet wrapped in a thread's bookkeeping,
    three times the cost of the greenlet alone (support.green.thread_class),
    paid by every viewer's join. The server's threads are daemons, which it
    never waits for, so nothing else changes. On OS threads it is left as is.
    """
    task = thread_class()
    if task is threading.Thread:
        return

    def process_request(request, client_address):
        task(target=httpd.process_request_thread, args=(request, client_address),
             name="logstream:request").start()

    httpd.process_request = process_request


def start_server(data_dir=None, host="127.0.0.1", port=0, quiet=True,
                 header_timeout=HEADER_TIMEOUT, **app_options):
    """Start a logstream server in a background thread and return its handle.

    ``port=0`` picks a free port; the handle's ``url`` tells which. With
    ``quiet`` the server prints nothing (its log is kept in ``handle.logs()``),
    so it can run inside a Jupyter kernel without filling cells.
    ``header_timeout`` is how long a connection may take to send its
    request's headers before it is closed.
    """
    memory_log = _quiet_logging() if quiet else None
    app = create_app(data_dir, **app_options)
    if memory_log is not None:
        app.logger.handlers[:] = [memory_log]
        app.logger.propagate = False
    httpd = make_httpd(app, host, port, QuietRequestHandler if quiet else RequestHandler,
                       header_timeout)
    thread = threading.Thread(target=httpd.serve_forever, name=f"logstream:{httpd.port}",
                              daemon=True)
    thread.start()
    return ServerHandle(app, httpd, thread, memory_log)


def settle_heap():
    """Keep what the server built at start out of garbage collections, and run them less often.

    Every full collection walks every tracked object, and one runs each
    time the heap grows by a quarter: while viewers join, it walked the
    modules, Flask and the app again and again. Frozen after one collection
    at start, they are not walked any more; objects made later are
    collected as before. Young collections every 20,000 allocations
    instead of 700 find the same garbage with less overhead. For a process
    that only serves (`logstream serve`): a notebook kernel's collector is
    the user's.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve_forever(data_dir=None, host="127.0.0.1", port=5000, app_factory=create_app,
                  header_timeout=HEADER_TIMEOUT, **app_options):
    """Serve in the foreground until interrupted (the `logstream serve` command)."""
    app = app_factory(data_dir, **app_options)
    httpd = make_httpd(app, host, port, RequestHandler, header_timeout)
    handle = ServerHandle(app, httpd, None)
    settle_heap()
    try:
        httpd.serve_forever()
    finally:
        handle.stop()
