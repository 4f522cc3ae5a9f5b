"""Per-client rate limits and caps, so one client can't crowd out the others."""

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """The numbers behind every limit; each can be changed through create_app."""

    pings_per_second: float = 20.0
    ping_burst: int = 40
    joins_per_second: float = 5.0
    join_burst: int = 20
    streams_per_client: int = 50
    max_connections: int = 1000
    # Packets waiting to be sent to one client before it is declared lagging.
    max_backlog: int = 10_000


class TokenBucket:
    """Allow `rate` actions a second on average and bursts of up to `burst`."""

    def __init__(self, rate, burst):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def allow(self):
        """Spend one token and return True, or return False when none is left."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class ClientLimits:
    """Track the rate buckets of every connected client."""

    def __init__(self, limits):
        self.limits = limits
        self._lock = threading.Lock()
        self._buckets = {}

    def connected(self, sid):
        with self._lock:
            self._buckets[sid] = {
                "ping": TokenBucket(self.limits.pings_per_second, self.limits.ping_burst),
                "start_streaming": TokenBucket(self.limits.joins_per_second,
                                               self.limits.join_burst),
            }

    def disconnected(self, sid):
        with self._lock:
            self._buckets.pop(sid, None)

    def count(self):
        with self._lock:
            return len(self._buckets)

    def allow(self, sid, action):
        """Return True when sid may do action now."""
        with self._lock:
            bucket = self._buckets.get(sid, {}).get(action)
            return bucket is None or bucket.allow()
