"""Measure total deliveries per second with one and with two web workers behind one shipper.

Run from the repository root: ``.venv/bin/python docs/scaling_bench.py``
(options: ``--clients 40 --lines 5000 --runs 3``). It starts a throwaway
redis-server, a shipper and the workers as subprocesses, connects the
clients (split evenly over the workers, in two client processes, one
WebSocket each) with ``since: 0``, writes the lines into one log as fast as
it can, and times from the first write until every client has the last
line. deliveries/s = clients x lines / that time. Everything runs on this
one machine, clients included.
"""

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout: use its logstream

from logstream.scale.topology import Topology, redis_server_path  # noqa: E402


def follow(url, deployment_id, last, batch, done):
    """Connect one raw WebSocket client and count lines until `last` arrives."""
    ws = websocket.create_connection(
        url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket")
    ws.recv()
    ws.send("40")
    ws.recv()
    ws.send("421" + json.dumps(["start_streaming", {"deployment_id": deployment_id,
                                                    "since": 0, "batch": batch}]))
    done["ready"].release()
    count = 0
    while count < last:
        frame = ws.recv()
        if frame == "2":
            ws.send("3")
        elif frame.startswith('42["new_log"'):
            count += 1
        elif frame.startswith('42["log_batch"'):
            count += frame.count('"line":')
    done["ends"].append(time.time())
    ws.close()


def client_process(urls, deployment_id, last, batch, ready, results):
    """Run one thread per client; report readiness, then every client's finishing time."""
    done = {"ready": threading.Semaphore(0), "ends": []}
    threads = [threading.Thread(target=follow, args=(url, deployment_id, last, batch, done),
                                daemon=True) for url in urls]
    for thread in threads:
        thread.start()
    for _ in threads:
        done["ready"].acquire()
    ready.put(len(threads))
    for thread in threads:
        thread.join()
    results.put(done["ends"])


def measure(workers, clients, lines, batch, tmp):
    data_dir = Path(tempfile.mkdtemp(dir=tmp))
    with Topology(data_dir, workers=workers) as topology:
        urls = topology.worker_urls
        path = data_dir / "bench.log"
        path.write_text("")
        time.sleep(1.0)  # let the shipper find the file (it looks every 0.5 s)
        assigned = [urls[i % workers] for i in range(clients)]
        ready, results = multiprocessing.Queue(), multiprocessing.Queue()
        children = [multiprocessing.Process(
            target=client_process, args=(assigned[i::2], "bench", lines, batch, ready, results))
            for i in range(2)]
        for child in children:
            child.start()
        for _ in children:
            ready.get(timeout=60)
        time.sleep(0.5)  # every start_streaming answered and in its room
        started = time.time()
        with open(path, "a") as fp:
            for first in range(1, lines + 1, 50):
                fp.write("".join(f"bench line {n} " + "x" * 60 + "\n"
                                 for n in range(first, min(first + 50, lines + 1))))
                fp.flush()
        ends = results.get(timeout=300) + results.get(timeout=300)
        for child in children:
            child.join(10)
        return clients * lines / (max(ends) - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch", action="store_true",
                        help="log_batch (one event per read) instead of new_log per line")
    args = parser.parse_args()
    if redis_server_path() is None:
        sys.exit("redis-server is not installed (Debian: apt-get install redis-server).")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"{args.clients} clients, {args.lines} lines, "
              f"{'log_batch' if args.batch else 'new_log'}")
        rates = {1: [], 2: []}
        for _ in range(args.runs):
            # Alternate, so a change in the machine's load hits both alike.
            for workers in (1, 2):
                rate = measure(workers, args.clients, args.lines, args.batch, tmp)
                rates[workers].append(rate)
                print(f"workers={workers} deliveries/s={rate:,.0f}", flush=True)
        for workers, found in rates.items():
            print(f"median with {workers} worker(s): {statistics.median(found):,.0f}/s")


if __name__ == "__main__":
    main()
