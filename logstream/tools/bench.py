"""Benchmark the streaming path end to end, against a seed-style baseline in the same run.

The server runs in its own process (so its CPU and memory can be read
apart), clients run in their own processes (so they are not the
bottleneck), and the writer appends wall-clock-stamped lines to a real log
file. Every line is checked on arrival: lost, duplicated, out of order.
"""

import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from multiprocessing.connection import wait as wait_for_conns
from urllib.parse import urlsplit

import click
import psutil

from logstream.support.host import free_port, machine
from logstream.support.processes import ChildProcess, answers, logstream_command
from logstream.support.stats import percentiles as nearest_rank
from logstream.tools.benchjobs import SEQ_DIGITS, STAMP_DIGITS, line_bodies, stamped_line, worker_main

LINE_BYTES = 100
SETTLE_SECONDS = 0.2      # lets a seed-style tailer open the file before lines arrive
STALL_SECONDS = 5.0       # a client that hears nothing this long stops and counts losses
PING_INTERVAL = 0.02
SAMPLE_SECONDS = 0.05
WRITE_CHUNK_LINES = 1000


class BenchError(RuntimeError):
    """The benchmark could not run; the message says why."""


# -- servers -----------------------------------------------------------------



class Target:
    """A server under test: its url, data directory and process (if known)."""

    def __init__(self, design, url, data_dir, process=None, child=None):
        self.design = design
        self.url = url
        self.data_dir = data_dir
        self.process = process
        self._child = child

    @classmethod
    def start(cls, design, data_dir, timeout=30.0):
        """Start a server process of the given design and wait until it answers."""
        port = free_port()
        if design == "logstream":
            command = logstream_command("serve", "--port", port, "--data-dir", data_dir)
        elif design == "seed":
            command = [sys.executable, "-m", "logstream.tools.baseline_app", "--port", str(port),
                       "--data-dir", str(data_dir)]
        else:
            raise BenchError(f"There is no server design called {design!r}; use logstream or seed.")
        url = f"http://127.0.0.1:{port}"
        child = ChildProcess(f"the {design} server", command,
                             os.path.join(data_dir, f".{design}-server.out"),
                             ready=lambda: answers(url + "/healthz"))
        try:
            child.start(timeout)
        except (TimeoutError, RuntimeError) as error:
            raise BenchError(f"The {design} server did not start: {error}\n{child.output()}")
        return cls(design, url, data_dir, psutil.Process(child.pid), child)

    @classmethod
    def existing(cls, url, data_dir):
        """Describe a server someone else started; find its process by its port."""
        if not data_dir or not os.path.isdir(data_dir):
            raise BenchError("--url needs --data-dir: the folder that server reads its "
                             "<deployment>.log files from, so the benchmark can write to it.")
        target = cls("logstream", url.rstrip("/"), data_dir)
        if not answers(target.url + "/healthz"):
            raise BenchError(f"No logstream server answers at {url}/healthz.")
        port = urlsplit(url).port or 80
        try:
            for conn in psutil.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                    target.process = psutil.Process(conn.pid)
        except psutil.AccessDenied:
            pass  # server CPU and memory will be reported as unknown
        return target

    def stop(self):
        """Stop the server if the benchmark started it."""
        if self._child is not None:
            self._child.stop(signal.SIGINT, timeout=5)


class Sampler:
    """Sample a process's CPU time, memory and threads while a scenario runs."""

    def __init__(self, process):
        self.process = process
        self.rss_peak = self.threads_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        with self.process.oneshot():
            self.rss_peak = max(self.rss_peak, self.process.memory_info().rss)
            self.threads_peak = max(self.threads_peak, self.process.num_threads())

    def _run(self):
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                self._sample()
            except psutil.Error:
                return

    def __enter__(self):
        if self.process is not None:
            times = self.process.cpu_times()
            self._cpu0, self._t0 = times.user + times.system, time.perf_counter()
            self._sample()
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.process is None:
            self.result = None
            return
        self._stop.set()
        self._thread.join()
        times = self.process.cpu_times()
        seconds = time.perf_counter() - self._t0
        self.result = {
            "cpu_percent": round(100 * (times.user + times.system - self._cpu0) / seconds, 1),
            "rss_mb_peak": round(self.rss_peak / 2**20, 1),
            "threads_peak": self.threads_peak,
        }


def snapshot(process):
    """Return a process's memory and thread count now."""
    with process.oneshot():
        return {"rss_mb": round(process.memory_info().rss / 2**20, 1),
                "threads": process.num_threads()}


# -- client processes ----------------------------------------------------------

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


# -- statistics ----------------------------------------------------------------

def percentiles(values_ns):
    """Return p50/p95/p99 and the max of nanosecond values, in ms (nearest rank)."""
    result = nearest_rank(values_ns)
    return result and {key: round(value / 1e6, 3) for key, value in result.items()}




# -- scenarios -----------------------------------------------------------------

class Bench:
    """Run scenarios against one server, sharing client processes between them."""

    def __init__(self, pool, target, deflate, progress):
        self.pool = pool
        self.target = target
        self.deflate = deflate
        self.progress = progress
        self._n = 0

    def _new_log(self):
        self._n += 1
        deployment_id = f"bench-{self.target.design}-{os.getpid()}-{self._n}"
        path = os.path.join(self.target.data_dir, deployment_id + ".log")
        open(path, "wb").close()
        return deployment_id, path

    def stream(self, name, clients, count, batch, rate=None, ping=False):
        """Follow one new log with `clients` clients while `count` lines are written."""
        deployment_id, path = self._new_log()
        timeout = (count / rate if rate else 0) + 120
        jobs = [{"kind": "stream", "url": self.target.url, "deployment_id": deployment_id,
                 "batch": batch if self.target.design == "logstream" else None,
                 "expect": count, "deflate": self.deflate, "timeout": timeout,
                 "stall": STALL_SECONDS} for _ in range(clients)]
        self.progress.set_description(f"{self.target.design}: {name}")
        conns, infos = self.pool.start(jobs)
        ping_conn = None
        if ping:
            [ping_conn], _ = self._start_pinger(clients)
        time.sleep(SETTLE_SECONDS)
        with Sampler(self.target.process) as sampler:
            started_ns = time.time_ns()
            writer = threading.Thread(
                target=write_at_rate if rate else write_burst,
                args=(path, count, rate) if rate else (path, count))
            writer.start()
            results = self.pool.collect(conns, timeout + 10, self.progress.update)
            writer.join()
        pings = None
        if ping_conn is not None:
            ping_conn.send("stop")
            [pinged] = self.pool.collect([ping_conn], 30)
            pings = percentiles(pinged["rtts_ns"])
            if pings:
                pings["count"] = len(pinged["rtts_ns"])
        os.unlink(path)
        return self._summary(name, clients, count, batch, rate, started_ns, results,
                             sampler.result, pings, infos)

    def _start_pinger(self, clients):
        _, conn = self.pool.workers[clients]
        conn.send({"kind": "ping", "url": self.target.url, "deflate": self.deflate,
                   "interval": PING_INTERVAL})
        if not conn.poll(30):
            raise BenchError("The ping client did not connect in 30 s.")
        kind, info = conn.recv()
        if kind == "error":
            raise BenchError(info)
        return [conn], [info]

    def _summary(self, name, clients, count, batch, rate, started_ns, results, server,
                 pings, infos):
        delivered = sum(r["received"] for r in results)
        last_ns = max((r["last_ns"] or started_ns) for r in results)
        seconds = max(1e-9, (last_ns - started_ns) / 1e9)
        latencies = [x for r in results for x in r["latencies_ns"]]
        return {
            "design": self.target.design, "name": name,
            "mode": "seed (new_log per line)" if self.target.design == "seed"
            else ("log_batch" if batch else "new_log"),
            "clients": clients, "lines": count, "rate": rate,
            "deliveries": delivered, "seconds": round(seconds, 3),
            "deliveries_per_s": round(delivered / seconds),
            "per_client_lines_per_s": [
                round(r["received"] / max(1e-9, ((r["last_ns"] or started_ns) - started_ns) / 1e9))
                for r in results],
            "latency_ms": percentiles(latencies),
            "lost": sum(r["lost"] for r in results),
            "duplicates": sum(r["duplicates"] for r in results),
            "out_of_order": sum(r["out_of_order"] for r in results),
            "malformed": sum(r["malformed"] for r in results),
            "misnumbered": sum(r["misnumbered"] for r in results),
            "messages": sum(r["messages"] for r in results),
            "compressed": all(info["compressed"] for info in infos),
            "client_cpu_percent_max": max(r["cpu_percent"] for r in results),
            "server": server, "ping_ms": pings,
        }

    def idle(self, count):
        """Measure what `count` connected, subscribed, quiet clients cost the server."""
        self.progress.set_description(f"{self.target.design}: {count} idle clients")
        deployment_id, path = self._new_log()
        process = self.target.process
        before = snapshot(process) if process else None
        # Every worker but the last holds a share; the last one pings meanwhile.
        holders = len(self.pool.workers) - 1
        shares = [count // holders + (1 if i < count % holders else 0) for i in range(holders)]
        jobs = [{"kind": "idle", "url": self.target.url, "deployment_id": deployment_id,
                 "count": share, "deflate": self.deflate} for share in shares if share]
        conns, held = self.pool.start(jobs, timeout=120)
        time.sleep(1.0)  # let per-connection threads and buffers settle
        after = snapshot(process) if process else None
        [ping_conn], _ = self._start_pinger(holders)
        time.sleep(1.0)
        ping_conn.send("stop")
        [pinged] = self.pool.collect([ping_conn], 30)
        for conn in conns:
            conn.send("stop")
        self.pool.collect(conns, 60)
        os.unlink(path)
        result = {"clients": sum(held), "before": before, "after": after,
                  "ping_ms": percentiles(pinged["rtts_ns"])}
        if before and after:
            result["rss_kb_per_client"] = round(
                (after["rss_mb"] - before["rss_mb"]) * 1024 / max(1, sum(held)), 1)
            result["threads_per_client"] = round(
                (after["threads"] - before["threads"]) / max(1, sum(held)), 2)
        return result


# -- the whole run ---------------------------------------------------------------

TARGETS = (  # from issue 6: (key, description, threshold, higher is better)
    ("batch_one_client", "log_batch lines/s to one client", 300_000, True),
    ("batch_total", "log_batch lines/s in total to ten clients", 400_000, True),
    ("latency_p50", "latency p50 at 100 lines/s (ms)", 1.0, False),
    ("latency_p99", "latency p99 at 100 lines/s (ms)", 5.0, False),
)


def _plan(design, clients, burst, line_burst, rate, duration, modes):
    """Return the (name, clients, count, batch, rate) scenarios for one design."""
    plan = []
    if rate:
        plan.append(("latency", 1, max(1, round(rate * duration)),
                     modes[0] == "batch", rate))
    for mode in (modes if design == "logstream" else ("lines",)):
        count = burst if mode == "batch" and design == "logstream" else line_burst
        if not count:
            continue
        label = "log_batch" if design == "logstream" and mode == "batch" else "new_log"
        plan.append((f"burst {label} x1", 1, count, mode == "batch", None))
        if clients > 1:
            plan.append((f"burst {label} x{clients}", clients, count, mode == "batch", None))
    return plan


def _find(scenarios, design, name_start, clients=None):
    for s in scenarios:
        if s["design"] == design and s["name"].startswith(name_start) and (
                clients is None or s["clients"] == clients):
            return s
    return None


def _headline(scenarios, clients, rate):
    """Pick the numbers the issue asks about, ours and the seed's, with ratios."""
    def get(design, name, key, n=None):
        s = _find(scenarios, design, name, n)
        if s is None:
            return None
        if key.startswith("latency_"):
            return (s["latency_ms"] or {}).get(key.split("_", 1)[1])
        return s[key]

    rows = {
        "batch_one_client": ("logstream", "burst log_batch", "deliveries_per_s", 1),
        "batch_total": ("logstream", "burst log_batch", "deliveries_per_s", clients),
        "lines_one_client": ("logstream", "burst new_log", "deliveries_per_s", 1),
        "lines_total": ("logstream", "burst new_log", "deliveries_per_s", clients),
        "latency_p50": ("logstream", "latency", "latency_p50", None),
        "latency_p99": ("logstream", "latency", "latency_p99", None),
    }
    seed_rows = {
        "one_client": ("seed", "burst new_log", "deliveries_per_s", 1),
        "total": ("seed", "burst new_log", "deliveries_per_s", clients),
        "latency_p50": ("seed", "latency", "latency_p50", None),
        "latency_p99": ("seed", "latency", "latency_p99", None),
    }
    ours = {key: get(*spec) for key, spec in rows.items()}
    seed = {key: get(*spec) for key, spec in seed_rows.items()}

    def ratio(a, b, invert=False):
        if not a or not b:
            return None
        return round(b / a if invert else a / b, 1)

    ratios = {
        "batch_one_client_vs_seed": ratio(ours["batch_one_client"], seed["one_client"]),
        "batch_total_vs_seed": ratio(ours["batch_total"], seed["total"]),
        "lines_one_client_vs_seed": ratio(ours["lines_one_client"], seed["one_client"]),
        "lines_total_vs_seed": ratio(ours["lines_total"], seed["total"]),
        "latency_p50_seed_over_ours": ratio(ours["latency_p50"], seed["latency_p50"], True),
        "latency_p99_seed_over_ours": ratio(ours["latency_p99"], seed["latency_p99"], True),
    }
    targets = []
    for key, text, threshold, higher in TARGETS:
        value = ours.get(key)
        comparable = value is not None and (
            (key == "batch_total" and clients == 10) or key == "batch_one_client"
            or (key.startswith("latency") and rate == 100))
        met = None if not comparable else (value >= threshold if higher else value <= threshold)
        targets.append({"target": text, "threshold": threshold, "value": value, "met": met})
    ours_scenarios = [s for s in scenarios if s["design"] == "logstream"]
    clean = all(s["lost"] == s["duplicates"] == s["out_of_order"] == s["malformed"]
                == s["misnumbered"] == 0 for s in ours_scenarios)
    targets.append({"target": "nothing lost, duplicated or out of order", "threshold": 0,
                    "value": None, "met": clean if ours_scenarios else None})
    return {"logstream": ours, "seed": seed, "ratios": ratios, "targets": targets}


def run_bench(url=None, data_dir=None, clients=10, burst=200_000, line_burst=20_000,
              rate=100.0, duration=4.0, mode="both", baseline="seed", idle_clients=200,
              deflate=True, progress=None):
    """Run the benchmark and return its report as a dict.

    Without ``url`` a ``logstream serve`` process is started on a free port;
    with it, ``data_dir`` must be the folder that server reads. ``baseline``
    "seed" starts the seed-style server too and runs the same scenarios
    against it, interleaved, so both see the same machine load.
    """
    from tqdm import tqdm

    modes = {"batch": ("batch",), "lines": ("lines",), "both": ("batch", "lines")}[mode]
    designs = ["logstream"] + (["seed"] if baseline == "seed" else [])
    plans = {d: _plan(d, clients, burst, line_burst, rate, duration, modes) for d in designs}
    total = sum(n * count for plan in plans.values() for _, n, count, _, _ in plan)
    report = {"machine": machine(), "settings": {
        "clients": clients, "burst": burst, "line_burst": line_burst, "rate": rate,
        "duration": duration, "mode": mode, "baseline": baseline,
        "idle_clients": idle_clients, "deflate": deflate, "line_bytes": LINE_BYTES,
        "url": url}, "scenarios": [], "idle": {}}
    started = time.perf_counter()
    with ExitStack() as stack:
        temp = tempfile.mkdtemp(prefix="logstream-bench-")
        stack.callback(shutil.rmtree, temp, ignore_errors=True)
        bar = stack.enter_context(tqdm(total=total, unit="line", unit_scale=True,
                                       disable=None if progress is None else not progress,
                                       file=sys.stderr, leave=False, mininterval=0.25))
        bar.set_description("starting servers and clients")
        targets = {}
        for design in designs:
            if design == "logstream" and url:
                targets[design] = Target.existing(url, data_dir)
            else:
                folder = os.path.join(temp, design)
                os.makedirs(folder)
                targets[design] = Target.start(design, folder)
                stack.callback(targets[design].stop)
        pool = ClientPool(clients + 1)
        stack.callback(pool.close)
        benches = {design: Bench(pool, target, deflate, bar) for design, target in targets.items()}
        # Interleave the designs scenario by scenario: a noisy neighbour then
        # slows both alike, and the ratios stay fair.
        for step in range(max(len(plan) for plan in plans.values())):
            for design in designs:
                if step < len(plans[design]):
                    report["scenarios"].append(benches[design].stream(*plans[design][step],
                                                                      ping=True))
        if idle_clients:
            for design in designs:
                report["idle"][design] = benches[design].idle(idle_clients)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["headline"] = _headline(report["scenarios"], clients, rate)
    return report


# -- printing ----------------------------------------------------------------------

def _n(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def format_report(report):
    """Return the report as text tables for a terminal."""
    m = report["machine"]
    out = [f"logstream bench: {m['cpus']} CPUs ({m['cpu_model']}), Python {m['python']}, "
           f"load {m['load_average']}, {report['seconds']} s"
           f"{', permessage-deflate offered' if report['settings']['deflate'] else ''}", ""]
    header = ("design", "scenario", "lines", "lines/s total", "min/client", "p50 ms",
              "p95 ms", "p99 ms", "lost", "dup", "ooo", "srv cpu%", "rss MB", "ping p50/p99 ms")
    rows = [header]
    for s in report["scenarios"]:
        lat = s["latency_ms"] or {}
        srv = s["server"] or {}
        ping = s["ping_ms"] or {}
        rows.append((
            s["design"], s["name"] + (f" @{s['rate']:g}/s" if s["rate"] else ""),
            _n(s["lines"]), _n(s["deliveries_per_s"]),
            _n(min(s["per_client_lines_per_s"]) if s["per_client_lines_per_s"] else None),
            _n(lat.get("p50"), 2), _n(lat.get("p95"), 2), _n(lat.get("p99"), 2),
            str(s["lost"]), str(s["duplicates"]), str(s["out_of_order"] + s["malformed"]
                                                       + s["misnumbered"]),
            _n(srv.get("cpu_percent")), _n(srv.get("rss_mb_peak"), 1),
            f"{_n(ping.get('p50'), 2)}/{_n(ping.get('p99'), 2)}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        out.append("  ".join(c.ljust(w) if j < 2 else c.rjust(w)
                             for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    if report["idle"]:
        out.append("")
    for design, idle in report["idle"].items():
        before, after = idle.get("before") or {}, idle.get("after") or {}
        out.append(f"{design}: {idle['clients']} idle clients: RSS {_n(before.get('rss_mb'), 1)}"
                   f" -> {_n(after.get('rss_mb'), 1)} MB ({_n(idle.get('rss_kb_per_client'), 1)}"
                   f" KiB each), threads {before.get('threads', '-')} -> "
                   f"{after.get('threads', '-')} ({_n(idle.get('threads_per_client'), 2)} each), "
                   f"ping p50/p99 {_n((idle['ping_ms'] or {}).get('p50'), 2)}/"
                   f"{_n((idle['ping_ms'] or {}).get('p99'), 2)} ms")
    ratios = report["headline"]["ratios"]
    if any(v is not None for v in ratios.values()):
        out.append("\nagainst the seed's design, same run:")
        for key, value in ratios.items():
            if value is not None:
                out.append(f"  {key.replace('_', ' ')}: {value:g}x")
    out.append("\ntargets (issue 6):")
    for t in report["headline"]["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured here"}[t["met"]]
        value = "" if t["value"] is None else f" {_n(t['value'], 2 if t['value'] < 100 else 0)}"
        out.append(f"  {t['target']} (bar {t['threshold']:,}):{value} - {verdict}")
    return "\n".join(out)


@click.command()
@click.option("--url", help="Benchmark this running logstream server instead of starting one.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="With --url: the folder that server reads <deployment>.log files from.")
@click.option("--clients", default=10, show_default=True, type=click.IntRange(1, 64),
              help="Client processes for the many-clients bursts.")
@click.option("--burst", default=200_000, show_default=True, type=click.IntRange(min=0),
              help="Lines written at once for log_batch bursts (0 skips them).")
@click.option("--line-burst", default=20_000, show_default=True, type=click.IntRange(min=0),
              help="Lines written at once for per-line new_log bursts, ours and the seed's.")
@click.option("--rate", default=100.0, show_default=True, type=click.FloatRange(min=0),
              help="Lines per second for the latency run (0 skips it).")
@click.option("--duration", default=4.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds the latency run writes for.")
@click.option("--mode", default="both", show_default=True,
              type=click.Choice(["batch", "lines", "both"]),
              help="Which events to measure: log_batch, per-line new_log, or both.")
@click.option("--baseline", default="seed", show_default=True, type=click.Choice(["seed", "none"]),
              help="Also run the seed's design (100 ms polling, an emit per line) in this run.")
@click.option("--idle-clients", default=200, show_default=True, type=click.IntRange(min=0),
              help="Connected quiet clients for the idle-cost measurement (0 skips it).")
@click.option("--deflate/--no-deflate", default=True, show_default=True,
              help="Offer permessage-deflate, as browsers do.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench(url, data_dir, clients, burst, line_burst, rate, duration, mode, baseline,
          idle_clients, deflate, as_json):
    """Measure lines/s, latency, losses and server cost, against the seed's design."""
    if data_dir and not url:
        raise click.UsageError("--data-dir goes with --url; without it the benchmark "
                               "starts its own server in a temporary folder.")
    try:
        report = run_bench(url=url, data_dir=data_dir, clients=clients, burst=burst,
                           line_burst=line_burst, rate=rate, duration=duration, mode=mode,
                           baseline=baseline, idle_clients=idle_clients, deflate=deflate)
    except BenchError as error:
        raise click.ClickException(str(error))
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
