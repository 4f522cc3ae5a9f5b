"""Measuring tools: ``logstream bench`` and ``logstream compare`` and their helpers.

They start servers in child processes, drive lean clients and report numbers.
They may import every other layer; nothing but the CLI imports them, and
``logstream serve`` never loads them. Their dependencies (psutil, tqdm,
httpx-sse) come with the ``tools`` extra; without it, importing any tool
raises an ImportError that says so.
"""

import importlib.util

EXTRA_MODULES = ("psutil", "tqdm", "httpx_sse")

_missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
if _missing:
    raise ImportError(f"logstream's measuring tools need {', '.join(_missing)}, which "
                      f"{'is' if len(_missing) == 1 else 'are'} not installed: "
                      f"pip install 'logstream[tools]'.")
