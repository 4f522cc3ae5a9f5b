"""Close Engine.IO sessions that don't join the Socket.IO namespace in time."""

import logging
import threading
import time

from logstream.web import internals

log = logging.getLogger(__name__)


class SessionSweeper:
    """Close sessions that haven't joined the namespace within `timeout` seconds.

    Socket.IO's own server does this with `connectTimeout`; without it a
    session whose connect was refused (a wrong token) or never sent keeps
    its threads until the client goes away, which a hostile one never does.
    """

    def __init__(self, socketio, timeout):
        self.socketio = socketio
        self.timeout = timeout
        self._first_seen = {}
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="logstream:sessions",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self):
        # Checking twice per timeout closes a session between 1 and 1.5 timeouts.
        while not self._stop.wait(self.timeout / 2):
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - one bad sweep must not end the sweeping
                log.exception("checking Engine.IO sessions failed")

    def sweep(self):
        """Close every session that has waited too long without joining; return how many."""
        now = time.monotonic()
        live = set(internals.engineio_sessions(self.socketio))
        for gone in self._first_seen.keys() - live:
            del self._first_seen[gone]
        closed = 0
        for eio_sid in live:
            first = self._first_seen.setdefault(eio_sid, now)
            if now - first >= self.timeout and \
                    not internals.joined_namespace(self.socketio, eio_sid):
                closed += internals.close_session(self.socketio, eio_sid)
        if closed:
            log.warning("closed %d Engine.IO session(s) that did not join within %g s "
                        "(Limits.connect_timeout)", closed, self.timeout)
        return closed
