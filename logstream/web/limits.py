"""Per-client rate limits and caps, so one client can't crowd out the others."""

import logging
import threading
import time
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """The numbers behind every limit; each can be changed through create_app."""

    pings_per_second: float = 20.0
    ping_burst: int = 40
    joins_per_second: float = 5.0
    join_burst: int = 20
    streams_per_client: int = 50
    # Streams open at once on the whole server: Socket.IO joins plus SSE responses.
    max_streams: int = 10_000
    # Socket.IO connections plus SSE responses.
    max_connections: int = 1000
    # Bytes waiting to be sent to one client, as they go on the wire, before
    # it is declared lagging.
    max_backlog_bytes: int = 4 << 20
    # Bytes queued for all clients together past which no history is queued
    # (a client is told to ask again later): histories are each client's
    # own bytes, while a room's live packets are one string shared by all.
    max_total_backlog_bytes: int = 512 << 20
    # Seconds an Engine.IO session may stay without joining the namespace.
    connect_timeout: float = 5.0
    # POST /deployments, for the whole server.
    deployments_per_second: float = 1.0
    deployment_burst: int = 10
    max_simulations: int = 20
    # Simulated deployments' logs kept; the oldest finished ones go first.
    max_simulation_files: int = 200


# On gevent's green threads a connection costs no OS thread and about 90 KB
# (docs/benchmarks.md: 10,000 idle viewers in under 1 GB), so `logstream serve`
# holds this many, fewer when open files are short (each connection is one).
GREEN_MAX_CONNECTIONS = 12_000
# Descriptors kept for followed files, spools and the server itself.
RESERVED_FILES = 1_000


def serving_limits(green, open_files=None, max_connections=None):
    """Return the Limits a server starts with: its connection cap follows what it can hold.

    OS threads (a server in a Jupyter kernel) hold ``Limits.max_connections``
    (1,000); green threads up to GREEN_MAX_CONNECTIONS, as open files allow.
    ``max_connections`` (`serve --max-connections`) overrides either. The
    stream cap is twice the connection cap, so every viewer can follow a
    deployment or two.
    """
    if max_connections is None:
        max_connections = Limits.max_connections
        if green and open_files and open_files - RESERVED_FILES > max_connections:
            max_connections = min(GREEN_MAX_CONNECTIONS, open_files - RESERVED_FILES)
    return Limits(max_connections=max_connections,
                  max_streams=max(Limits.max_streams, 2 * max_connections))


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
    """Track every client's rate buckets, the connection count and the stream count."""

    def __init__(self, limits):
        self.limits = limits
        self._lock = threading.Lock()
        self._buckets = {}
        self._streams = 0
        # One bucket for the whole server: every client is 127.0.0.1 anyway.
        self._deployments = TokenBucket(limits.deployments_per_second,
                                        limits.deployment_burst)

    def admit(self, key):
        """Count a new connection and return True, or return False when the server is full.

        The check and the count happen under one lock, so simultaneous
        connects can't slip past the cap together.
        """
        with self._lock:
            if len(self._buckets) >= self.limits.max_connections:
                full = True
            else:
                full = False
                self._buckets[key] = {
                    "ping": TokenBucket(self.limits.pings_per_second, self.limits.ping_burst),
                    "start_streaming": TokenBucket(self.limits.joins_per_second,
                                                   self.limits.join_burst),
                }
        if full:
            log.warning("connection refused: the server is at its limit of %d connections "
                        "(Limits.max_connections)", self.limits.max_connections)
        return not full

    def disconnected(self, key):
        with self._lock:
            self._buckets.pop(key, None)

    def count(self):
        with self._lock:
            return len(self._buckets)

    def open_stream(self):
        """Count a new stream and return True, or return False when the server has its most."""
        with self._lock:
            full = self._streams >= self.limits.max_streams
            if not full:
                self._streams += 1
        if full:
            log.warning("stream refused: the server is at its limit of %d streams "
                        "(Limits.max_streams)", self.limits.max_streams)
        return not full

    def close_stream(self):
        with self._lock:
            self._streams -= 1

    def allow_deployment(self):
        """Spend one of the server's POST /deployments tokens; return False when none is left."""
        with self._lock:
            allowed = self._deployments.allow()
        if not allowed:
            log.warning("new deployment refused: more than %g a second "
                        "(Limits.deployments_per_second)", self.limits.deployments_per_second)
        return allowed

    def allow(self, sid, action):
        """Return True when sid may do action now."""
        with self._lock:
            bucket = self._buckets.get(sid, {}).get(action)
            return bucket is None or bucket.allow()


# History is queued in pieces of about this many bytes, checking the
# client's backlog between pieces, so it never overshoots by a whole batch.
PIECE_BYTES = 256 * 1024


def wire_size(text):
    """Return an upper bound of the bytes text takes once JSON-encoded (ASCII-escaped)."""
    # Anything but ASCII becomes a \uXXXX escape (two for astral characters).
    return len(text) + 2 if text.isascii() else 12 * len(text) + 2


def byte_pieces(lines, limit=PIECE_BYTES):
    """Split (number, text) pairs into lists whose encoded size is about limit at most."""
    piece, size = [], 0
    for item in lines:
        cost = wire_size(item[1]) + 40  # the line's number and field names
        if piece and size + cost > limit:
            yield piece
            piece, size = [], 0
        piece.append(item)
        size += cost
    if piece:
        yield piece
