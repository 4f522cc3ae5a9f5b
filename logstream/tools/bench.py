"""Benchmark the streaming path end to end, against a naive baseline in the same run.

The server runs in its own process (so its CPU and memory can be read
apart), clients run in their own processes (so they are not the
bottleneck), and the writer appends wall-clock-stamped lines to a real log
file. Every line is checked on arrival: lost, duplicated, out of order.
"""

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import ExitStack

import click

from logstream.support.host import machine
from logstream.support.stats import percentiles as nearest_rank
from logstream.tools.benchpool import LINE_BYTES, ClientPool, write_at_rate, write_burst
from logstream.tools.benchreport import format_report, headline
from logstream.tools.benchtarget import BenchError, Sampler, Target, snapshot

__all__ = ["BenchError", "format_report", "run_bench"]

SETTLE_SECONDS = 0.2      # lets a naive tailer open the file before lines arrive
STALL_SECONDS = 5.0       # a client that hears nothing this long stops and counts losses
PING_INTERVAL = 0.02


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
            "mode": "naive (new_log per line)" if self.target.design == "naive"
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


def run_bench(url=None, data_dir=None, clients=10, burst=200_000, line_burst=20_000,
              rate=100.0, duration=4.0, mode="both", baseline="naive", idle_clients=200,
              deflate=True, progress=None):
    """Run the benchmark and return its report as a dict.

    Without ``url`` a ``logstream serve`` process is started on a free port;
    with it, ``data_dir`` must be the folder that server reads. ``baseline``
    "naive" starts the naive server too and runs the same scenarios
    against it, interleaved, so both see the same machine load.
    """
    from tqdm import tqdm

    modes = {"batch": ("batch",), "lines": ("lines",), "both": ("batch", "lines")}[mode]
    designs = ["logstream"] + (["naive"] if baseline == "naive" else [])
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
    report["headline"] = headline(report["scenarios"], clients, rate)
    return report


@click.command()
@click.option("--url", help="Benchmark this running logstream server instead of starting one.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="With --url: the folder that server reads <deployment>.log files from.")
@click.option("--scenario", default="default", show_default=True,
              type=click.Choice(["default", "fanout", "idle"]),
              help="default: the streaming scenarios; fanout: --clients viewers of one "
                   "deployment while --fanout-lines lines are written at --rate (frontail "
                   "too when it is installed); idle: --clients quiet joined viewers.")
@click.option("--clients", default=10, show_default=True, type=click.IntRange(1, 20_000),
              help="Client processes for the many-clients bursts (at most 64); viewers "
                   "for the fanout and idle scenarios.")
@click.option("--fanout-lines", default=300, show_default=True, type=click.IntRange(min=1),
              help="Lines written in the fanout scenario.")
@click.option("--client-processes", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Processes sharing the fanout and idle scenarios' viewers.")
@click.option("--frontail", "frontail", default=None,
              help="The frontail command to run the fanout scenario against too "
                   "(default: found on PATH when Node is installed); 'none' to skip it.")
@click.option("--burst", default=200_000, show_default=True, type=click.IntRange(min=0),
              help="Lines written at once for log_batch bursts (0 skips them).")
@click.option("--line-burst", default=20_000, show_default=True, type=click.IntRange(min=0),
              help="Lines written at once for per-line new_log bursts, ours and the naive design's.")
@click.option("--rate", default=100.0, show_default=True, type=click.FloatRange(min=0),
              help="Lines per second for the latency run (0 skips it) and the fanout "
                   "scenario (0 writes its lines in one burst, 1,000 a write).")
@click.option("--duration", default=4.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds the latency run writes for.")
@click.option("--mode", default="both", show_default=True,
              type=click.Choice(["batch", "lines", "both"]),
              help="Which events to measure: log_batch, per-line new_log, or both.")
@click.option("--baseline", default="naive", show_default=True, type=click.Choice(["naive", "none"]),
              help="Also run the naive design (100 ms polling, an emit per line) in this run.")
@click.option("--idle-clients", default=200, show_default=True, type=click.IntRange(min=0),
              help="Connected quiet clients for the idle-cost measurement (0 skips it).")
@click.option("--hold", default=50.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds the idle scenario keeps its viewers connected once they have "
                   "joined (the default outlasts Engine.IO's 45 s heartbeat timeout).")
@click.option("--deflate/--no-deflate", default=True, show_default=True,
              help="Offer permessage-deflate, as browsers do.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench(url, data_dir, scenario, clients, fanout_lines, client_processes, frontail, burst,
          line_burst, rate, duration, mode, baseline, idle_clients, hold, deflate, as_json):
    """Measure lines/s, latency, losses and server cost, against the naive design."""
    if data_dir and not url:
        raise click.UsageError("--data-dir goes with --url; without it the benchmark "
                               "starts its own server in a temporary folder.")
    if scenario != "default":
        from logstream.tools.benchfanout import format_fanout, run_fanout

        try:
            report = run_fanout(
                viewers=clients if scenario == "fanout" else 0, lines=fanout_lines,
                rate=rate, processes=client_processes, deflate=deflate,
                frontail=False if frontail == "none" else frontail,
                idle_viewers=clients if scenario == "idle" else 0, url=url, data_dir=data_dir,
                hold=hold)
        except BenchError as error:
            raise click.ClickException(str(error))
        click.echo(json.dumps(report, indent=2) if as_json else format_fanout(report))
        return
    if clients > 64:
        raise click.UsageError("--clients is at most 64 client processes in the default "
                               "scenario; use --scenario fanout for many viewers.")
    try:
        report = run_bench(url=url, data_dir=data_dir, clients=clients, burst=burst,
                           line_burst=line_burst, rate=rate, duration=duration, mode=mode,
                           baseline=baseline, idle_clients=idle_clients, deflate=deflate)
    except BenchError as error:
        raise click.ClickException(str(error))
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
