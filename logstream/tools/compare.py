"""Measure WebSocket, SSE and long-polling side by side on a live server.

Each transport streams the same kind of lines from its own deployment.
Lines carry their write time, so latency is write → receive in this
process; bytes are counted by a TCP byte counter every client connects through;
CPU is the server process's own (it runs as `logstream serve` in a child
process). The restart scenario kills the server mid-stream and starts it
again on the same port, with readers that resume and readers that don't.
"""

import contextlib
import json
import logging
import os
import signal
import statistics
import tempfile
import time
from pathlib import Path

import click

from logstream.support.host import machine
from logstream.support.waiting import wait_until
from logstream.tools.bytecounter import ByteCounter
from logstream.tools.comparereport import Report, TransportResult, percentiles
from logstream.tools.measure import TRANSPORTS, make_line, server_cpu_reader, start_server_process

SETTLE_SECONDS = 1.0  # a naive reader counts as finished after this long without a line
# The clients log warnings when the server vanishes, which is the point of
# the restart scenario; keep them off the report.
CLIENT_LOGGERS = ("engineio.client", "socketio.client")


@contextlib.contextmanager
def _quiet_clients():
    handler = logging.NullHandler()
    loggers = [logging.getLogger(name) for name in CLIENT_LOGGERS]
    saved = [lg.propagate for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
    try:
        yield
    finally:
        for lg, propagate in zip(loggers, saved):
            lg.removeHandler(handler)
            lg.propagate = propagate


class Writer:
    """Append lines to a deployment's log at a steady rate, several per write."""

    def __init__(self, path, rate, burst, line_bytes, progress=None):
        self.path = Path(path)
        self.rate, self.burst, self.line_bytes = rate, burst, line_bytes
        self.progress = progress
        self.written = 0

    def write(self, count):
        """Write count more lines, pacing the writes; return when done."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            started = time.monotonic()
            done = 0
            while done < count:
                n = min(self.burst, count - done)
                due = started + done / self.rate
                if (delay := due - time.monotonic()) > 0:
                    time.sleep(delay)
                # One write per burst, as a logger flushing its buffer does.
                os.write(fd, "".join(make_line(self.written + i + 1, self.line_bytes)
                                     for i in range(n)).encode())
                self.written += n
                done += n
                if self.progress is not None:
                    self.progress.update(n)
        finally:
            os.close(fd)


def _delivery(reader, sent):
    seqs = [seq for seq, _, _ in reader.received()]
    unique = set(seqs)
    return {"received": len(unique & set(range(1, sent + 1))),
            "lost": sent - len(unique & set(range(1, sent + 1))),
            "duplicated": len(seqs) - len(unique)}


def _measure_setup(name, make_reader, target, data_dir, trials):
    """Return (median set-up seconds, median handshake bytes) over fresh connections."""
    deployment_id = f"cmp-setup-{name}"
    (data_dir / f"{deployment_id}.log").touch()
    seconds, sizes = [], []
    for _ in range(trials):
        counter = ByteCounter(*target)
        reader = make_reader(deployment_id, True).open(counter.url)
        try:
            if not reader.started.wait(10):
                raise RuntimeError(f"{name}: no streaming_started within 10 s")
            up, down, _ = counter.counts()
            seconds.append(reader.setup_seconds())
            sizes.append(up + down)
        finally:
            reader.close()
            counter.close()
    return statistics.median(seconds), int(statistics.median(sizes))


def _measure_stream(name, make_reader, target, data_dir, options, cpu_seconds, progress):
    """Stream options['lines'] lines to one reader; return its TransportResult."""
    lines = options["lines"]
    deployment_id = f"cmp-{name}"
    path = data_dir / f"{deployment_id}.log"
    path.write_bytes(b"")
    counter = ByteCounter(*target)
    reader = make_reader(deployment_id, True).open(counter.url)
    try:
        if not reader.started.wait(10):
            raise RuntimeError(f"{name}: no streaming_started within 10 s")
        up0, down0, conns0 = counter.counts()
        cpu0 = cpu_seconds() if cpu_seconds else None
        Writer(path, options["rate"], options["burst"], options["line_bytes"],
               progress).write(lines)
        with contextlib.suppress(TimeoutError):  # what is missing is counted below
            wait_until(lambda: len({a[0] for a in reader.received()}) >= lines,
                       timeout=15 + lines / options["rate"])
        up1, down1, conns1 = counter.counts()
        cpu1 = cpu_seconds() if cpu_seconds else None
    finally:
        reader.close()
        counter.close()

    first = {}
    for seq, written, received in reader.received():
        first.setdefault(seq, (received - written) / 1e6)
    delivery = _delivery(reader, lines)
    latencies = list(first.values())
    down, up = down1 - down0, up1 - up0
    return TransportResult(
        transport=name, description=TRANSPORTS[name][0], setup_ms=0.0, setup_bytes=0,
        lines_sent=lines, lines_received=delivery["received"],
        duplicates=delivery["duplicated"], missing=delivery["lost"],
        latency_ms=percentiles(latencies),
        bytes_down=down, bytes_up=up,
        bytes_per_line={"down": down / lines, "up": up / lines, "total": (down + up) / lines},
        tcp_connections=conns1 - conns0 + 1,
        server_cpu_ms_per_1000_lines=(None if cpu0 is None
                                      else (cpu1 - cpu0) * 1000 / lines * 1000),
        latencies_ms=latencies)


def _measure_restart(names, server, data_dir, options, progress):
    """Kill and restart the server mid-stream; return {transport: {resume, naive}}."""
    total = options["restart_lines"]
    deployment_id = "cmp-restart"
    path = data_dir / f"{deployment_id}.log"
    path.write_bytes(b"")
    readers = {(name, resume): TRANSPORTS[name][1](deployment_id, resume)
               for name in names for resume in (True, False)}
    for reader in readers.values():
        reader.open(server.url)
    try:
        wait_until(lambda: all(r.started.is_set() for r in readers.values()), 10,
                   what="every reader of the restart scenario to start")
        writer = Writer(path, options["rate"], options["burst"], options["line_bytes"],
                        progress)
        third = total // 3
        writer.write(third)
        server.stop(signal.SIGINT if options["graceful_restart"] else signal.SIGKILL)
        writer.write(third)  # while the server is down
        server.start()
        writer.write(total - 2 * third)
        # Resuming readers must catch up; every reader gets the time to
        # reconnect, unless its client gave up. What is missing is counted below.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: all(len({a[0] for a in r.received()}) >= total or r.gave_up()
                                   for (_, resume), r in readers.items() if resume), 20)
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: all(len(r.starts) > 1 or r.gave_up()
                                   for r in readers.values()), 20)
        _settle(readers.values())
    finally:
        for reader in readers.values():
            reader.close()
    results = {}
    for (name, resume), reader in readers.items():
        delivery = _delivery(reader, total)
        results.setdefault(name, {})["resume" if resume else "naive"] = {
            "lost": delivery["lost"], "duplicated": delivery["duplicated"],
            "reconnected": len(reader.starts) > 1}
    return results


def _settle(readers):
    """Wait until no reader has received a line for SETTLE_SECONDS."""
    counts = None
    while True:
        now = [len(r.received()) for r in readers]
        if now == counts:
            return
        counts = now
        time.sleep(SETTLE_SECONDS)


def run(*, lines=1000, rate=500.0, burst=10, line_bytes=120, transports=tuple(TRANSPORTS),
        restart=True, restart_lines=300, graceful_restart=False, setup_trials=5,
        url=None, data_dir=None, progress=False):
    """Compare the transports on a live server and return a Report.

    Without ``url`` a server is started in a child process (and restarted
    for the restart scenario); with ``url``, ``data_dir`` must be that
    server's data directory, and the restart scenario is skipped.
    """
    from tqdm import tqdm

    unknown = set(transports) - set(TRANSPORTS)
    if unknown:
        raise ValueError(f"unknown transport(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(TRANSPORTS)}.")
    if url and not data_dir:
        raise ValueError("with url, give data_dir: the server's data directory, "
                         "where compare writes its log files.")
    if lines < 1 or rate <= 0 or burst < 1 or line_bytes < 40:
        raise ValueError("lines and burst must be 1 or more, rate above 0, "
                         "line_bytes 40 or more (room for the sequence number and time).")
    options = dict(lines=lines, rate=rate, burst=burst, line_bytes=line_bytes,
                   restart=bool(restart and not url), restart_lines=restart_lines,
                   graceful_restart=graceful_restart, setup_trials=setup_trials,
                   transports=list(transports), url=url)
    restart = options["restart"]
    bar = tqdm(total=lines * len(transports) + (restart_lines if restart else 0),
               unit="line", desc="compare", disable=not progress, leave=False)
    with _quiet_clients(), tempfile.TemporaryDirectory(prefix="logstream-compare-") as scratch:
        server = None
        if url:
            data_dir = Path(data_dir)
            target = _host_port(url)
            cpu_seconds = server_cpu_reader(url)
        else:
            data_dir = Path(data_dir or Path(scratch) / "logs")
            data_dir.mkdir(parents=True, exist_ok=True)
            server = start_server_process(data_dir, Path(scratch) / "server.log")
            target = _host_port(server.url)
            cpu_seconds = server_cpu_reader(server.url)
        try:
            results = []
            for name in transports:
                make_reader = TRANSPORTS[name][1]
                bar.set_description(f"{name}: set-up")
                setup, setup_bytes = _measure_setup(name, make_reader, target, data_dir,
                                                    setup_trials)
                bar.set_description(f"{name}: streaming")
                result = _measure_stream(name, make_reader, target, data_dir, options,
                                         cpu_seconds, bar)
                result.setup_ms, result.setup_bytes = setup * 1000, setup_bytes
                results.append(result)
            if restart:
                bar.set_description("restart")
                for name, outcome in _measure_restart(transports, server, data_dir,
                                                      options, bar).items():
                    next(r for r in results if r.transport == name).restart = outcome
        finally:
            bar.close()
            if server is not None:
                server.stop()
    return Report(machine=machine(), parameters=options, transports=results)


def _host_port(url):
    import httpx
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or 80


@click.command()
@click.option("--lines", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Lines streamed over each transport.")
@click.option("--rate", default=500.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Lines written per second.")
@click.option("--burst", default=10, show_default=True, type=click.IntRange(min=1),
              help="Lines per write to the log (a logger flushing its buffer).")
@click.option("--line-bytes", default=120, show_default=True, type=click.IntRange(min=40),
              help="Size of each line, newline included.")
@click.option("--transport", "transports", multiple=True, type=click.Choice(list(TRANSPORTS)),
              help="Compare only these (repeatable); all by default.")
@click.option("--restart-lines", default=300, show_default=True, type=click.IntRange(min=3),
              help="Lines written during the restart scenario, a third while the server is down.")
@click.option("--graceful/--crash", "graceful_restart", default=False, show_default=True,
              help="Restart with SIGINT (the server closes its connections) or SIGKILL.")
@click.option("--no-restart", is_flag=True, help="Skip the server restart scenario.")
@click.option("--setup-trials", default=5, show_default=True, type=click.IntRange(min=1),
              help="Fresh connections timed for the set-up time (the median is shown).")
@click.option("--url", help="Measure a running server instead of starting one "
                            "(needs --data-dir; skips the restart).")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="With --url, that server's data directory (compare writes cmp-*.log there).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Also draw latencies and bytes per line into this PNG file.")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar on stderr.")
def compare(lines, rate, burst, line_bytes, transports, restart_lines, graceful_restart,
            no_restart, setup_trials, url, data_dir, as_json, plot, progress):
    """Measure WebSocket, SSE and long-polling on a live server, side by side."""
    if url and not data_dir:
        raise click.UsageError("--url needs --data-dir: the server's data directory, "
                               "where compare writes the lines it streams.")
    try:
        report = run(lines=lines, rate=rate, burst=burst, line_bytes=line_bytes,
                     transports=transports or tuple(TRANSPORTS), restart=not no_restart,
                     restart_lines=restart_lines, graceful_restart=graceful_restart,
                     setup_trials=setup_trials, url=url, data_dir=data_dir,
                     progress=progress)
    except (RuntimeError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.table())
    if plot:
        try:
            report.plot(plot)
        except ImportError as exc:
            raise click.ClickException(
                "--plot needs matplotlib: pip install 'logstream[lessons]'.") from exc
        click.echo(f"plot written to {plot}", err=as_json)

