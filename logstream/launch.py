"""The `logstream` command's entry point: green threads for `serve`, then the command line.

`logstream serve` holds thousands of idle viewers and SSE streams; on OS
threads each costs several threads and their stacks. So, before anything else
is imported, `serve` patches the standard library with gevent's green threads
and sockets (Flask-SocketIO's documented way to serve many clients), and one
OS thread serves every connection. Patching must come first: a lock or socket
created before it stays an OS one. `--async-mode threading` keeps OS
threads, as a server started inside a Jupyter kernel always does.
"""

import sys


def wants_green(argv):
    """Return True when argv is a `serve` command that should run on green threads."""
    if len(argv) < 2 or argv[1] != "serve":
        return False
    arguments = argv[2:]
    for index, argument in enumerate(arguments):
        if argument == "--":
            break
        if argument == "--async-mode" and index + 1 < len(arguments):
            return arguments[index + 1] == "gevent"
        if argument.startswith("--async-mode="):
            return argument.split("=", 1)[1] == "gevent"
    try:
        import importlib.util
        return importlib.util.find_spec("gevent") is not None
    except (ImportError, ValueError):
        return False


def patch():
    """Swap the standard library's threads, locks, sockets and selectors for gevent's."""
    import signal

    import gevent
    from gevent import monkey

    # gevent records, for every task it starts, the stack that started it
    # (for debugging): a tenth of a viewer's join, which starts several.
    gevent.config.track_greenlet_tree = False
    monkey.patch_all()
    # Python raises KeyboardInterrupt in whatever runs when Ctrl+C arrives;
    # with gevent that is often its event loop, waiting in epoll, and the
    # interrupt is not seen until something else wakes it. An event-loop
    # signal watcher hands it to the main task, which stops the server.
    main = gevent.getcurrent()
    gevent.signal_handler(signal.SIGINT, main.throw, KeyboardInterrupt)


def main(argv=None):
    argv = sys.argv if argv is None else argv
    if wants_green(argv):
        patch()
    from logstream.cli import main as command_line

    command_line()
