"""A client's Engine.IO send queue that knows how many bytes it holds, and hands its writer bounded batches."""

import queue
import sys

# What Engine.IO's writer may take off a client's queue at once. Its poll()
# drains the whole queue into a list before sending; bounded here, a client
# that stops reading holds at most this much outside the counted queue.
WRITE_BATCH_BYTES = 1 << 20


def packet_size(pkt):
    """Return about how many bytes an Engine.IO packet takes on the wire."""
    if pkt is None:
        return 0
    data = getattr(pkt, "data", None)
    if isinstance(data, (str, bytes)):
        # Socket.IO payloads are ASCII (json escapes the rest), so characters
        # are bytes; the 1 is the Engine.IO packet type.
        return len(data) + 1
    return 64


def _stdlib_queue():
    """Return the standard library's queue.Queue, even where gevent has patched the module.

    gevent's patched ``queue.Queue`` has no ``mutex`` and no ``_init``; the
    standard class built on the patched threading module blocks only the
    green thread that waits on it.
    """
    monkey = sys.modules.get("gevent.monkey")
    return monkey.get_original("queue", "Queue") if monkey else queue.Queue


class ByteQueue(_stdlib_queue()):
    """An Engine.IO send queue that knows how many bytes it holds.

    On green threads its WebSocket sets ``direct``: a packet put while the
    queue is empty is offered to it first, and written at once unless the
    socket is busy (fanout.py says why that keeps packets in order). The
    fan-out reads the packets waiting (the stdlib queue's deque, ``queue``)
    without the lock there: on green threads nothing runs in between.
    """

    direct = None
    # The queues of one Engine.IO server that hold packets of an open
    # session: install_byte_queues gives each server its own set, so the
    # server's whole backlog is summed without walking every idle session.
    backlogged = None

    def put(self, item, block=True, timeout=None):
        direct = self.direct
        if direct is not None and item is not None and not self.queue and direct(item):
            return
        super().put(item, block, timeout)

    def _init(self, maxsize):
        super()._init(maxsize)
        self.bytes = 0
        self._batch = 0
        self._closing = False

    # _put and _get run under the queue's mutex; a set's add and discard
    # are single steps, so the shared set needs no lock of its own.
    def _put(self, item):
        if item is None:
            # Engine.IO closes a session by queueing None: from now on its
            # bytes are no one's backlog.
            self._closing = True
            if self.backlogged is not None:
                self.backlogged.discard(self)
        else:
            self.bytes += packet_size(item)
            if self.backlogged is not None and not self._closing:
                self.backlogged.add(self)
        super()._put(item)

    def _get(self):
        item = super()._get()
        self.bytes -= packet_size(item)
        if self.bytes <= 0 and self.backlogged is not None:
            self.backlogged.discard(self)
        return item

    def get(self, block=True, timeout=None):
        if block and self.direct is not None:
            # Engine.IO's writer gives up, and closes the WebSocket, when
            # nothing came to its queue for ping_interval + ping_timeout.
            # With packets written directly (its heartbeats included) the
            # queue of a healthy connection stays empty: an idle viewer
            # would be cut off every 45 s. Closing the session queues None,
            # which ends this wait; a client gone quiet is closed by
            # Engine.IO's heartbeat check, as before.
            timeout = None
        if not block:
            with self.mutex:
                if self.queue and self._batch + packet_size(self.queue[0]) > WRITE_BATCH_BYTES:
                    # Ends the writer's batch here; the rest waits, counted.
                    self._batch = 0
                    raise queue.Empty
        item = super().get(block, timeout)
        # A blocking get starts the writer's next batch.
        self._batch = packet_size(item) + (0 if block else self._batch)
        return item
