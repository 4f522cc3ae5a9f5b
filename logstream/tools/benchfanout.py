"""Fan-out and idle benchmarks: many viewers of one deployment, and many quiet ones.

Viewers are lean clients, many to a client process (one thread each,
reading every socket through a selector), so a few processes hold
thousands of connections. frontail runs the same fan-out when its
`frontail` command is found (``--frontail PATH``, or on PATH).
"""

import hashlib
import os
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack

import psutil

from logstream.support.host import free_port
from logstream.support.processes import ChildProcess, answers
from logstream.support.waiting import wait_until
from logstream.tools.bench import percentiles
from logstream.tools.benchjobs import stamped_line
from logstream.tools.benchpool import ClientPool, write_at_rate, write_burst
from logstream.tools.benchtarget import BenchError, Sampler, Target, snapshot
from logstream.tools.leanclient import LeanClient

JOIN_TIMEOUT = 300.0
STALL_SECONDS = 10.0
# How long the idle scenario keeps its viewers after they have joined: past
# Engine.IO's heartbeat timeout (ping_interval 25 s + ping_timeout 20 s).
IDLE_HOLD_SECONDS = 50.0
# Threads and descriptors "back at baseline" after the viewers leave: at most this many above it.
BASELINE_SLACK = 2
FRONTAIL_CANDIDATES = ("frontail",)  # scripts/system-deps.sh installs frontail@4.9.2 from npm


def find_frontail(path=None):
    """Return the frontail command to run, or None when there is none (or no Node)."""
    if not shutil.which("node"):
        return None
    for candidate in ((path,) if path else FRONTAIL_CANDIDATES):
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    return None


def start_frontail(command, log_path, folder):
    """Start frontail following log_path; return (target, namespace its viewers join)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    child = ChildProcess("frontail", [command, "--host", "127.0.0.1", "--port", port,
                                      "--number", "0", "--disable-usage-stats", log_path],
                         os.path.join(folder, ".frontail.out"), ready=lambda: answers(url))
    try:
        child.start(30)
    except (TimeoutError, RuntimeError) as error:
        raise BenchError(f"frontail did not start: {error}\n{child.output()}")
    target = Target("frontail", url, folder, psutil.Process(child.pid), child)
    # frontail names its one room after the files it follows.
    return target, "/" + hashlib.md5(log_path.encode()).hexdigest()


def _shares(total, parts):
    return [n for n in (total // parts + (1 if i < total % parts else 0)
                        for i in range(parts)) if n]


def fanout(target, pool, viewers, lines, rate, deflate=True, namespace=None, path=None,
           deployment_id=None):
    """Join `viewers` to one log, write `lines` stamped lines at `rate` (0: as one burst), and check every delivery."""
    process = target.process
    before = snapshot(process) if process else None
    writing = lines / rate if rate else 0  # a burst: as fast as the writer goes
    jobs = [{"kind": "fanout", "url": target.url, "deployment_id": deployment_id,
             "namespace": namespace, "count": share, "expect": lines, "deflate": deflate,
             "timeout": writing + 120, "stall": STALL_SECONDS}
            for share in _shares(viewers, len(pool.workers))]
    started = time.perf_counter()
    conns, infos = pool.start(jobs, timeout=JOIN_TIMEOUT)
    join_seconds = time.perf_counter() - started
    joined = snapshot(process) if process else None
    with Sampler(process) as sampler:
        written_ns = time.time_ns()
        writer = threading.Thread(target=write_at_rate, args=(path, lines, rate)) if rate \
            else threading.Thread(target=write_burst, args=(path, lines))
        writer.start()
        results = pool.collect(conns, writing + 180)
        writer.join()
    left = _back_to_baseline(process, before)
    delivered = sum(r["received"] for r in results)
    last_ns = max((r["last_ns"] or written_ns) for r in results)
    summary = {
        "design": target.design, "viewers": sum(i["joined"] for i in infos),
        "lines": lines, "rate": rate, "deliveries": delivered,
        "deliveries_per_s": round(delivered / max(1e-9, (last_ns - written_ns) / 1e9)),
        "join_seconds": round(join_seconds, 3),
        # Write to arrival at the viewer's socket, and to the viewer process having read it.
        "arrival_ms": percentiles([x for r in results for x in r["arrivals_ns"]]),
        "latency_ms": percentiles([x for r in results for x in r["latencies_ns"]]),
        "min_received": min(r["min_received"] for r in results),
        "server": sampler.result, "before": before, "joined": joined,
        "seconds_to_baseline": left,
    }
    for name in ("lost", "duplicates", "out_of_order", "malformed", "misnumbered"):
        summary[name] = sum(r[name] for r in results)
    return summary


def _back_to_baseline(process, before, timeout=30.0):
    """Return how long after the viewers left the server's threads and descriptors took to come back, or None."""
    if process is None or before is None:
        return None

    def back():
        now = snapshot(process)
        return (now["threads"] <= before["threads"] + BASELINE_SLACK
                and (before["fds"] is None or now["fds"] <= before["fds"] + BASELINE_SLACK))

    started = time.perf_counter()
    try:
        wait_until(back, timeout=timeout, interval=0.05,
                   what="threads and descriptors back at baseline")
    except TimeoutError:
        return None
    return round(time.perf_counter() - started, 2)


def idle(target, pool, viewers, deployment_id, deflate=True, probes=10, hold=IDLE_HOLD_SECONDS):
    """Hold `viewers` quiet joined viewers for `hold` seconds; time /healthz and a new viewer's first line meanwhile.

    Viewers answer Engine.IO's heartbeats as browser tabs do; the report
    counts any the server closed all the same (``dropped``).
    """
    import httpx

    process = target.process
    before = snapshot(process) if process else None
    jobs = [{"kind": "idle", "url": target.url, "deployment_id": deployment_id,
             "count": share, "deflate": deflate}
            for share in _shares(viewers, len(pool.workers))]
    started = time.perf_counter()
    conns, held = pool.start(jobs, timeout=JOIN_TIMEOUT)
    join_seconds = time.perf_counter() - started
    after = snapshot(process) if process else None
    healthz, first_line = [], []
    probe_id = deployment_id + "-probe"
    path = os.path.join(target.data_dir, probe_id + ".log")
    open(path, "wb").close()
    with httpx.Client() as http:
        for seq in range(probes):
            t0 = time.perf_counter_ns()
            http.get(target.url + "/healthz").raise_for_status()
            healthz.append(time.perf_counter_ns() - t0)
            first_line.append(_first_line_ns(target.url, probe_id, path, seq, deflate))
    held_for = time.perf_counter() - started - join_seconds
    if held_for < hold:
        time.sleep(hold - held_for)  # idle is the point: nothing to wait for but time
    held_for = time.perf_counter() - started - join_seconds
    for conn in conns:
        conn.send("stop")
    results = pool.collect(conns, 120)
    return {"design": target.design, "viewers": sum(held), "join_seconds": round(join_seconds, 2),
            "held_seconds": round(held_for, 1),
            "dropped": sum(result["dropped"] for result in results),
            "before": before, "after": after, "healthz_ms": percentiles(healthz),
            "first_line_ms": percentiles(first_line),
            "seconds_to_baseline": _back_to_baseline(process, before)}


def _first_line_ns(url, deployment_id, path, seq, deflate):
    """Connect a new viewer, join, write one line; return connect-to-line time in ns."""
    started = time.perf_counter_ns()
    client = LeanClient(url, deflate=deflate)
    try:
        client.join(deployment_id, batch=True)
        with open(path, "a") as log:
            log.write(stamped_line(seq))
        marker = f" {seq:010d} ".encode()
        while marker not in client.recv_text():
            pass
        return time.perf_counter_ns() - started
    finally:
        client.close(timeout=0.2)


def run_fanout(viewers=1000, lines=300, rate=100.0, processes=4, deflate=True,
               frontail=None, idle_viewers=0, url=None, data_dir=None, server_options=(),
               hold=IDLE_HOLD_SECONDS):
    """Run the fan-out scenario (and the idle one when idle_viewers) against logstream and frontail.

    ``server_options`` are more `logstream serve` options for the server it starts.
    """
    from logstream.support.host import machine

    report = {"machine": machine(), "settings": {
        "viewers": viewers, "lines": lines, "rate": rate, "client_processes": processes,
        "deflate": deflate, "idle_viewers": idle_viewers, "hold_seconds": hold},
        "fanout": [], "idle": None}
    frontail_command = find_frontail(frontail) if frontail is not False else None
    report["settings"]["frontail"] = frontail_command
    with ExitStack() as stack:
        temp = tempfile.mkdtemp(prefix="logstream-fanout-")
        stack.callback(shutil.rmtree, temp, ignore_errors=True)
        pool = ClientPool(processes)
        stack.callback(pool.close)
        if url:
            target = Target.existing(url, data_dir)
        else:
            # Room for every viewer and the probes, past the default cap if need be.
            target = Target.start("logstream", temp, options=(
                "--max-connections", max(viewers, idle_viewers) + 100, *server_options))
            stack.callback(target.stop)
        if viewers:
            deployment_id = f"fanout-{os.getpid()}"
            path = os.path.join(target.data_dir, deployment_id + ".log")
            open(path, "wb").close()
            report["fanout"].append(fanout(target, pool, viewers, lines, rate, deflate,
                                           path=path, deployment_id=deployment_id))
            if frontail_command:
                folder = os.path.join(temp, "frontail")
                os.makedirs(folder)
                path = os.path.join(folder, "frontail.log")
                open(path, "wb").close()
                other, namespace = start_frontail(frontail_command, path, folder)
                try:
                    report["fanout"].append(fanout(other, pool, viewers, lines, rate, deflate,
                                                   namespace=namespace, path=path))
                finally:
                    other.stop()
        if idle_viewers:
            deployment_id = f"idle-{os.getpid()}"
            open(os.path.join(target.data_dir, deployment_id + ".log"), "wb").close()
            report["idle"] = idle(target, pool, idle_viewers, deployment_id, deflate, hold=hold)
    return report


def format_fanout(report):
    """Return the fan-out report as text for a terminal."""
    m = report["machine"]
    scenario = "fanout" if report["fanout"] else "idle"
    out = [f"logstream bench --scenario {scenario}: {m['cpus']} CPUs ({m['cpu_model']}), "
           f"load {m['load_average']}, {report['settings']['client_processes']} client processes"]
    for s in report["fanout"]:
        lat, srv = s["latency_ms"] or {}, s["server"] or {}
        arr = s["arrival_ms"] or {}
        joined = s["joined"] or {}
        out.append(
            f"{s['design']}: {s['viewers']} viewers x {s['lines']} lines "
            f"{'@' + format(s['rate'], 'g') + '/s' if s['rate'] else 'in one burst'}: "
            f"{s['deliveries']:,} delivered ({s['deliveries_per_s']:,}/s), lost {s['lost']}, "
            f"dup {s['duplicates']}, ooo {s['out_of_order'] + s['misnumbered'] + s['malformed']}; "
            f"joined in {s['join_seconds']} s; arrived p50/p99 {arr.get('p50')}/{arr.get('p99')} ms "
            f"(max {arr.get('max')}), read p50/p99 {lat.get('p50')}/{lat.get('p99')} ms "
            f"(max {lat.get('max')}); server threads {joined.get('threads')} joined, "
            f"peak {srv.get('threads_peak')}, RSS peak {srv.get('rss_mb_peak')} MB, "
            f"cpu {srv.get('cpu_percent')}%; threads and fds at baseline "
            f"{s['seconds_to_baseline']} s after the viewers left")
    idle_report = report["idle"]
    if idle_report:
        before, after = idle_report["before"] or {}, idle_report["after"] or {}
        out.append(
            f"{idle_report['design']}: {idle_report['viewers']} idle viewers (joined in "
            f"{idle_report['join_seconds']} s, held {idle_report['held_seconds']} s, "
            f"{idle_report['dropped']} dropped by the server): threads {before.get('threads')} -> "
            f"{after.get('threads')}, RSS {before.get('rss_mb')} -> {after.get('rss_mb')} MB; "
            f"/healthz p50/max {idle_report['healthz_ms']['p50']}/{idle_report['healthz_ms']['max']} ms; "
            f"new viewer's first line p50/max {idle_report['first_line_ms']['p50']}/"
            f"{idle_report['first_line_ms']['max']} ms; threads and fds at baseline "
            f"{idle_report['seconds_to_baseline']} s after they left")
    return "\n".join(out)
