"""What a fan-out client process runs: many lean viewers of one deployment on one thread."""

import json
import selectors
import time

from logstream.tools.benchjobs import SEQ_DIGITS, STAMP_DIGITS
from logstream.tools.leanclient import LeanClient, WireError

BATCH_PREFIX = b'42["log_batch",'
FRONTAIL_EVENT = b',["line",'
# Every viewer of a room receives the same bytes; parse each message once per process.
CACHE_SIZE = 4096


def _parse(message):
    """Return [(seq, stamp_ns, line number)] of a log_batch (or frontail line) message; None items are malformed."""
    if not message.startswith(BATCH_PREFIX):  # frontail: 42/<namespace>,["line","text"]
        text = json.loads(message[message.index(b",") + 1:])[1]
        return [(int(text[STAMP_DIGITS + 1:STAMP_DIGITS + 1 + SEQ_DIGITS]),
                 int(text[:STAMP_DIGITS]), None)]
    items = []
    for item in json.loads(message[2:])[1]["lines"]:
        try:
            text = item["message"]
            items.append((int(text[STAMP_DIGITS + 1:STAMP_DIGITS + 1 + SEQ_DIGITS]),
                          int(text[:STAMP_DIGITS]), item["line"]))
        except (KeyError, ValueError, TypeError):
            items.append(None)
    return items


class Viewer:
    """One connected viewer and what it has seen."""

    __slots__ = ("client", "seen", "received", "duplicates", "out_of_order", "malformed",
                 "misnumbered", "highest", "done")

    def __init__(self, client, expect):
        self.client = client
        self.seen = bytearray(expect)
        self.received = self.duplicates = self.out_of_order = 0
        self.malformed = self.misnumbered = 0
        self.highest = -1
        self.done = False


def fanout_job(job, conn):
    """Join `count` viewers to one deployment, then check and time every line each receives."""
    expect, url, deflate = job["expect"], job["url"], job["deflate"]
    namespace = job.get("namespace")  # frontail: every viewer of its one file joins it
    started = time.perf_counter()
    viewers = []
    for _ in range(job["count"]):
        if namespace:
            client = LeanClient(url, deflate=deflate, eio=3, namespace=namespace)
        else:
            client = LeanClient(url, deflate=deflate)
            reply = client.join(job["deployment_id"], batch=True)
            if reply and isinstance(reply[0], dict) and "error" in reply[0]:
                raise RuntimeError(f"start_streaming was refused: {reply[0]['message']}")
        viewers.append(Viewer(client, expect))
    conn.send(("ready", {"joined": len(viewers),
                         "join_seconds": round(time.perf_counter() - started, 3)}))

    # Each line's time from its write to its arrival at the viewer's socket
    # (the kernel's stamp) and to the moment this process had read it.
    cache, arrivals, latencies = {}, [], []
    first_ns = last_ns = None
    selector = selectors.DefaultSelector()
    for viewer in viewers:
        viewer.client.stamp_arrivals()
        selector.register(viewer.client.sock, selectors.EVENT_READ, viewer)
    remaining = len(viewers)
    deadline = time.monotonic() + job["timeout"]
    heard = time.monotonic()
    while remaining and time.monotonic() < deadline and time.monotonic() - heard < job["stall"]:
        for key, _ in selector.select(0.5):
            viewer = key.data
            heard = time.monotonic()
            try:
                viewer.client._fill()
                messages = []
                while (message := viewer.client.recv_text(block=False)) is not None:
                    messages.append(message)
            except (OSError, WireError):
                messages, viewer.done = [], True
            now, arrived = time.time_ns(), viewer.client.arrived_ns
            for message in messages:
                if not (message.startswith(BATCH_PREFIX) or FRONTAIL_EVENT in message[:80]):
                    continue
                key_bytes = bytes(message)
                items = cache.get(key_bytes)
                if items is None:
                    if len(cache) >= CACHE_SIZE:
                        cache.clear()
                    items = cache[key_bytes] = _parse(key_bytes)
                first_ns = first_ns or now
                last_ns = now
                for item in items:
                    if item is None or not 0 <= item[0] < expect:
                        viewer.malformed += 1
                        continue
                    seq, stamp, number = item
                    if viewer.seen[seq]:
                        viewer.duplicates += 1
                        continue
                    viewer.seen[seq] = 1
                    viewer.received += 1
                    if seq < viewer.highest:
                        viewer.out_of_order += 1
                    else:
                        viewer.highest = seq
                    if number is not None and number != seq + 1:
                        viewer.misnumbered += 1
                    arrivals.append(arrived - stamp)
                    latencies.append(now - stamp)
            if viewer.done or viewer.received >= expect:
                viewer.done = True
                selector.unregister(viewer.client.sock)
                remaining -= 1
    selector.close()
    result = {"clients": len(viewers), "received": sum(v.received for v in viewers),
              "min_received": min((v.received for v in viewers), default=0),
              "first_ns": first_ns, "last_ns": last_ns, "latencies_ns": latencies,
              "arrivals_ns": arrivals}
    for name in ("duplicates", "out_of_order", "malformed", "misnumbered"):
        result[name] = sum(getattr(v, name) for v in viewers)
    result["lost"] = expect * len(viewers) - result["received"]
    for viewer in viewers:
        viewer.client.close(timeout=0.2)
    return result
