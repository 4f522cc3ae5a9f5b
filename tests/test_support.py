"""The support layer's single definitions: percentiles, the process launcher."""

import sys

import pytest

from logstream.support.processes import ChildProcess
from logstream.support.stats import percentile, percentiles
from logstream.tools import bench, compare


def test_percentiles_are_nearest_rank_everywhere():
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([5, 1, 4, 2, 3], 95) == 5
    assert percentile(range(1, 101), 99) == 99
    assert percentiles([1, 2, 3, 4, 5]) == {"p50": 3, "p95": 5, "p99": 5, "max": 5}
    # The benchmark reports nanoseconds as milliseconds, the comparison adds the mean.
    assert bench.percentiles([1e6, 2e6, 3e6, 4e6, 5e6])["p50"] == 3.0
    assert compare.percentiles([1, 2, 3, 4, 5])["p50"] == 3
    with pytest.raises(ValueError, match="undefined"):
        percentile([], 50)


def test_a_child_that_exits_before_it_is_ready_says_why(tmp_path):
    child = ChildProcess("the doomed child", [sys.executable, "-c", "print('no config'); exit(3)"],
                         tmp_path / "out.txt", ready=lambda: False)
    with pytest.raises(RuntimeError, match=r"the doomed child exited with code 3:\s+no config"):
        child.start(timeout=20)
    assert not child.running()


def test_a_child_is_stopped_and_killed(tmp_path):
    child = ChildProcess("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"],
                         tmp_path / "out.txt").start()
    assert child.running()
    child.kill()
    assert not child.running() and child.proc.returncode < 0
