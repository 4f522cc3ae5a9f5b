"""Relay a shipper's lines from Redis into one web worker's rooms, history from disk.

With ``logstream serve --message-queue URL`` a worker runs no follower. The
shipper (logstream/shipper.py) publishes one ``log_batch`` per read into the
deployment's batch room through Redis; :class:`RelayManager` (the worker's
Socket.IO client manager) hands those to :class:`RelayHub` instead of
fanning them out as they are. The hub has the same interface as
:class:`logstream.core.hub.StreamHub`, so the Socket.IO events and the SSE route
work unchanged: each followed deployment has one thread that receives live
lines and new subscribers in order, sends a subscriber its history from disk
up to the last line the room has had, and only then lets it into the room.
See docs/scaling.md.
"""

import logging
import os
import queue
import threading

import socketio

from logstream.core.follower import HISTORY_BATCH, _open_no_follow
from logstream.core.hub import StreamHub
from logstream.core.lines import DEFAULT_MAX_LINE_BYTES, LineSplitter

log = logging.getLogger(__name__)

READ_SIZE = 1 << 20
# Statuses after which the shipper numbers the file's lines from 1 again.
RESTART_STATUSES = ("truncated", "rotated", "deleted", "created")
# Events a worker sends to its own clients only: the shipper is the one
# process that publishes lines, so a worker never republishes them.
LOCAL_EVENTS = frozenset({"new_log", "log_batch", "status", "pong", "stream_error"})
# The shipper's periodic note of how far it has read a file; workers use it
# to fill gaps from disk and never pass it on to clients.
SHIPPED = "shipped"
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

    def __init__(self, hub, deployment_id, path):
        self.hub = hub
        self.deployment_id = deployment_id
        self.disk = DiskLines(path, hub.max_line_bytes)
        self.position = None  # unknown until the first subscriber reads the disk
        self._queue = queue.SimpleQueue()
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
        self._queue.put((kind, payload))

    # -- the feed's thread --------------------------------------------------

    def _run(self):
        while (item := self._queue.get()) is not _STOP:
            kind, payload = item
            try:
                if kind == "lines":
                    self._lines(payload)
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

    def __init__(self, data_dir, max_line_bytes=DEFAULT_MAX_LINE_BYTES, **_follower_options):
        super().__init__(data_dir)
        self.max_line_bytes = max_line_bytes

    def _start_source(self, deployment_id, path):
        """Start the relay thread that feeds this worker's rooms for a deployment."""
        return Feed(self, deployment_id, path).start()

    def deliver(self, deployment_id, kind, payload):
        """Queue a shipper's lines or status for the deployment, if anyone here follows it."""
        with self._lock:
            feed = self._sources.get(deployment_id)
        if feed is not None:
            feed.put(kind, payload)


class RelayManager(socketio.RedisManager):
    """Flask-SocketIO's Redis client manager, handing the shipper's lines to a RelayHub.

    The shipper's ``log_batch`` and ``status`` events for a batch room go
    to the hub, which fans them out here in order and without duplicates;
    every other message from the queue is handled as usual. Logstream's own
    events are emitted to this worker's clients only.
    """

    def __init__(self, url, hub, channel="flask-socketio", **options):
        super().__init__(url, channel=channel, **options)
        self.hub = hub
        self.subscribed = threading.Event()

    def _redis_connect(self):
        super()._redis_connect()
        # Subscribing here (python-socketio subscribes again right after,
        # which Redis ignores) tells the worker when it can hear the shipper.
        self.pubsub.subscribe(self.channel)
        self.subscribed.set()

    def start_listening(self, timeout=5.0):
        """Listen to the queue now rather than on the first client, and wait until subscribed."""
        self.server.manager_initialized = True
        self.initialize()
        return self.subscribed.wait(timeout)

    def emit(self, event, data, namespace=None, room=None, skip_sid=None,
             callback=None, to=None, **kwargs):
        if event in LOCAL_EVENTS and callback is None:
            kwargs["ignore_queue"] = True
        return super().emit(event, data, namespace=namespace, room=room,
                            skip_sid=skip_sid, callback=callback, to=to, **kwargs)

    def _handle_emit(self, message):
        room = message.get("room")
        data = message.get("data")
        if (message.get("event") in ("log_batch", "status") and isinstance(room, str)
                and room.endswith("#batch") and isinstance(data, list) and len(data) == 1
                and isinstance(data[0], dict)):
            payload = data[0]
            deployment_id = room[: -len("#batch")]
            if message["event"] == "log_batch":
                lines = [(item["line"], item["message"]) for item in payload.get("lines", ())]
                self.hub.deliver(deployment_id, "lines", lines)
            elif payload.get("type") == SHIPPED:
                self.hub.deliver(deployment_id, "position", payload["next_line"] - 1)
            else:
                status = {k: v for k, v in payload.items() if k != "deployment_id"}
                self.hub.deliver(deployment_id, "status", status)
            return
        super()._handle_emit(message)


def check_message_queue(url):
    """Return a sentence saying what is wrong with a message-queue URL, or None when Redis answers."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return (f"{url!r} is not a Redis URL: use redis://HOST:PORT/DB "
                f"(for example redis://127.0.0.1:6379/0).")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError, OSError) as error:
        return f"Redis at {url} does not answer ({error}); is redis-server running?"
    return None
