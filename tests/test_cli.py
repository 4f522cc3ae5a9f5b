"""The logstream command line, run as a real process."""

import signal
import subprocess
import sys

import httpx
from click.testing import CliRunner

from conftest import wait_until
from logstream.cli import main
from logstream.support.host import free_port


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "serve" in result.output
    serve_help = CliRunner().invoke(main, ["serve", "--help"]).output
    for option in ("--host", "--port", "--data-dir", "--cors", "--rotate-wait"):
        assert option in serve_help


def test_serve_binds_loopback_serves_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    (tmp_path / "demo.log").write_text("hello\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "logstream", "serve", "--port", str(port),
         "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def healthy():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.TransportError:
                return False
        wait_until(healthy, timeout=20, message="logstream serve to answer")
        listed = httpx.get(f"http://127.0.0.1:{port}/api/deployments").json()
        assert [d["id"] for d in listed] == ["demo"]
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=10)
        assert process.returncode == 0
        assert f"http://127.0.0.1:{port}" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


SETTLED_HEAP = """
import gc, sys, threading, time, weakref
from logstream.web import server

assert gc.get_freeze_count() == 0
threading.Thread(target=server.serve_forever, kwargs={"data_dir": sys.argv[1], "port": 0},
                 daemon=True).start()
deadline = time.monotonic() + 30
while not gc.get_freeze_count() and time.monotonic() < deadline:
    time.sleep(0.05)


class Node:
    pass


first, second = Node(), Node()
first.other, second.other = second, first
gone = weakref.ref(first)
del first, second
gc.collect()
print(gc.get_freeze_count(), tuple(gc.get_threshold()) == server.GC_THRESHOLDS, gone() is None)
"""


def test_serve_keeps_its_startup_objects_out_of_collections_and_still_frees_later_garbage(tmp_path):
    # Full collections walk every tracked object; `serve` freezes what it
    # built at start so they don't walk it again while viewers join.
    frozen, thresholds, freed = subprocess.run(
        [sys.executable, "-c", SETTLED_HEAP, str(tmp_path)], capture_output=True, text=True,
        timeout=60, check=True).stdout.split()
    assert int(frozen) > 10_000, "serve froze nothing"
    assert thresholds == "True" and freed == "True"
