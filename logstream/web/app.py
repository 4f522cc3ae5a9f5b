"""The app factory: one Flask app, its Socket.IO server and the state they share."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask
from flask.sessions import SessionInterface
from flask_socketio import SocketIO

from logstream.core.deployments import LineCounts
from logstream.core.follower import DEFAULT_ROTATE_WAIT
from logstream.core.hub import StreamHub
from logstream.core.sources import DataDirSources
from logstream.web.limits import ClientLimits, Limits
from logstream.core.lines import DEFAULT_MAX_LINE_BYTES
from logstream.core.simulator import Simulator
from logstream.support.green import is_green, thread_class
from logstream.web.fanout import RoomFanout
from logstream.web.websocket import LogPacket, install as install_transport

PACKAGE_DIR = Path(__file__).resolve().parent.parent
# Installed wheels carry the templates inside the package; a source checkout
# keeps them in the top-level templates/ folder.
TEMPLATE_DIR = next(p for p in (PACKAGE_DIR / "templates", PACKAGE_DIR.parent / "templates")
                    if p.is_dir())
DEFAULT_DATA_DIR = "data/logs"
# Clients send small control messages; anything bigger is refused.
MAX_MESSAGE_BYTES = 64 * 1024


class NoSessions(SessionInterface):
    """Flask's session interface for an app that keeps no session: always the null session."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response):
        pass


def socketio_route(app, path="/socket.io/"):
    """Give Socket.IO's path a URL rule, so request contexts built from its requests match one.

    A connection's token is checked in a request context built from its
    handshake request (Flask-SocketIO's handlers would build one for every
    event). With no rule for its path, each raises and keeps a NotFound
    whose traceback ties the request, its contexts and some forty frames
    into a reference cycle that only the cyclic garbage collector frees:
    ~57 objects of garbage a context, 8 with the rule.
    Engine.IO answers this path before Flask routes it, so the view only
    says so if it is ever reached.
    """

    def socketio_endpoint():
        return {"error": "not_found",
                "message": "Socket.IO is served here; connect with a Socket.IO client."}, 404

    # Its long-polling requests, and its WebSocket handshakes (which Werkzeug
    # matches only against rules made for WebSockets).
    app.add_url_rule(path, endpoint="socketio", view_func=socketio_endpoint)
    app.add_url_rule(path, endpoint="socketio", view_func=socketio_endpoint, websocket=True)


@dataclass
class LogstreamState:
    """What one app instance shares between its routes and events."""

    data_dir: Path
    hub: StreamHub
    simulator: Simulator
    line_counts: LineCounts
    limits: Limits
    clients: ClientLimits
    shutdown_hooks: list = field(default_factory=list)
    # What ids mean: the data dir's <id>.log files, or the paths named on the command line.
    sources: object = None


def create_app(data_dir=None, *, line_interval=0.5, poll_interval=None,
               use_inotify=True, max_line_bytes=DEFAULT_MAX_LINE_BYTES,
               rotate_wait=DEFAULT_ROTATE_WAIT,
               cors=None, token=None, limits=None, ping_interval=25, ping_timeout=20,
               make_hub=None,
               sources=None, allowed_hosts=None, test_config=None):
    """Create and configure the logstream Flask app and its Socket.IO server.

    ``token`` (default: the LOGSTREAM_TOKEN environment variable) makes every
    route but /healthz, every stream and every Socket.IO connection require
    it; ``rotate_wait`` is how many seconds a renamed log is still read
    (lines its application writes before reopening it); ``limits`` is a :class:`logstream.web.limits.Limits`; ``ping_interval`` is
    Engine.IO's heartbeat in seconds, ``ping_timeout`` how long a client
    may take to answer it before its connection is closed. ``make_hub(data_dir)`` replaces the
    hub of followers with another source of lines; a hub with a
    ``client_manager`` brings the Socket.IO manager that shares its rooms
    (``logstream.scale.worker`` builds a Redis-fed worker this way).
    ``sources`` (a :class:`logstream.core.sources.FollowedSet`) serves the
    files, folders and standard input it names instead of ``data_dir``, with
    simulated deployments turned off.
    ``allowed_hosts`` (default: the comma-separated LOGSTREAM_ALLOWED_HOSTS,
    plus any name under JupyterHub) adds host names the server answers to
    besides loopback ones; ``"*"`` allows any (see docs/reliability.md).
    """
    from logstream.web import auth, events, files, internals, sse, urls, views
    from logstream.web.hosts import HostCheck
    from logstream.web.sessions import SessionSweeper

    app = Flask("logstream", template_folder=str(TEMPLATE_DIR),
                static_folder=str(PACKAGE_DIR / "static"))
    # No page or event keeps per-user state in Flask's session; without this,
    # every request and every Socket.IO event would build a cookie signer.
    app.session_interface = NoSessions()
    if test_config:
        app.config.update(test_config)
    auth.init_app(app, token if token is not None else os.environ.get("LOGSTREAM_TOKEN"))
    limits = limits or Limits()

    if sources is None:
        data_dir = Path(data_dir or os.environ.get("LOGSTREAM_DATA_DIR", DEFAULT_DATA_DIR))
        data_dir.mkdir(parents=True, exist_ok=True)
    else:
        data_dir = None  # nothing is created or simulated: only the named paths are read
    if make_hub is not None:
        hub = make_hub(data_dir)
    else:
        hub = StreamHub(data_dir, max_line_bytes=max_line_bytes,
                        poll_interval=poll_interval, use_inotify=use_inotify,
                        rotate_wait=rotate_wait)
    simulator = Simulator(data_dir, line_interval=line_interval)
    if sources is None:
        sources = DataDirSources(data_dir, running=simulator.running)
    hub.resolve = sources.resolve
    # Each client's rooms indexed: leaving costs its own rooms, not all of them.
    manager = getattr(hub, "client_manager", None) or internals.IndexedManager()
    app.config.setdefault("LOGSTREAM_MAX_LINE_BYTES", max_line_bytes)
    app.extensions["logstream"] = LogstreamState(
        data_dir=data_dir, hub=hub, simulator=simulator,
        line_counts=LineCounts(), limits=limits, clients=ClientLimits(limits),
        sources=sources)
    app.extensions["logstream"].shutdown_hooks.append(sources.close)

    socketio = SocketIO(
        app, async_mode="threading",
        # None keeps Socket.IO same-origin; an allowlist opens it to those only.
        cors_allowed_origins=list(cors) if cors else None,
        max_http_buffer_size=MAX_MESSAGE_BYTES, ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        # Encodes the followers' pre-encoded payloads without walking them.
        serializer=LogPacket,
        logger=False, engineio_logger=False, client_manager=manager,
        # A client's events are handled in the order it sent them, on the
        # task (or thread) that reads its connection: no task started per
        # event, and a ping sent after a join is answered after it.
        async_handlers=False)
    socketio_route(app)
    # On green threads a room's packet is written to every member's socket
    # by the publishing task (fanout.py); on OS threads through Engine.IO.
    direct = is_green()
    if direct:
        # Engine.IO starts a task for every incoming event: a bare greenlet.
        internals.use_thread_class(socketio.server.eio, thread_class())
    websockets = install_transport(socketio, direct=direct)
    internals.install_byte_queues(socketio)
    fanout = app.extensions["logstream.web.fanout"] = RoomFanout(socketio, websockets, direct)
    events.register_events(app, socketio, hub, limits, app.extensions["logstream"].clients,
                           fanout=fanout)
    sweeper = SessionSweeper(socketio, limits.connect_timeout).start()
    app.extensions["logstream"].shutdown_hooks.append(sweeper.stop)
    sse_outlet = sse.SSEOutlet()
    hub.outlets.append(sse_outlet)
    app.extensions["logstream.web.sse"] = sse_outlet
    app.extensions["logstream"].shutdown_hooks.append(sse_outlet.close_all)
    urls.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(sse.bp)
    files.init_app(app)
    if allowed_hosts is None:
        allowed_hosts = os.environ.get("LOGSTREAM_ALLOWED_HOSTS", "").split(",")
        if os.environ.get("JUPYTERHUB_SERVICE_PREFIX"):
            # On JupyterHub (and Binder) browsers reach this server only through
            # the hub's proxy, under the hub's own name, which can be anything;
            # no browser's loopback leads here, so rebinding has nothing to reach.
            allowed_hosts.append("*")
    # Outermost, so Engine.IO's handshakes are checked too.
    app.wsgi_app = HostCheck(app.wsgi_app, allowed_hosts)
    app.extensions["logstream.web.hosts"] = app.wsgi_app
    return app
