"""Stream log files to browsers and notebooks over Socket.IO and SSE.

The package is layered; each sub-package's docstring says what it may import,
and ``tests/test_layers.py`` checks it:

- ``logstream.support`` — stdlib-only helpers (ports, waiting, writing logs);
- ``logstream.core`` — files and lines: following, numbering, simulating;
- ``logstream.web`` — the Flask/Socket.IO server on top of the core;
- ``logstream.scale`` — several web workers fed by one shipper over Redis;
- ``logstream.clients`` — Python clients: LogClient and the notebook panes;
- ``logstream.tools`` — measuring tools (bench, compare), never loaded by ``serve``.

The names below are the public API, imported on first use so that
``import logstream`` stays cheap and pulls in no optional dependency.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "create_app": "logstream.web.app",
    "start_server": "logstream.web.server",
    "LogClient": "logstream.clients.logclient",
    "LogPane": "logstream.clients.pane",
    "Dashboard": "logstream.clients.dashboard",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'logstream' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(module), name)
