"""What logstream/web/internals.py relies on in four libraries still holds, and nothing else relies on it."""

import ast
import inspect
import re
from importlib.metadata import version
from pathlib import Path

import engineio
import pytest
import simple_websocket
import socketio
import wsproto
from wsproto.events import AcceptConnection, Request
from wsproto.extensions import PerMessageDeflate

from logstream.clients.logclient import LogClient
from logstream.web import internals
from logstream.web.sendqueue import ByteQueue


ROOT = Path(__file__).resolve().parent.parent
CHECKED = set()


def require(ok, package, name, what_changed):
    """Fail with a sentence naming the package, its version and the private name that changed."""
    CHECKED.add((package, name))
    purpose = internals.PRIVATE_NAMES[package][name]
    assert ok, (f"{package} {version(package)} changed {name}: {what_changed}. "
                f"logstream/web/internals.py relies on it for {purpose}; adapt that module "
                f"(or keep {package} below this version in pyproject.toml and environment.yml).")


def test_engineio_threading_websocket_class_and_its_table():
    name = "engineio.async_drivers._websocket_wsgi.SimpleWebSocketWSGI"
    wrapper = inspect.getsource(internals.SimpleWebSocketWSGI)
    call = inspect.getsource(internals.SimpleWebSocketWSGI.__call__)
    require("self.server_args = kwargs" in wrapper
            and "simple_websocket.Server(environ, **self.server_args)" in wrapper
            and re.findall(r"self\.ws\.mode == '(\w+)'", call) == ["gunicorn", "werkzeug"]
            and call.count("raise") == 2 and "ret = self.app(self)" in call,
            "python-engineio", name,
            "it no longer passes its keyword arguments on to simple_websocket.Server, or its "
            "__call__ (which QuickWebSocketWSGI repeats) now does more than build the server, "
            "run the handler and end a Gunicorn or Werkzeug request")
    eio = engineio.Server(async_mode="threading")
    require(isinstance(getattr(eio, "_async", None), dict)
            and eio._async.get("websocket") is internals.SimpleWebSocketWSGI
            and eio._async.get("queue") is not None
            and "self._async['queue'](" in inspect.getsource(engineio.Server.create_queue)
            and "self._async['thread'](target=target, args=args, kwargs=kwargs)"
            in inspect.getsource(engineio.Server.start_background_task),
            "python-engineio", "engineio.Server._async",
            "it is no longer a dict whose 'websocket' entry is SimpleWebSocketWSGI, whose "
            "'queue' entry makes each session's send queue and whose 'thread' entry starts "
            "each background task")


def test_engineio_sessions_and_their_send_queues(server):
    with LogClient(server.url) as client:
        sio_server = server.socketio.server
        eio = sio_server.eio
        sid = client.sio.get_sid("/")
        eio_sid = getattr(sio_server.manager, "eio_sid_from_sid", lambda *_: None)(sid, "/")
        require(isinstance(eio_sid, str), "python-socketio",
                "socketio.base_manager.BaseManager.eio_sid_from_sid",
                "it no longer maps a Socket.IO sid to its Engine.IO session id")
        require(isinstance(getattr(eio, "sockets", None), dict) and eio_sid in eio.sockets,
                "python-engineio", "engineio.Server.sockets",
                "it is no longer a dict of the open sessions by sid")
        session = eio.sockets[eio_sid]
        queue = getattr(session, "queue", None)
        require(all(hasattr(queue, attr) for attr in ("qsize", "all_tasks_done",
                                                      "unfinished_tasks"))
                and hasattr(session, "closed"),
                "python-engineio", "engineio.socket.Socket.queue",
                "a session's queue is no longer a queue.Queue (qsize, all_tasks_done, "
                "unfinished_tasks) or a session has no 'closed'")
        require(isinstance(queue, ByteQueue), "python-engineio",
                "engineio.socket.Socket.queue",
                "a session's queue is no longer made from the server's _async['queue']")
        assert internals.queued_bytes(sio_server, sid) >= 0
        upgrade = inspect.getsource(engineio.socket.Socket._upgrade_websocket)
        handler = getattr(session, "_websocket_handler", None)
        require("self._websocket_handler, self.server" in upgrade
                and internals.session_of(handler) is session,
                "python-engineio", "engineio.socket.Socket._websocket_handler",
                "the handler given to the WebSocket class is no longer a method of its session")


def test_socketio_manager_disconnect_cleans_up_only_what_room_index_does():
    from socketio.base_manager import BaseManager

    source = inspect.getsource(BaseManager.basic_disconnect)
    touched = set(re.findall(r"self\.(\w+)", source))
    require(touched <= {"rooms", "basic_leave_room", "callbacks", "pending_connect",
                        "pending_disconnect"}
            and "basic_enter_room(sid, namespace, None, eio_sid=eio_sid)"
            in inspect.getsource(BaseManager.pre_connect),
            "python-socketio", "socketio.base_manager.BaseManager.basic_disconnect",
            f"a client's leaving now also touches {sorted(touched)}; RoomIndex must do the same")
    # The indexed manager behaves as the stock one: rooms entered, left and cleared.
    manager = internals.IndexedManager()
    manager.set_server(socketio.Server())
    manager.initialize()
    sid = manager.connect("eio-1", "/")
    other = manager.connect("eio-2", "/")
    manager.enter_room(sid, "/", "demo#batch")
    manager.enter_room(other, "/", "demo#batch")
    assert sorted(manager.get_rooms(sid, "/")) == sorted([sid, "demo#batch"])
    manager.disconnect(sid, "/")
    assert [s for s, _ in manager.get_participants("/", "demo#batch")] == [other]
    assert manager.get_rooms(sid, "/") == [] and sid not in manager.rooms["/"]


def test_socketio_client_reconnect_task():
    client = socketio.Client()
    source = inspect.getsource(socketio.Client)
    require(hasattr(client, "_reconnect_task") and client._reconnect_task is None
            and "self._reconnect_task = self.start_background_task" in source,
            "python-socketio", "socketio.Client._reconnect_task",
            "it is no longer None until a reconnection loop starts, then that loop's task")


def test_simple_websocket_writes_only_through_sock_send_and_takes_a_thread_class():
    base = inspect.getsource(simple_websocket.ws.Base)
    used = set(re.findall(r"self\.sock\.(\w+)", base))
    require(used <= {"send", "recv", "close"} and "thread_class(target=self._thread)" in base,
            "simple-websocket", "simple_websocket.ws.Base._thread",
            f"Base now uses sock.{sorted(used - {'send', 'recv', 'close'})} or no longer "
            f"builds its reader thread with thread_class(target=self._thread); "
            f"LockedSocket routes send only")


def test_wsproto_keeps_the_agreed_deflate_window_on_the_connection():
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    offer = PerMessageDeflate(client_max_window_bits=12, server_max_window_bits=12)
    server.receive_data(client.send(Request(host="localhost", target="/",
                                            extensions=[offer])))
    request = next(event for event in server.events() if isinstance(event, Request))
    server.send(AcceptConnection(extensions=[PerMessageDeflate()]))

    class Holder:  # what simple-websocket exposes as ws.ws
        ws = server

    require(internals.deflate_window_bits(Holder) == 12 and request.extensions,
            "wsproto", "wsproto.connection.Connection._proto.extensions",
            "the negotiated PerMessageDeflate is no longer at connection._proto.extensions")


def test_every_private_name_listed_is_checked(server):
    for check in (test_engineio_threading_websocket_class_and_its_table,
                  test_socketio_client_reconnect_task,
                  test_socketio_manager_disconnect_cleans_up_only_what_room_index_does,
                  test_simple_websocket_writes_only_through_sock_send_and_takes_a_thread_class,
                  test_wsproto_keeps_the_agreed_deflate_window_on_the_connection):
        check()
    test_engineio_sessions_and_their_send_queues(server)
    listed = {(package, name) for package, names in internals.PRIVATE_NAMES.items()
              for name in names}
    assert listed == CHECKED, f"listed but not checked: {listed - CHECKED}"


# Private names of python-engineio, python-socketio, simple-websocket and
# wsproto (and their undocumented attributes) that logstream has used.
PRIVATE = {"_async", "_websocket_wsgi", "async_drivers", "_proto", "_reconnect_task",
           "_handle_emit", "_redis_connect", "manager_initialized", "eio_sid_from_sid",
           "sockets", "all_tasks_done", "unfinished_tasks", "_send_packet", "_trigger_event"}
LIBRARIES = ("engineio", "socketio", "simple_websocket", "wsproto", "flask_socketio")


def private_names_in(path):
    """Return the private library names a module mentions (attributes, imports, getattr strings)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
            found.add(node.attr)
        elif isinstance(node, ast.Constant) and node.value in PRIVATE:
            found.add(node.value)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(LIBRARIES):
            parts = node.module.split(".") + [alias.name for alias in node.names]
            found |= {part for part in parts if part.startswith("_") or part in PRIVATE}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(LIBRARIES):
                    found |= {p for p in alias.name.split(".") if p.startswith("_")}
    return found


def test_exactly_one_module_uses_the_libraries_private_names():
    users = {str(path.relative_to(ROOT)): names
             for path in sorted((ROOT / "logstream").rglob("*.py"))
             if (names := private_names_in(path))}
    assert list(users) == ["logstream/web/internals.py"], (
        f"only logstream/web/internals.py may use private names of python-engineio, "
        f"python-socketio, simple-websocket or wsproto; found {users}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from logstream.web.server import start_server

    with start_server(data_dir=tmp_path_factory.mktemp("logs")) as handle:
        yield handle
