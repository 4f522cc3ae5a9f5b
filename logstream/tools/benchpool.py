"""The benchmark's client processes and its log writers."""

import multiprocessing
import os
import time
from multiprocessing.connection import wait as wait_for_conns

from logstream.tools.benchjobs import (SEQ_DIGITS, STAMP_DIGITS, line_bodies, stamped_line,
                                       worker_main)
from logstream.tools.benchtarget import BenchError

LINE_BYTES = 100
WRITE_CHUNK_LINES = 1000


class ClientPool:
    """Client processes that take jobs (follow, ping, idle) over pipes."""

    def __init__(self, size):
        context = multiprocessing.get_context("spawn")
        self.workers = []
        for _ in range(size):
            parent, child = context.Pipe()
            process = context.Process(target=worker_main, args=(child,), daemon=True)
            process.start()
            child.close()
            self.workers.append((process, parent))

    def start(self, jobs, timeout=30.0):
        """Give job i to worker i and wait until every client is ready."""
        conns = []
        for (_, conn), job in zip(self.workers, jobs):
            conn.send(job)
            conns.append(conn)
        infos = []
        for conn in conns:
            if not conn.poll(timeout):
                raise BenchError(f"A {jobs[0]['kind']} client did not connect in {timeout} s.")
            kind, info = conn.recv()
            if kind == "error":
                raise BenchError(info)
            infos.append(info)
        return conns, infos

    def collect(self, conns, timeout, on_progress=None):
        """Return each worker's result, passing progress reports to on_progress."""
        results = [None] * len(conns)
        progress = [0] * len(conns)
        waiting = dict(enumerate(conns))
        deadline = time.monotonic() + timeout
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{len(waiting)} client(s) gave no result in {timeout:.0f} s.")
            for conn in wait_for_conns(list(waiting.values()), timeout=min(left, 0.5)):
                i = conns.index(conn)
                kind, value = conn.recv()
                if kind == "progress":
                    if on_progress:
                        on_progress(value - progress[i])
                    progress[i] = value
                elif kind == "error":
                    raise BenchError(value)
                else:
                    if on_progress and "received" in value:
                        on_progress(value["received"] - progress[i])
                    results[i] = value
                    del waiting[i]
        return results

    def close(self):
        for process, conn in self.workers:
            try:
                conn.send(None)
            except OSError:
                pass
        for process, conn in self.workers:
            process.join(2)
            if process.is_alive():
                process.terminate()
                process.join()
            conn.close()


# -- writers -------------------------------------------------------------------

def write_burst(path, count, line_bytes=LINE_BYTES):
    """Append count stamped lines as fast as possible, a chunk per write."""
    # Only the stamp is new per chunk, so the writer outruns the server.
    bodies = line_bodies(line_bytes)
    kinds = len(bodies)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        for start in range(0, count, WRITE_CHUNK_LINES):
            stamp = f"{time.time_ns():0{STAMP_DIGITS}d} "
            chunk = "".join([f"{stamp}{seq:0{SEQ_DIGITS}d} {(seq * 2654435761) & 0xFFFFFFFF:08x} "
                             f"{bodies[seq % kinds]}\n"
                             for seq in range(start, min(start + WRITE_CHUNK_LINES, count))])
            os.write(fd, chunk.encode())
    finally:
        os.close(fd)


def write_at_rate(path, count, rate, line_bytes=LINE_BYTES):
    """Append count stamped lines, one write each, rate lines per second."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    started = time.perf_counter()
    try:
        for seq in range(count):
            delay = started + seq / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            os.write(fd, stamped_line(seq, line_bytes).encode())
    finally:
        os.close(fd)
