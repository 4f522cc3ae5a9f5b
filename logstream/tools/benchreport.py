"""What a benchmark run found: the headline against the targets, and text tables for a terminal."""


TARGETS = (  # (key, description, threshold, higher is better)
    ("batch_one_client", "log_batch lines/s to one client", 300_000, True),
    ("batch_total", "log_batch lines/s in total to ten clients", 400_000, True),
    ("latency_p50", "latency p50 at 100 lines/s (ms)", 1.0, False),
    ("latency_p99", "latency p99 at 100 lines/s (ms)", 5.0, False),
)


def find_scenario(scenarios, design, name_start, clients=None):
    for s in scenarios:
        if s["design"] == design and s["name"].startswith(name_start) and (
                clients is None or s["clients"] == clients):
            return s
    return None


def headline(scenarios, clients, rate):
    """Pick the numbers the targets name, ours and the naive design's, with ratios."""
    def get(design, name, key, n=None):
        s = find_scenario(scenarios, design, name, n)
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
    naive_rows = {
        "one_client": ("naive", "burst new_log", "deliveries_per_s", 1),
        "total": ("naive", "burst new_log", "deliveries_per_s", clients),
        "latency_p50": ("naive", "latency", "latency_p50", None),
        "latency_p99": ("naive", "latency", "latency_p99", None),
    }
    ours = {key: get(*spec) for key, spec in rows.items()}
    naive = {key: get(*spec) for key, spec in naive_rows.items()}

    def ratio(a, b, invert=False):
        if not a or not b:
            return None
        return round(b / a if invert else a / b, 1)

    ratios = {
        "batch_one_client_vs_naive": ratio(ours["batch_one_client"], naive["one_client"]),
        "batch_total_vs_naive": ratio(ours["batch_total"], naive["total"]),
        "lines_one_client_vs_naive": ratio(ours["lines_one_client"], naive["one_client"]),
        "lines_total_vs_naive": ratio(ours["lines_total"], naive["total"]),
        "latency_p50_naive_over_ours": ratio(ours["latency_p50"], naive["latency_p50"], True),
        "latency_p99_naive_over_ours": ratio(ours["latency_p99"], naive["latency_p99"], True),
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
    return {"logstream": ours, "naive": naive, "ratios": ratios, "targets": targets}


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
        out.append("\nagainst the naive design, same run:")
        for key, value in ratios.items():
            if value is not None:
                out.append(f"  {key.replace('_', ' ')}: {value:g}x")
    out.append("\ntargets:")
    for t in report["headline"]["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured here"}[t["met"]]
        value = "" if t["value"] is None else f" {_n(t['value'], 2 if t['value'] < 100 else 0)}"
        out.append(f"  {t['target']} (bar {t['threshold']:,}):{value} - {verdict}")
    return "\n".join(out)
