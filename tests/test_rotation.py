"""Debian's logrotate rotates a busy log; the follower loses nothing it could have kept.

An application writes ~400 lines a second and reopens its log on SIGHUP
(logrotate's postrotate sends it, half a second after the rename, as a real
postrotate script takes its time). GNU ``tail -F`` follows the same file, so
the test can report how many lines it loses; its exact count is not asserted.
"""

import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import RawClient, wait_until
from logstream.web.server import start_server

pytestmark = pytest.mark.skipif(shutil.which("logrotate") is None,
                                reason="logrotate is not installed (scripts/system-deps.sh)")

APP = r"""
import signal, sys, time
path, rate = sys.argv[1], float(sys.argv[2])
fp = open(path, "a", buffering=1)  # line-buffered: one write per line
flags = {"reopen": False, "stop": False}
signal.signal(signal.SIGHUP, lambda *_: flags.update(reopen=True))
signal.signal(signal.SIGTERM, lambda *_: flags.update(stop=True))
print("ready", flush=True)
n, start = 0, time.monotonic()
while not flags["stop"]:
    if flags["reopen"]:
        flags["reopen"] = False
        fp.close()
        fp = open(path, "a", buffering=1)
    n += 1
    fp.write(f"seq {n} " + "x" * 60 + "\n")
    time.sleep(max(0.0, start + n / rate - time.monotonic()))
fp.close()
print(n, flush=True)
"""
LINE = re.compile(r"seq (\d+) x{60}")
RATE = 400
ROTATIONS = 2
ROTATE_WAIT = 1.5


def logrotate_config(tmp_path, log, mode, pid):
    config = tmp_path / "logrotate.conf"
    config.write_text(f"""{log} {{
    {mode}
    rotate {ROTATIONS + 1}
    missingok
    nocompress
    postrotate
        sleep 0.5
        kill -HUP {pid}
    endscript
}}
""")
    return config


def check(messages):
    """Return the sequence numbers in messages; fail on a torn or repeated line."""
    torn = [m for m in messages if not LINE.fullmatch(m)]
    assert not torn, f"torn lines: {torn[:3]}"
    seqs = [int(LINE.fullmatch(m).group(1)) for m in messages]
    assert len(seqs) == len(set(seqs)), "a line was published twice"
    return set(seqs)


@pytest.mark.parametrize("mode", ["create", "copytruncate"])
def test_logrotate_while_the_application_writes(tmp_path, mode):
    data = tmp_path / "logs"
    data.mkdir()
    log = data / "app.log"
    log.write_text("")
    server = start_server(data_dir=data, port=0, rotate_wait=ROTATE_WAIT)
    client = RawClient(server.url)
    app = tail = None
    try:
        client.call("start_streaming", {"deployment_id": "app", "batch": True, "since": 0})
        # To a file: a pipe nobody reads would fill and stall tail.
        tail_out = open(tmp_path / "tail.out", "w")
        tail = subprocess.Popen(["tail", "-n", "0", "-F", str(log)], stdout=tail_out,
                                stderr=subprocess.DEVNULL)
        app = subprocess.Popen([sys.executable, "-c", APP, str(log), str(RATE)],
                               stdout=subprocess.PIPE, text=True)
        assert app.stdout.readline() == "ready\n"
        config = logrotate_config(tmp_path, log, mode, app.pid)
        for _ in range(ROTATIONS):
            time.sleep(0.5)  # the application writes for a while (no condition to wait on)
            subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"), str(config)],
                           check=True, timeout=30)
            # Let the grace period end before the next rotation.
            time.sleep(ROTATE_WAIT + 0.5)
        app.send_signal(signal.SIGTERM)
        written = int(app.stdout.read().split()[-1])
        assert app.wait(10) == 0

        def follower_messages():
            return [d["message"] for event, d in list(client.events) if event == "log_batch"
                    for d in d["lines"]]

        wait_until(lambda: f"seq {written} " in "".join(follower_messages()[-3:]),
                   timeout=ROTATE_WAIT + 10, message="the last line written")
        got = check(follower_messages())
        statuses = [d["type"] for d in client.of("status")]
        assert statuses.count("truncated" if mode == "copytruncate" else "rotated") == ROTATIONS
        lost = set(range(1, written + 1)) - got
        if mode == "create":
            assert not lost, f"lost {len(lost)} lines: {sorted(lost)[:10]}"
        # copytruncate: logrotate itself drops what is written between its
        # copy and its truncate; those lines exist nowhere to be read.
    finally:
        if app is not None:
            if app.poll() is None:
                app.kill()
                app.wait()
            app.stdout.close()
        client.close()
        server.stop()
        tail_lines = []
        if tail is not None:
            time.sleep(1.5)  # tail -F checks once a second; give it its turn
            tail.terminate()
            tail.wait(10)
            tail_out.close()
            tail_lines = (tmp_path / "tail.out").read_text().splitlines()
    if app is not None and app.returncode == 0:
        tail_got = check([line for line in tail_lines if line])
        tail_lost = written - len(tail_got)
        print(f"\n{mode}: {written} lines written, {ROTATIONS} rotations; logstream lost "
              f"{len(lost)}, tail -F lost {tail_lost}")
