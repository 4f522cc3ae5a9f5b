"""Engine.IO's heartbeats for every session from one timer thread, not a sleeping thread per session.

python-engineio starts a thread per session for each ping that sleeps out the
ping interval (25 s) before sending; a thousand viewers hold a thousand such
threads, and each lingers for up to 25 s after its client has gone. Here one
thread keeps a heap of due pings and sends each when due, doing what
Engine.IO's own ping task does after its sleep.
"""

import heapq
import itertools
import threading
import time

from engineio import packet


class HeartbeatScheduler:
    """Send each scheduled session's ping when it is due, from one thread."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap = []
        self._order = itertools.count()
        self._thread = None

    def schedule(self, session, delay):
        """Ping session after delay seconds, unless it has closed by then."""
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), session))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="logstream-heartbeat",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def pending(self):
        """Return how many pings are scheduled."""
        with self._cond:
            return len(self._heap)

    def _run(self):
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, session = heapq.heappop(self._heap)
            ping(session)


def ping(session):
    """Send one Engine.IO ping, as the session's own ping task does after its sleep."""
    if not session.closing and not session.closed:
        session.last_ping = time.time()
        try:
            session.send(packet.Packet(packet.PING))
        except Exception:  # noqa: BLE001 - a session closing meanwhile must not end the timer
            pass


scheduler = HeartbeatScheduler()


class ScheduledPing:
    """Stands in for the thread Engine.IO would start for one ping."""

    def __init__(self, session):
        self.session = session

    def start(self):
        scheduler.schedule(self.session, self.session.server.ping_interval)

    def join(self, timeout=None):
        pass  # nothing runs on its own thread

    def is_alive(self):
        return False
