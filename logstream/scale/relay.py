"""Relay a shipper's lines from Redis into one web worker's rooms, history from disk.

With ``logstream serve --message-queue URL`` a worker runs no follower. The
shipper (logstream/scale/shipper.py) publishes every read and status on a
plain Redis pub/sub channel, ``SHIP_CHANNEL``; :class:`ShipListener` hears it
and hands each message to :class:`RelayHub`. The hub has the same interface as
:class:`logstream.core.hub.StreamHub`, so the Socket.IO events and the SSE route
work unchanged: each followed deployment has one thread that receives live
lines and new subscribers in order, sends a subscriber its history from disk
up to the last line the room has had, and only then lets it into the room.
See docs/scaling.md.
"""

import json
import logging
import os
import queue
import threading

import socketio

from logstream.core.follower import HISTORY_BATCH, _open_no_follow
from logstream.core.hub import StreamHub
from logstream.core.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter
from logstream.web.internals import RoomIndex

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
# Statuses after which the shipper numbers the file's lines from 1 again.
RESTART_STATUSES = ("truncated", "rotated", "deleted", "created")
# Events a worker sends to its own clients only: the shipper is the one
# process that publishes lines, so a worker never republishes them.
LOCAL_EVENTS = frozenset({"new_log", "log_batch", "status", "pong", "stream_error"})
# The Redis channel the shipper publishes on; Socket.IO's own channel
# ("flask-socketio") stays free for the application's events.
SHIP_CHANNEL = "logstream:ship"
# Live lines waiting in one deployment's feed on a worker, in bytes: text
# plus LINE_OVERHEAD per line. Lines beyond it are dropped and later read
# from disk, where the feed fills every gap (see docs/scaling.md).
DEFAULT_FEED_BYTES = 4 << 20
LINE_OVERHEAD = 64
_STOP = object()


class DiskLines:
    """Read a log's complete lines from disk, numbered as the shipper's follower numbers them.

    It remembers where the last line it read ends, so reading on from there
    (catching up, filling a gap) does not reread the file.
    """

    def __init__(self, path, max_line_bytes=DEFAULT_MAX_LINE_BYTES):
        self.path = path
        self.max_line_bytes = max_line_bytes
        self._mark = None  # (inode, lines, byte offset just after the last line)

    def read(self, first, last=None):
        """Yield lists of (number, text) for lines first..last (the file's end when None).

        Also sets ``self.count``: the number of complete lines read up to.
        """
        self.count = 0
        try:
            fd = _open_no_follow(self.path)
        except OSError:
            return  # deleted meanwhile: the shipper will say so
        try:
            info = os.fstat(fd)
            offset, number = 0, 0
            if (self._mark and self._mark[0] == info.st_ino and self._mark[1] < first
                    and self._mark[2] <= info.st_size):
                _, number, offset = self._mark
            splitter = LineSplitter(self.max_line_bytes)
            batch = []
            while last is None or number < last:
                chunk = os.pread(fd, READ_SIZE, offset)
                if not chunk:
                    break
                offset += len(chunk)
                for text in splitter.feed(chunk):
                    number += 1
                    if last is not None and number > last:
                        break
                    if number >= first:
                        batch.append((number, text))
                        if len(batch) == HISTORY_BATCH:
                            yield batch
                            batch = []
                else:
                    self._mark = (info.st_ino, number, offset - splitter.held_bytes)
                    continue
                break  # stopped at `last` in the middle of a chunk: no mark
            self.count = number if last is None else min(number, last)
            if batch:
                yield batch
        finally:
            os.close(fd)

    def lines(self, first, last=None):
        """Return lines first..last as one list."""
        return [line for batch in self.read(first, last) for line in batch]


class Feed:
    """One deployment's live lines and new subscribers, handled in order on one thread.

    ``position`` is the last line every member of the deployment's rooms has
    had (as history or live). Live lines at or below it are dropped, a gap
    above it is filled from disk, and a new subscriber's history ends there.
    """

    def __init__(self, hub, deployment_id, path, max_bytes=DEFAULT_FEED_BYTES):
        self.hub = hub
        self.deployment_id = deployment_id
        self.disk = DiskLines(path, hub.max_line_bytes)
        self.position = None  # unknown until the first subscriber reads the disk
        self.max_bytes = max_bytes
        self.queued_bytes = 0  # live lines waiting in the queue
        self.dropped = 0  # live lines dropped over budget, read from disk instead
        self._queue = queue.SimpleQueue()
        # Its own lock: the attach lock is held through history reads, and
        # the one Redis listener thread must never wait for those.
        self._bytes_lock = threading.Lock()
        self._attached = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"relay:{deployment_id}",
                                        daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=5.0):
        self._queue.put(_STOP)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def attach(self, key, on_attach, since, tail):
        with self._lock:
            self._attached.add(key)
        self._queue.put(("attach", (key, on_attach, since, tail)))

    def detach(self, key):
        with self._lock:
            self._attached.discard(key)

    def put(self, kind, payload):
        """Queue a message; live lines over the byte budget are dropped (the disk has them)."""
        if kind == "lines":
            size = sum(len(text) for _, text in payload) + LINE_OVERHEAD * len(payload)
            with self._bytes_lock:
                if self.queued_bytes + size > self.max_bytes:
                    if not self.dropped:
                        log.warning("relay for %s is %d bytes behind; reading from disk "
                                    "instead", self.deployment_id, self.queued_bytes)
                    self.dropped += len(payload)
                    return
                self.queued_bytes += size
            payload = (size, payload)
        self._queue.put((kind, payload))

    # -- the feed's thread --------------------------------------------------

    def _run(self):
        while (item := self._queue.get()) is not _STOP:
            kind, payload = item
            try:
                if kind == "lines":
                    size, lines = payload
                    with self._bytes_lock:
                        self.queued_bytes -= size
                    self._lines(lines)
                elif kind == "position":
                    self._position(payload)
                elif kind == "status":
                    self._status(payload)
                else:
                    self._attach(*payload)
            except Exception:  # pragma: no cover - a bug; keep the worker alive
                log.exception("relay for %s failed on %s", self.deployment_id, kind)

    def _publish(self, lines):
        if lines:
            self.hub._publish(self.deployment_id, lines)
            self.position = lines[-1][0]

    def _catch_up(self, last=None):
        """Publish lines after position from disk, up to last (or the end)."""
        for batch in self.disk.read(self.position + 1, last):
            self._publish(batch)
        return self.disk.count

    def _lines(self, lines):
        if self.position is None:
            return  # nobody is in the rooms yet; the first subscriber reads the disk
        lines = [line for line in lines if line[0] > self.position]
        if lines and lines[0][0] > self.position + 1:
            # Lines the shipper never sent (it was down, or found the file
            # late) or that Redis dropped: they are on disk.
            self._catch_up(lines[0][0] - 1)
            lines = [line for line in lines if line[0] > self.position]
        self._publish(lines)

    def _position(self, last):
        # The shipper has read up to `last`; some of it may never have come
        # through (read before it followed the file, or lost on the way).
        if self.position is not None and last > self.position:
            self._catch_up(last)

    def _status(self, payload):
        self.hub._status(self.deployment_id, payload)
        if payload.get("type") in RESTART_STATUSES and self.position is not None:
            self.position = payload["next_line"] - 1

    def _attach(self, key, on_attach, since, tail):
        with self._lock:
            if key not in self._attached:
                return  # it left before its turn came
            if self.position is None:
                # The first subscriber here: the rooms are empty, so the
                # room's position is simply the file's end.
                for _ in self.disk.read(1):
                    pass
                self.position = self.disk.count
            # Lines on disk the room hasn't had yet (the shipper is behind,
            # or down) go to the room first, so the history below ends
            # exactly where the room is.
            end = self._catch_up()
            if end < self.position:
                # The file is shorter than what the room has had: it was
                # truncated or replaced, and the shipper's status is on its
                # way. Serve what is there.
                self.position = end
            end = self.position
            if since is None:
                first = max(1, end - tail + 1)
            elif since > end:
                first = 1  # truncated or replaced while the client was away
            else:
                first = since + 1
            on_attach(self.disk.read(first, end), first, end + 1)


class RelayHub(StreamHub):
    """A StreamHub whose live lines come from the shipper through Redis, not a follower."""

    def __init__(self, data_dir, max_line_bytes=DEFAULT_MAX_LINE_BYTES,
                 max_feed_bytes=DEFAULT_FEED_BYTES, **_follower_options):
        super().__init__(data_dir)
        self.max_line_bytes = max_line_bytes
        self.max_feed_bytes = max_feed_bytes

    def _start_source(self, deployment_id, path):
        """Start the relay thread that feeds this worker's rooms for a deployment."""
        return Feed(self, deployment_id, path, self.max_feed_bytes).start()

    def deliver(self, deployment_id, kind, payload):
        """Queue a shipper's lines or status for the deployment, if anyone here follows it."""
        with self._lock:
            feed = self._sources.get(deployment_id)
        if feed is not None:
            feed.put(kind, payload)


def ship_message(deployment_id, kind, payload):
    """Return the text the shipper publishes: lines, a status, or how far it has read."""
    return json.dumps({"deployment_id": deployment_id, "kind": kind, "payload": payload},
                      separators=(",", ":"))


class ShipListener:
    """Hear the shipper's channel with redis-py and hand each message to a RelayHub."""

    RETRY_SECONDS = (0.1, 0.5, 1.0, 2.0)

    def __init__(self, url, hub, channel=SHIP_CHANNEL):
        import redis

        self.redis = redis
        self.client = redis.Redis.from_url(url)
        self.hub = hub
        self.channel = channel
        self._pubsub = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay:listen", daemon=True)

    def _subscribe(self, timeout):
        """Subscribe and wait for Redis to confirm, so nothing published after is missed."""
        pubsub = self.client.pubsub()
        pubsub.subscribe(self.channel)
        reply = pubsub.get_message(timeout=timeout)
        if not reply or reply.get("type") != "subscribe":
            pubsub.close()
            raise self.redis.ConnectionError(f"Redis did not confirm the subscription "
                                             f"to {self.channel!r} within {timeout} s")
        self._pubsub = pubsub

    def start(self, timeout=5.0):
        """Subscribe now, before any client joins, then listen on a thread."""
        self._subscribe(timeout)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._thread.join(5)
        self.client.close()

    def _run(self):
        failures = 0
        while not self._stopping.is_set():
            try:
                if self._pubsub is None:
                    self._subscribe(5.0)
                    log.info("listening to %s again", self.channel)
                message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                failures = 0
            except (self.redis.RedisError, OSError) as error:
                # Lines published meanwhile are lost here, and read from
                # disk when the next message shows the gap.
                if self._pubsub is not None:
                    self._pubsub.close()
                    self._pubsub = None
                log.warning("Redis channel %s failed (%s); retrying", self.channel, error)
                self._stopping.wait(self.RETRY_SECONDS[min(failures, 3)])
                failures += 1
                continue
            if message and message.get("type") == "message":
                self.handle(message["data"])
        if self._pubsub is not None:
            self._pubsub.close()

    def handle(self, data):
        """Hand one published message to the hub; ignore what isn't the shipper's."""
        try:
            message = json.loads(data)
            deployment_id, kind, payload = (message["deployment_id"], message["kind"],
                                            message["payload"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a message on %s that is not the shipper's", self.channel)
            return
        if kind == "lines":
            payload = [(number, text) for number, text in payload]
        self.hub.deliver(deployment_id, kind, payload)


class RelayManager(RoomIndex, socketio.RedisManager):
    """Flask-SocketIO's Redis client manager that keeps logstream's own events on this worker.

    The shipper is the one process that publishes lines, so a worker emits
    them (and statuses, pongs, errors) to its own clients only; any other
    event an application emits goes through Redis as usual.
    """

    def emit(self, event, data, namespace=None, room=None, skip_sid=None,
             callback=None, to=None, **kwargs):
        if event in LOCAL_EVENTS and callback is None:
            kwargs["ignore_queue"] = True
        return super().emit(event, data, namespace=namespace, room=room,
                            skip_sid=skip_sid, callback=callback, to=to, **kwargs)


def check_message_queue(url):
    """Return a sentence saying what is wrong with a message-queue URL, or None when Redis answers."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return (f"{url!r} is not a Redis URL: use redis://HOST:PORT/DB "
                f"(for example redis://127.0.0.1:6379/0).")
    try:
        import redis
    except ImportError:
        return "the redis package is not installed: pip install 'logstream[scale]'."

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as error:
        return f"Redis at {url} does not answer ({error}); is redis-server running?"
    return None
