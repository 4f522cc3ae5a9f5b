"""The deployment simulator writes a realistic, finite lifecycle."""

import random
import re

from conftest import wait_until
from logstream.core.deployments import is_valid_id
from logstream.core.simulator import PHASES, Simulator, format_line, lifecycle, new_deployment_id

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO |WARN |ERROR) \[(\w+)\] .+\n")


def test_ids_are_short_url_safe_and_valid():
    ids = {new_deployment_id(random.Random(i)) for i in range(200)}
    assert len(ids) == 200
    assert all(is_valid_id(i) and len(i) <= 24 and re.fullmatch(r"[a-z0-9-]+", i) for i in ids)


def test_lifecycles_are_finite_ordered_and_some_fail():
    outcomes = []
    for seed in range(40):
        events = list(lifecycle(random.Random(seed), "shop-api"))
        phases = [phase for _, phase, _ in events]
        order = [PHASES.index(p) for p in phases]
        assert order == sorted(order), "phases run in lifecycle order"
        assert len(events) <= 400  # at most 3 min 20 s at 0.5 s a line
        assert phases[-1] == "done"
        outcomes.append("failed" in events[-1][2])
        if not outcomes[-1]:
            assert len(events) >= 140  # a successful deployment takes over a minute
        levels = {level for level, _, _ in events}
        assert "INFO" in levels
        if outcomes[-1]:
            assert "ERROR" in levels
    assert 3 <= sum(outcomes) <= 25, "about a quarter of deployments fail"


def test_lines_have_timestamp_level_and_phase():
    for level, phase, message in lifecycle(random.Random(1), "auth"):
        assert LINE.fullmatch(format_line(level, phase, message))


def test_simulator_writes_lines_and_stops(tmp_path):
    simulator = Simulator(tmp_path, line_interval=0.001, seed=3)
    deployment_id = simulator.start()
    assert deployment_id in simulator.running()
    path = tmp_path / f"{deployment_id}.log"
    wait_until(lambda: deployment_id not in simulator.running(), message="the lifecycle to end")
    lines = path.read_text().splitlines()
    assert len(lines) >= 20 and lines[-1].split("] ", 1)[1].startswith("Deployment of")
    stopped = Simulator(tmp_path, line_interval=60, seed=4)
    other = stopped.start()
    stopped.stop()
    assert other not in stopped.running()
