"""`logstream compare` on small numbers: a real server process, real clients, a real restart."""

import json

import pytest
from click.testing import CliRunner

from logstream.tools import compare
from logstream.cli import main
from logstream.tools.measure import TRANSPORTS
from logstream.web.server import start_server

SMALL = dict(lines=60, rate=300, burst=5, restart_lines=45, setup_trials=2)


@pytest.fixture(scope="module")
def report():
    return compare.run(**SMALL)


def test_the_report_covers_every_transport(report):
    assert [r.transport for r in report.transports] == list(TRANSPORTS)
    assert report.machine["cpus"] >= 1
    assert report.parameters["lines"] == SMALL["lines"]
    for r in report.transports:
        assert r.setup_ms > 0 and r.setup_bytes > 0
        assert set(r.latency_ms) == {"p50", "p95", "p99", "mean", "max"}
        assert 0 < r.latency_ms["p50"] <= r.latency_ms["p95"] <= r.latency_ms["p99"] \
            <= r.latency_ms["max"]
        assert len(r.latencies_ms) == SMALL["lines"]
        # Every line's bytes crossed the relay, whatever the encoding.
        assert r.bytes_down > 0 and r.bytes_per_line["down"] == r.bytes_down / SMALL["lines"]
        assert r.bytes_per_line["total"] == pytest.approx(
            r.bytes_per_line["down"] + r.bytes_per_line["up"])
        assert r.tcp_connections >= 1
        assert r.server_cpu_ms_per_1000_lines is not None
        assert r.server_cpu_ms_per_1000_lines >= 0


def test_every_transport_delivered_every_line_exactly_once(report):
    for r in report.transports:
        assert (r.transport, r.lines_received, r.duplicates, r.missing) == \
            (r.transport, SMALL["lines"], 0, 0)


def test_polling_opens_connections_and_websocket_keeps_one(report):
    assert report.result("websocket").tcp_connections == 1
    assert report.result("sse").tcp_connections == 1
    assert report.result("polling").tcp_connections > 1
    assert report.result("polling").bytes_up > 0  # every poll is a request
    assert report.result("websocket").bytes_up == 0  # nothing to say while streaming


def test_resuming_readers_lose_and_repeat_nothing_across_a_crash(report):
    for r in report.transports:
        assert set(r.restart) == {"resume", "naive"}
        assert r.restart["resume"] == {"lost": 0, "duplicated": 0, "reconnected": True}, \
            r.transport
        naive = r.restart["naive"]
        assert naive["lost"] >= 0 and naive["duplicated"] >= 0


def test_the_table_names_every_transport(report):
    table = report.table()
    for name in TRANSPORTS:
        assert f"\n{name} " in table
    assert "60/60" in table


def test_cli_json_and_plot(tmp_path):
    plot = tmp_path / "compare.png"
    result = CliRunner().invoke(main, [
        "compare", "--lines", "30", "--rate", "300", "--burst", "3", "--setup-trials", "1",
        "--transport", "websocket-batch", "--transport", "sse", "--no-restart",
        "--json", "--plot", str(plot), "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [t["transport"] for t in data["transports"]] == ["websocket-batch", "sse"]
    assert all(t["lines_received"] == 30 and t["restart"] is None for t in data["transports"])
    assert "latencies_ms" not in data["transports"][0]
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert plot.stat().st_size > 10_000


def test_compare_a_running_server_by_url(tmp_path):
    with start_server(data_dir=tmp_path, port=0) as server:
        report = compare.run(lines=20, rate=300, burst=4, setup_trials=1,
                             transports=("sse",), url=server.url, data_dir=tmp_path)
    (result,) = report.transports
    assert (result.lines_received, result.duplicates) == (20, 0)
    assert result.restart is None  # compare restarts only servers it started
    assert (tmp_path / "cmp-sse.log").exists()


def test_bad_options_are_refused_in_plain_words():
    runner = CliRunner()
    result = runner.invoke(main, ["compare", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "--url needs --data-dir" in result.output
    result = runner.invoke(main, ["compare", "--transport", "carrier-pigeon"])
    assert result.exit_code == 2
    with pytest.raises(ValueError, match="unknown transport"):
        compare.run(transports=("carrier-pigeon",))
