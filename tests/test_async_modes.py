"""`logstream serve` on gevent's green threads (its default) and on OS threads: same lines, same budgets.

Every test here runs a real `logstream serve` process in each async mode.
On green threads a room's packet is written to every member's socket by the
publishing task (logstream.web.fanout); these tests check that nothing is
lost, duplicated or reordered by that, that a viewer that stops reading stays
within its byte budget, and that connections cost no OS thread.
"""

import json
import subprocess
import sys
import threading

import httpx
import psutil
import pytest

from conftest import serve_process, wait_until
from logstream.tools.benchfanout import run_fanout
from logstream.tools.benchjobs import stamped_line
from logstream.tools.leanclient import LeanClient, joined_viewers

MODES = ["gevent", "threading"]


class Served:
    """A `logstream serve` process in one async mode, over a folder of logs."""

    def __init__(self, folder, mode, *options):
        self.folder = folder
        self.mode = mode
        self.process, self.url = serve_process(
            "--async-mode", mode, "--data-dir", str(folder), *options)
        self.ps = psutil.Process(self.process.pid)

    def log(self, name, text=""):
        path = self.folder / f"{name}.log"
        path.write_text(text)
        return path

    def threads(self):
        return self.ps.num_threads()

    def fds(self):
        return self.ps.num_fds()

    def rss(self):
        return self.ps.memory_info().rss

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(params=MODES)
def served(request, tmp_path):
    server = Served(tmp_path, request.param)
    yield server
    server.stop()


def numbered(messages, event):
    """Return the line numbers carried by a viewer's raw Socket.IO messages of one event."""
    numbers = []
    for message in messages:
        if not message.startswith(b'42["' + event.encode()):
            continue
        _, payload = json.loads(message[2:])
        lines = payload["lines"] if event == "log_batch" else [payload]
        numbers.extend(item["line"] for item in lines)
    return numbers


@pytest.mark.parametrize("mode", MODES)
def test_300_viewers_in_other_processes_all_get_every_line(mode):
    """300 lean viewers in three processes follow one deployment."""
    report = run_fanout(viewers=300, lines=60, rate=100, processes=3, frontail=False,
                        server_options=("--async-mode", mode))
    [run] = report["fanout"]
    assert run["viewers"] == 300
    assert run["deliveries"] == 300 * 60 and run["min_received"] == 60
    assert (run["lost"], run["duplicates"], run["out_of_order"], run["malformed"],
            run["misnumbered"]) == (0, 0, 0, 0, 0)


def test_viewers_joining_while_lines_are_written_get_each_line_once_in_order(served):
    """History, the join's reply and live lines never cross, for viewers of both kinds."""
    path = served.log("busy", "".join(f"old {n}\n" for n in range(1, 101)))
    stop = threading.Event()

    def write():
        with open(path, "a") as out:
            while not stop.is_set():
                out.write("live\n")
                out.flush()
                stop.wait(0.002)

    writer = threading.Thread(target=write)
    writer.start()
    viewers = []
    try:
        for index in range(40):
            viewer = LeanClient(served.url)
            seen = []
            batch = index % 2 == 0
            reply = viewer.call("start_streaming", {"deployment_id": "busy", "batch": batch},
                                on_other=seen.append)[0]
            viewers.append((viewer, seen, batch, reply))
    finally:
        stop.set()
        writer.join()
    total = path.read_bytes().count(b"\n")
    for viewer, seen, batch, reply in viewers:
        event = "log_batch" if batch else "new_log"
        while not numbered(seen, event) or numbered(seen, event)[-1] < total:
            seen.append(bytes(viewer.recv_text()))
        numbers = numbered(seen, event)
        assert reply["type"] == "streaming_started"
        assert numbers == list(range(reply["first_line"], total + 1)), (
            f"{event} viewer: a gap, a duplicate or a line out of order")
        viewer.close(timeout=0.2)


def test_a_clients_events_are_answered_in_the_order_it_sent_them(served):
    """A ping sent right behind a join that sends 20,000 lines of history is answered after the join."""
    served.log("long", "".join(f"old {n} {'x' * 80}\n" for n in range(1, 20_001)))
    viewer = LeanClient(served.url)
    try:
        for _ in range(3):
            viewer.emit("start_streaming", {"deployment_id": "long", "since": 0, "batch": True},
                        ack=True)
            viewer.emit("ping", "right behind", ack=True)
            viewer.emit("stop_streaming", {"deployment_id": "long"}, ack=True)
        acks = []
        while len(acks) < 9:
            message = viewer.recv_text()
            if message.startswith(b"43"):
                acks.append(int(message[2:message.index(b"[")]))
        assert acks == list(range(1, 10))
    finally:
        viewer.close(timeout=0.2)


def test_a_viewer_that_stops_reading_is_dropped_within_its_byte_budget(served):
    """A viewer that never reads costs the server at most its backlog budget (4 MiB) and is told it lags."""
    log = served.log("flood")
    stalled = LeanClient(served.url, deflate=False)
    stalled.join("flood", batch=True)
    reader = LeanClient(served.url)
    reader.join("flood", batch=True)
    rss_before = served.rss()
    line = stamped_line(0, 1000)
    seen = b""
    for mark in range(120):  # 60 MB written, paced by the viewer that reads
        with open(log, "a") as out:
            out.write(line * 500 + f"mark-{mark}\n")
        while f"mark-{mark}".encode() not in seen:
            seen = bytes(reader.recv_text())
        if b'"lagging"' in seen:
            break
    grown = served.rss() - rss_before
    assert grown < 80 << 20, f"the server grew {grown >> 20} MiB for one stalled viewer"
    # The stalled viewer, reading at last, finds a lagging status after its lines.
    stalled.sock.settimeout(10)
    while True:
        message = stalled.recv_text()
        if message.startswith(b'42["status"') and b'"lagging"' in message:
            break
    # The reader still gets what is written next.
    with open(log, "a") as out:
        out.write("the last line\n")
    while b"the last line" not in reader.recv_text():
        pass
    reader.close(timeout=0.2)
    stalled.close(timeout=0.2)


def test_threads_and_descriptors_return_to_baseline_after_150_viewers_leave(served):
    """Descriptors come back in both modes; on green threads no OS thread was taken at all.

    (On OS threads Engine.IO's heartbeat thread of each session sleeps out
    the ping interval, 25 s, after its client has gone: not waited for here.)
    """
    served.log("churn")
    threads, fds = served.threads(), served.fds()
    for _ in range(2):
        viewers = joined_viewers(served.url, "churn", 150, batch=True)
        if served.mode == "gevent":
            assert served.threads() == threads  # green threads are not OS threads
        else:
            assert served.threads() > threads + 150
        for viewer in viewers:
            viewer.close(timeout=0.5)
        if served.mode == "gevent":
            assert served.threads() == threads
        wait_until(lambda: served.fds() <= fds, timeout=30,
                   message="the server's descriptors back at baseline")


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_polling_and_websocket_viewers_share_a_room(served, transport):
    """A long-polling viewer gets the room's lines through Engine.IO, beside direct WebSocket ones."""
    import socketio

    log = served.log("mixed")
    got = []
    arrived = threading.Event()
    client = socketio.Client()

    @client.on("log_batch")
    def on_batch(payload):
        got.extend(item["message"] for item in payload["lines"])
        if len(got) >= 3:
            arrived.set()

    client.connect(served.url, transports=[transport])
    lean = LeanClient(served.url)
    try:
        client.call("start_streaming", {"deployment_id": "mixed", "batch": True})
        lean.join("mixed", batch=True)
        with open(log, "a") as out:
            for text in ("one", "two", "three"):
                out.write(text + "\n")
                out.flush()
        assert arrived.wait(15)
        assert got == ["one", "two", "three"]
        seen = b""
        while b"three" not in seen:
            seen += bytes(lean.recv_text())
        assert seen.index(b"one") < seen.index(b"two") < seen.index(b"three")
    finally:
        client.disconnect()
        lean.close(timeout=0.2)


def test_sse_viewers_and_idle_sockets_hold_no_thread_on_green_threads(tmp_path):
    """200 SSE streams and 200 joined, idle Socket.IO viewers: the server's OS threads stay as they were."""
    served = Served(tmp_path, "gevent")
    try:
        served.log("quiet", "one\n")
        threads = served.threads()
        client = httpx.Client(timeout=10, limits=httpx.Limits(max_connections=300))
        streams = []
        responses = []
        viewers = []
        try:
            for _ in range(200):
                stream = client.stream("GET", f"{served.url}/deployments/quiet/events")
                response = stream.__enter__()
                assert response.status_code == 200
                streams.append(stream)
                responses.append(response)
            viewers += joined_viewers(served.url, "quiet", 200)
            assert served.threads() == threads
            assert httpx.get(served.url + "/healthz").status_code == 200
            # Every stream is live: a new line reaches the last viewer and the last stream.
            with open(tmp_path / "quiet.log", "a") as out:
                out.write("two\n")
            while b'"two"' not in viewers[-1].recv_text():
                pass
            assert any('"two"' in line for line in responses[-1].iter_lines())
        finally:
            for stream in streams:
                stream.__exit__(None, None, None)
            client.close()
            for viewer in viewers:
                viewer.close(timeout=0.2)
    finally:
        served.stop()


GREEN_FANOUT = """
import json, sys, tempfile, pathlib
from gevent import monkey
monkey.patch_all()
from logstream.web.server import start_server
from logstream.tools.leanclient import joined_viewers

folder = pathlib.Path(tempfile.mkdtemp())
(folder / "room.log").write_text("")
with start_server(data_dir=folder) as server:
    viewers = joined_viewers(server.url, "room", 5, batch=True)
    for n in range(20):
        with open(folder / "room.log", "a") as out:
            out.write(f"line {n}\\n")
        for viewer in viewers:
            while f"line {n}".encode() not in viewer.recv_text():
                pass
    fanout = server.app.extensions["logstream.web.fanout"]
    print(json.dumps({"direct": fanout.direct_writes, "queued": fanout.queued_writes}))
"""


HEARTBEATS = """
import pathlib, sys, tempfile, time
if sys.argv[1] == "gevent":
    from gevent import monkey
    monkey.patch_all()
from logstream.web.server import start_server
from logstream.tools.leanclient import LeanClient, WireError

folder = pathlib.Path(tempfile.mkdtemp())
(folder / "quiet.log").write_text("")
# Heartbeats every 0.3 s, answered within 1 s: Engine.IO's writer waits
# at most 1.3 s for a packet before it gives up on a connection.
with start_server(data_dir=folder, ping_interval=0.3, ping_timeout=1.0) as server:
    answering, silent = LeanClient(server.url), LeanClient(server.url)
    for viewer in (answering, silent):
        viewer.join("quiet", batch=True)
    answering.sock.settimeout(0.1)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:  # reading answers the heartbeats
        try:
            answering.recv_text()
        except (TimeoutError, OSError) as error:
            if isinstance(error, WireError):
                sys.exit(f"an idle viewer that answers its heartbeats was closed: {error}")
    answering.sock.settimeout(5)
    assert answering.call("ping", "still here")[0]["echo"] == "still here"
    try:
        while True:
            silent.recv_text()  # its unanswered heartbeats, then the close
    except WireError:
        pass
    print(answering.heartbeats)
"""


@pytest.mark.parametrize("mode", MODES)
def test_an_idle_viewer_stays_and_one_that_stops_answering_heartbeats_goes(mode):
    """Over four heartbeat timeouts, a viewer that answers keeps its connection; a silent one loses it."""
    done = subprocess.run([sys.executable, "-c", HEARTBEATS, mode], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) >= 10


def test_on_green_threads_a_rooms_lines_are_written_straight_to_its_viewers():
    """The fan-out's direct path is the one taken: each line is one write per viewer, no queue."""
    done = subprocess.run([sys.executable, "-c", GREEN_FANOUT], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["direct"] >= 5 * 20 - 5 and counts["queued"] <= 5, counts


def test_on_os_threads_rooms_go_through_engineio(server, logs, raw):
    deployment_id, path = logs.make(0)
    client = raw()
    client.call("start_streaming", {"deployment_id": deployment_id, "batch": True})
    with open(path, "a") as out:
        out.write("one\n")
    wait_until(lambda: client.line_numbers() == [1], message="the line")
    assert server.app.extensions["logstream.web.fanout"].direct_writes == 0


def test_serve_runs_on_green_threads_by_default_and_says_when_it_cannot(tmp_path):
    served_process, url = serve_process("--data-dir", str(tmp_path))
    try:
        process = psutil.Process(served_process.pid)
        before = process.num_threads()
        viewers = [LeanClient(url) for _ in range(20)]
        assert process.num_threads() == before
        for viewer in viewers:
            viewer.close(timeout=0.2)
    finally:
        served_process.terminate()
        served_process.wait(10)
    from click.testing import CliRunner

    from logstream.cli import main

    # This test process is not patched: asking for gevent here is refused with a sentence.
    result = CliRunner().invoke(main, ["serve", "--async-mode", "gevent", "--port", "0"])
    assert result.exit_code == 2 and "python -m logstream" in result.output
