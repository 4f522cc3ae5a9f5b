"""Tell whether this process runs on gevent's green threads (see logstream.launch)."""

import sys


def is_green():
    """Return True when gevent has patched this process's threading module."""
    monkey = sys.modules.get("gevent.monkey")
    return bool(monkey and monkey.is_module_patched("threading"))
