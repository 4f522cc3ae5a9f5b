"""Small stdlib-only helpers that every layer may use: free ports and machine facts,
waiting on a condition (the one wait loop), writing a log as an application
does, starting child processes (the one launcher), percentiles (the one
definition), and checking a lesson's exercises. Imports nothing from the rest
of logstream.
"""

from logstream.support.logwriter import LineWriter, append
from logstream.support.waiting import wait_until

__all__ = ["LineWriter", "append", "wait_until"]
