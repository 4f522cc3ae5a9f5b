"""The benchmark, run for real with tiny numbers: correctness only, never timing."""

import json

import pytest
from click.testing import CliRunner

from logstream.tools.bench import run_bench
from logstream.cli import main

CLIENTS = 2
BURST = 3000
LINE_BURST = 300


@pytest.fixture(scope="module")
def report():
    """One small run of the whole benchmark, the naive baseline included."""
    return run_bench(clients=CLIENTS, burst=BURST, line_burst=LINE_BURST, rate=50,
                     duration=0.4, idle_clients=6, progress=False)


def ours(report):
    return [s for s in report["scenarios"] if s["design"] == "logstream"]


def test_every_line_reaches_every_client_once_and_in_order(report):
    scenarios = ours(report)
    assert [(s["name"], s["clients"]) for s in scenarios] == [
        ("latency", 1), ("burst log_batch x1", 1), (f"burst log_batch x{CLIENTS}", CLIENTS),
        ("burst new_log x1", 1), (f"burst new_log x{CLIENTS}", CLIENTS)]
    for s in scenarios:
        assert s["deliveries"] == s["lines"] * s["clients"], s["name"]
        assert (s["lost"], s["duplicates"], s["out_of_order"], s["malformed"],
                s["misnumbered"]) == (0, 0, 0, 0, 0), s["name"]
        assert len(s["per_client_lines_per_s"]) == s["clients"]
        assert s["latency_ms"]["p50"] <= s["latency_ms"]["p99"] <= s["latency_ms"]["max"]
        assert s["ping_ms"]["count"] >= 1
        assert s["server"]["rss_mb_peak"] > 0 and s["server"]["threads_peak"] > 0
    lines = {s["name"]: s["lines"] for s in scenarios}
    assert lines["latency"] == 20 and lines["burst log_batch x1"] == BURST
    assert lines["burst new_log x1"] == LINE_BURST


def test_batches_carry_many_lines_and_single_lines_one_each(report):
    by_name = {s["name"]: s for s in ours(report)}
    assert by_name["burst new_log x1"]["messages"] == LINE_BURST
    assert by_name["burst log_batch x1"]["messages"] < BURST / 10
    # The bench client offers permessage-deflate, as browsers do.
    assert all(s["compressed"] for s in ours(report))


def test_the_naive_baseline_runs_in_the_same_report(report):
    naive = [s for s in report["scenarios"] if s["design"] == "naive"]
    assert [s["name"] for s in naive] == [
        "latency", "burst new_log x1", f"burst new_log x{CLIENTS}"]
    # The naive design may drop a half-written line; it must still deliver.
    assert all(s["deliveries"] > 0 and s["mode"].startswith("naive") for s in naive)
    ratios = report["headline"]["ratios"]
    assert ratios["batch_one_client_vs_naive"] > 0
    assert ratios["latency_p50_naive_over_ours"] > 0


def test_idle_clients_cost_is_measured(report):
    for design in ("logstream", "naive"):
        idle = report["idle"][design]
        assert idle["clients"] == 6
        assert idle["ping_ms"]["p50"] > 0
    # `logstream serve` holds its connections on green threads: none is an
    # OS thread. The naive threading server starts threads for each client.
    ours, naive = report["idle"]["logstream"], report["idle"]["naive"]
    assert ours["after"]["threads"] == ours["before"]["threads"]
    assert naive["after"]["threads"] > naive["before"]["threads"]


def test_report_names_the_machine_and_the_targets(report):
    assert report["machine"]["cpus"] >= 1 and report["machine"]["python"]
    targets = {t["target"]: t for t in report["headline"]["targets"]}
    assert targets["nothing lost, duplicated or out of order"]["met"] is True
    # Too few clients for the ten-client target: it must not claim a verdict.
    assert targets["log_batch lines/s in total to ten clients"]["met"] is None
    json.dumps(report)


def test_cli_prints_json_without_a_baseline(tmp_path):
    result = CliRunner().invoke(main, [
        "bench", "--clients", "1", "--burst", "500", "--line-burst", "0", "--rate", "0",
        "--idle-clients", "0", "--baseline", "none", "--mode", "batch", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    [scenario] = report["scenarios"]
    assert scenario["deliveries"] == 500 and scenario["lost"] == 0
    assert report["idle"] == {}


def test_cli_explains_bad_options():
    result = CliRunner().invoke(main, ["bench", "--data-dir", "/tmp"])
    assert result.exit_code == 2
    assert "--data-dir goes with --url" in result.output
    result = CliRunner().invoke(main, ["bench", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "--url needs --data-dir" in result.output


def test_fanout_and_idle_scenarios_run_from_the_cli():
    """Twenty viewers in two processes get every line; ten idle viewers hold no OS thread."""
    from logstream.tools.benchfanout import format_fanout

    result = CliRunner().invoke(main, [
        "bench", "--scenario", "fanout", "--clients", "20", "--fanout-lines", "30",
        "--client-processes", "2", "--frontail", "none", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    [run] = report["fanout"]
    assert run["design"] == "logstream" and run["viewers"] == 20
    assert run["deliveries"] == 20 * 30 and run["lost"] == 0 and run["min_received"] == 30
    assert run["latency_ms"]["p50"] <= run["latency_ms"]["p99"]
    # A line arrives at a viewer's socket before the viewer reads it.
    assert 0 < run["arrival_ms"]["p50"] <= run["latency_ms"]["p50"]
    assert run["arrival_ms"]["max"] <= run["latency_ms"]["max"]
    # Green threads: the viewers hold no OS thread of the server.
    assert run["joined"]["threads"] == run["before"]["threads"]
    assert run["seconds_to_baseline"] is not None
    assert report["idle"] is None

    result = CliRunner().invoke(main, [
        "bench", "--scenario", "idle", "--clients", "10", "--client-processes", "2",
        "--hold", "1", "--json"])
    assert result.exit_code == 0, result.output
    idle_report = json.loads(result.output)
    idle = idle_report["idle"]
    assert idle["viewers"] == 10 and idle["after"]["threads"] == idle["before"]["threads"]
    assert idle["held_seconds"] >= 1 and idle["dropped"] == 0
    text = format_fanout(idle_report)
    assert text.startswith("logstream bench --scenario idle:") and "10 idle viewers" in text
    assert idle["healthz_ms"]["p50"] > 0 and idle["first_line_ms"]["p50"] > 0
    assert idle["seconds_to_baseline"] is not None


def test_frontail_runs_the_same_fanout_when_it_is_installed():
    from logstream.tools.benchfanout import find_frontail, run_fanout

    if find_frontail() is None:
        pytest.skip("frontail (npm) and Node are not installed here")
    report = run_fanout(viewers=5, lines=20, processes=1)
    assert [run["design"] for run in report["fanout"]] == ["logstream", "frontail"]
    frontail = report["fanout"][1]
    assert frontail["deliveries"] == 5 * 20 and frontail["lost"] == 0


def test_a_fanout_burst_reaches_every_viewer_of_each_server():
    from logstream.tools.benchfanout import find_frontail, format_fanout, run_fanout

    report = run_fanout(viewers=2, lines=3000, rate=0, processes=1)
    designs = ["logstream"] + (["frontail"] if find_frontail() else [])
    assert [run["design"] for run in report["fanout"]] == designs
    for run in report["fanout"]:
        assert run["deliveries"] == 2 * 3000 and run["lost"] == 0, run["design"]
        assert run["deliveries_per_s"] > 0
    assert "2 viewers x 3000 lines in one burst" in format_fanout(report)


@pytest.mark.parametrize("writes", [
    [[0, 1], [1], [3], [2]],   # a run, a repeat, a skip, then the skipped line late
    [[0, 1, 1, 3, 2]],         # the same lines in one write
], ids=["separate", "together"])
def test_fanout_viewers_count_lines_lost_repeated_and_out_of_order(logs, server, writes):
    """The fan-out check is what makes its numbers true: it must see what a broken server would send."""
    import threading
    from multiprocessing import Pipe

    from logstream.tools.benchjobs import stamped_line
    from logstream.tools.fanoutjobs import fanout_job

    deployment_id, path = logs.make(0)
    parent, child = Pipe()
    job = {"kind": "fanout", "url": server.url, "deployment_id": deployment_id,
           "namespace": None, "count": 2, "expect": 6, "deflate": False, "timeout": 30,
           "stall": 1.0}
    result = {}
    runner = threading.Thread(target=lambda: result.update(fanout_job(job, child)))
    runner.start()
    assert parent.recv()[0] == "ready"
    for seqs in writes:
        with open(path, "a") as log:
            log.write("".join(stamped_line(seq) for seq in seqs))
    runner.join(30)
    # Per viewer: lines 0-3 once each, line 1 again, line 2 after line 3 (and
    # so fifth in the file, numbered 5 instead of 3), lines 4-5 never.
    assert (result["received"], result["duplicates"], result["out_of_order"], result["lost"],
            result["malformed"], result["misnumbered"]) == (8, 2, 2, 4, 0, 2)
    assert len(result["latencies_ns"]) == len(result["arrivals_ns"]) == 8
