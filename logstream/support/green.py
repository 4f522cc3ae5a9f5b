"""Tell whether this process runs on gevent's green threads (see logstream.launch), and start tasks cheaply there."""

import sys
import threading


def is_green():
    """Return True when gevent has patched this process's threading module."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("threading"))


_green_thread = None


def thread_class():
    """Return the class to start background tasks with: GreenThread on green threads, else threading.Thread.

    On green threads a patched ``threading.Thread`` is still a Python
    thread object (its locks, events, name and bookkeeping) around a
    greenlet: about 50 µs to start, against 14 µs for the greenlet alone.
    Engine.IO starts one for each incoming event and simple-websocket one
    for each connection's reader, so a viewer's join starts five.
    """
    global _green_thread
    if not is_green():
        return threading.Thread
    if _green_thread is None:
        import gevent

        class GreenThread(gevent.Greenlet):
            """A greenlet with the part of threading.Thread's interface Engine.IO and simple-websocket use."""

            def __init__(self, target=None, args=(), kwargs=None, daemon=True, name=None):
                super().__init__(target, *args, **(kwargs or {}))
                if name is not None:
                    self.name = name

            def is_alive(self):
                return bool(self)  # a greenlet is true from its start until it ends

        _green_thread = GreenThread
    return _green_thread
