"""What the benchmark's client processes run: stamped lines, and jobs that stream, ping or idle."""

import functools
import json
import socket
import time

from logstream.tools.leanclient import LeanClient, WireError

STAMP_DIGITS = 19   # time.time_ns() until the year 2286
SEQ_DIGITS = 10
PROGRESS_SECONDS = 0.25
# How often idle viewers that have joined are read while the rest join.
IDLE_READ_SECONDS = 1.0
MAX_SAMPLES = 50_000


# Log-like text after the stamp, so compression sees something like real logs.
BODIES = (
    "INFO  [clone] Receiving objects: 41% (168/410)",
    "INFO  [install] Collecting requests>=2.3",
    "INFO  [build] Step 4/10 : RUN pip install -r requirements.txt",
    "INFO  [test] tests/test_orders.py::test_case_17 PASSED",
    "WARN  [health] Health check 3/10: GET /healthz took 1240ms",
    "INFO  [deploy] Replica 2/3 is running",
    "ERROR [test] tests/test_users.py::test_case_9 FAILED",
    "INFO  [health] Health check 7/10: GET /healthz 200 OK (12ms)",
)
HEAD_BYTES = STAMP_DIGITS + 1 + SEQ_DIGITS + 1 + 8 + 1


@functools.lru_cache(maxsize=8)
def line_bodies(line_bytes):
    """Return the bodies padded so every line is line_bytes long, newline included."""
    width = max(1, line_bytes - HEAD_BYTES - 1)
    return tuple(body[:width].ljust(width) for body in BODIES)


def stamped_line(seq, line_bytes=100, stamp_ns=None):
    """Return one benchmark line: wall-clock stamp, sequence number, a request id, log text."""
    bodies = line_bodies(line_bytes)
    return (f"{stamp_ns or time.time_ns():0{STAMP_DIGITS}d} {seq:0{SEQ_DIGITS}d} "
            f"{(seq * 2654435761) & 0xFFFFFFFF:08x} {bodies[seq % len(bodies)]}\n")


def stream_job(job, conn):
    """Follow a deployment, check every stamped line and time it."""
    client = LeanClient(job["url"], deflate=job["deflate"])
    expect = job["expect"]
    seen = bytearray(expect)
    latencies = []
    # Keep at most about MAX_SAMPLES latencies, spread evenly over the run.
    stride = max(1, -(-expect // MAX_SAMPLES))
    state = {"received": 0, "duplicates": 0, "out_of_order": 0, "malformed": 0,
             "misnumbered": 0, "highest": -1, "messages": 0, "bytes": 0,
             "first_ns": None, "last_ns": None}
    stamp_end, seq_start, seq_end = STAMP_DIGITS, STAMP_DIGITS + 1, STAMP_DIGITS + 1 + SEQ_DIGITS

    numbered = job.get("batch") is not None  # the naive design's lines carry no number

    def take(items, now):
        # Bookkeeping in locals: the client must stay cheaper than the server.
        received = duplicates = out_of_order = malformed = misnumbered = 0
        highest = state["highest"]
        for item in items:
            try:
                text = item["message"]
                seq = int(text[seq_start:seq_end])
                if not 0 <= seq < expect:
                    raise ValueError(seq)
                stamp = int(text[:stamp_end]) if seq % stride == 0 else None
            except (KeyError, ValueError, TypeError):
                malformed += 1
                continue
            if seen[seq]:
                duplicates += 1
                continue
            seen[seq] = 1
            received += 1
            if seq < highest:
                out_of_order += 1
            else:
                highest = seq
            if numbered and item.get("line") != seq + 1:
                misnumbered += 1
            if stamp is not None:
                latencies.append(now - stamp)
        state["highest"] = highest
        state["received"] += received
        state["duplicates"] += duplicates
        state["out_of_order"] += out_of_order
        state["malformed"] += malformed
        state["misnumbered"] += misnumbered

    def handle(message):
        now = time.time_ns()
        if not message.startswith(b"42["):
            return
        event, *args = json.loads(message[2:])
        if event == "log_batch":
            take(args[0]["lines"], now)
        elif event == "new_log":
            take(args, now)
        else:
            return
        state["messages"] += 1
        state["bytes"] += len(message)
        if state["first_ns"] is None:
            state["first_ns"] = now
        state["last_ns"] = now

    request = {"deployment_id": job["deployment_id"]}
    if job.get("batch") is not None:
        request["batch"] = job["batch"]
    reply = client.call("start_streaming", request, on_other=handle)
    if reply and isinstance(reply[0], dict) and "error" in reply[0]:
        raise RuntimeError(f"start_streaming was refused: {reply[0]['message']}")
    conn.send(("ready", {"compressed": client.compressed}))
    deadline = time.monotonic() + job["timeout"]
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    client.sock.settimeout(job["stall"])
    next_report = time.monotonic() + PROGRESS_SECONDS
    try:
        while state["received"] < expect and time.monotonic() < deadline:
            handle(client.recv_text())
            if time.monotonic() >= next_report:
                conn.send(("progress", state["received"]))
                next_report = time.monotonic() + PROGRESS_SECONDS
    except (socket.timeout, WireError):
        pass  # stalled or closed: whatever is missing counts as lost
    state["cpu_percent"] = round(100 * (time.process_time() - cpu_started)
                                 / max(1e-9, time.perf_counter() - wall_started), 1)
    client.close()
    state.pop("highest")
    state["lost"] = expect - state["received"]
    state["compressed"] = client.compressed
    state["latencies_ns"] = latencies
    return state


def ping_job(job, conn):
    """Ping the server every interval until told to stop; return the round trips."""
    client = LeanClient(job["url"], deflate=job["deflate"])
    conn.send(("ready", None))
    rtts = []
    n = 0
    while not conn.poll(job["interval"]):
        n += 1
        started = time.perf_counter_ns()
        client.call("ping", n)
        rtts.append(time.perf_counter_ns() - started)
    conn.recv()
    client.close()
    return {"rtts_ns": rtts}


def idle_job(job, conn):
    """Hold connections that follow a quiet deployment until told to let go; count those the server closed."""
    import selectors

    dropped = []

    def read(selector, timeout):
        stopped = False
        for key, _ in selector.select(timeout):
            if key.data is None:
                stopped = True
                continue
            try:
                # Read (and so answer Engine.IO pings) without ever blocking.
                key.data._fill()
                while key.data.recv_text(block=False) is not None:
                    pass
            except (WireError, OSError):
                selector.unregister(key.fileobj)
                dropped.append(key.data)
        return stopped

    selector = selectors.DefaultSelector()
    clients = []
    next_read = time.monotonic() + IDLE_READ_SECONDS
    for _ in range(job["count"]):
        client = LeanClient(job["url"], deflate=job["deflate"])
        client.join(job["deployment_id"])
        clients.append(client)
        selector.register(client.sock, selectors.EVENT_READ, client)
        if time.monotonic() >= next_read:
            # Joining thousands takes longer than a heartbeat: the first
            # ones answer their pings meanwhile, as a browser tab would,
            # instead of all at once when the last has joined.
            read(selector, 0)
            next_read = time.monotonic() + IDLE_READ_SECONDS
    conn.send(("ready", len(clients)))
    selector.register(conn.fileno(), selectors.EVENT_READ, None)
    while not read(selector, None):
        pass
    conn.recv()
    selector.close()
    for client in clients:
        client.close()
    return {"held": len(clients), "dropped": len(dropped)}


def fanout_job(job, conn):
    """Hold many viewers of one deployment and check what each receives."""
    from logstream.tools.fanoutjobs import fanout_job as run

    return run(job, conn)


JOBS = {"stream": stream_job, "ping": ping_job, "idle": idle_job, "fanout": fanout_job}


def worker_main(conn):
    """Run jobs sent by the benchmark until it sends None."""
    while True:
        job = conn.recv()
        if job is None:
            return
        try:
            result = JOBS[job["kind"]](job, conn)
        except Exception as exc:  # reported to the parent, which says which job failed
            conn.send(("error", f"{job['kind']} client: {type(exc).__name__}: {exc}"))
        else:
            conn.send(("result", result))
