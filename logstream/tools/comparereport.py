"""What `logstream compare` found, per transport: as data, a text table and a plot."""

import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from logstream.support.stats import percentiles as nearest_rank


@dataclass
class TransportResult:
    """What one transport did: set-up, latency, bytes, CPU and a restart."""

    transport: str
    description: str
    setup_ms: float
    setup_bytes: int
    lines_sent: int
    lines_received: int
    duplicates: int
    missing: int
    latency_ms: dict
    bytes_down: int
    bytes_up: int
    bytes_per_line: dict
    tcp_connections: int
    server_cpu_ms_per_1000_lines: float | None
    restart: dict | None = None
    latencies_ms: list = field(default_factory=list, repr=False)


@dataclass
class Report:
    """The result of one `compare` run."""

    machine: dict
    parameters: dict
    transports: list

    def to_dict(self, samples=False):
        """Return the report as plain data; with samples, every latency too."""
        data = asdict(self)
        if not samples:
            for item in data["transports"]:
                item.pop("latencies_ms")
        return data

    def result(self, transport):
        """Return the TransportResult of one transport by name."""
        return next(r for r in self.transports if r.transport == transport)

    def __str__(self):
        return self.table()

    def table(self):
        """Return the report as a plain-text table."""
        head = ["transport", "setup ms", "p50 ms", "p95 ms", "p99 ms", "B/line down",
                "B/line up", "conns", "CPU ms/1k", "delivered", "restart resume",
                "restart naive"]
        rows = [head]
        for r in self.transports:
            rows.append([
                r.transport, f"{r.setup_ms:.1f}", *(f"{r.latency_ms[p]:.2f}"
                                                    for p in ("p50", "p95", "p99")),
                f"{r.bytes_per_line['down']:.0f}", f"{r.bytes_per_line['up']:.0f}",
                str(r.tcp_connections),
                "n/a" if r.server_cpu_ms_per_1000_lines is None
                else f"{r.server_cpu_ms_per_1000_lines:.0f}",
                f"{r.lines_received}/{r.lines_sent}" + (f" +{r.duplicates}dup"
                                                        if r.duplicates else ""),
                _restart_cell(r.restart, "resume"), _restart_cell(r.restart, "naive")])
        widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        p = self.parameters
        lines.append("")
        lines.append(f"{p['lines']} lines of {p['line_bytes']} bytes per transport, "
                     f"{p['rate']:g} lines/s in writes of {p['burst']}; "
                     f"restart: {_restart_summary(p)}; "
                     f"{self.machine['cpus']} CPUs, Python {self.machine['python']}.")
        return "\n".join(lines)

    def plot(self, path):
        """Draw latency distributions and bytes per line into a PNG file."""
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
        import matplotlib.ticker

        names = [r.transport for r in self.transports]
        fig, (lat, size) = plt.subplots(1, 2, figsize=(11, 4.2))
        lat.boxplot([r.latencies_ms or [0] for r in self.transports], whis=(1, 99),
                    showfliers=False)
        lat.set_xticks(range(1, len(names) + 1), names, rotation=15)
        lat.set_yscale("log")
        plain = matplotlib.ticker.FormatStrFormatter("%g")
        lat.yaxis.set_major_formatter(plain)
        lat.yaxis.set_minor_formatter(plain)
        lat.set_ylabel("write → receive latency (ms, log scale)")
        lat.set_title("Latency (box: p25–p75, whiskers: p1–p99)")
        down = [r.bytes_per_line["down"] for r in self.transports]
        up = [r.bytes_per_line["up"] for r in self.transports]
        size.bar(names, down, label="server → client")
        bars = size.bar(names, up, bottom=down, label="client → server")
        size.bar_label(bars, labels=[f"{d + u:.0f}" for d, u in zip(down, up)])
        size.set_ylim(top=max(d + u for d, u in zip(down, up)) * 1.15)
        size.axhline(self.parameters["line_bytes"], color="grey", linestyle="--",
                     label="the line itself")
        size.set_ylabel("bytes on the wire per line")
        size.set_title(f"Bytes per {self.parameters['line_bytes']}-byte line")
        size.tick_params(axis="x", rotation=15)
        size.legend(loc="lower left")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return Path(path)


def _restart_cell(restart, mode):
    if not restart:
        return "n/a"
    r = restart[mode]
    cell = f"lost {r['lost']} dup {r['duplicated']}"
    return cell if r["reconnected"] else cell + " (gave up)"


def _restart_summary(p):
    if not p["restart"]:
        return "not run"
    how = "SIGINT, graceful" if p["graceful_restart"] else "SIGKILL, a crash"
    return f"{p['restart_lines']} lines, a third written while the server was down ({how})"


def percentiles(values):
    """Return p50/p95/p99/max (nearest rank, logstream.support.stats) and the mean; zeros if empty."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}
    return dict(nearest_rank(values), mean=statistics.fmean(values))
