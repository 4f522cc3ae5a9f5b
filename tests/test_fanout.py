"""Many viewers of one deployment: every line reaches every viewer, and leaving costs nothing after."""

import os
import threading

import pytest

from conftest import wait_until
from logstream.tools.benchfanout import run_fanout
from logstream.tools.benchjobs import stamped_line
from logstream.tools.leanclient import LeanClient
from logstream.web.server import start_server

# Threads shared by every connection and started on first use: Engine.IO's
# heartbeat timer and the send buffers' flusher.
SHARED_THREADS = 2


def socket_fds():
    """Return how many sockets this process has open."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed while listing
    return count


def test_300_viewers_in_other_processes_all_get_every_line():
    """300 lean viewers in three processes follow one deployment of a real `logstream serve`."""
    report = run_fanout(viewers=300, lines=60, rate=100, processes=3, frontail=False)
    [run] = report["fanout"]
    assert run["viewers"] == 300
    assert run["deliveries"] == 300 * 60 and run["min_received"] == 60
    assert (run["lost"], run["duplicates"], run["out_of_order"], run["malformed"],
            run["misnumbered"]) == (0, 0, 0, 0, 0)


def test_threads_and_sockets_return_to_baseline_after_150_viewers_leave(tmp_path):
    (tmp_path / "churn.log").write_text("")
    with start_server(data_dir=tmp_path) as server:
        threads, sockets = threading.active_count(), socket_fds()
        for round_ in range(2):
            viewers = []
            for _ in range(150):
                viewer = LeanClient(server.url)
                viewer.call("start_streaming", {"deployment_id": "churn", "batch": True},
                            on_other=lambda message: None)
                viewers.append(viewer)
            assert threading.active_count() > threads + 150
            for viewer in viewers:
                viewer.close(timeout=0.5)
            wait_until(lambda: threading.active_count() <= threads + SHARED_THREADS,
                       timeout=15, message="the server's threads back at baseline")
            wait_until(lambda: socket_fds() <= sockets, timeout=15,
                       message="the server's sockets back at baseline")


def test_a_viewer_that_stops_reading_is_told_it_lags_while_others_keep_up(tmp_path):
    """A viewer that never reads has a bounded buffer; the server stops it with a lagging status."""
    log = tmp_path / "busy.log"
    log.write_text("")
    with start_server(data_dir=tmp_path) as server:
        stalled = LeanClient(server.url, deflate=False)
        stalled.call("start_streaming", {"deployment_id": "busy", "batch": True},
                     on_other=lambda message: None)
        reader = LeanClient(server.url)
        reader.call("start_streaming", {"deployment_id": "busy", "batch": True},
                    on_other=lambda message: None)
        manager = server.socketio.server.manager

        def members():
            return len(list(manager.get_participants("/", "busy#batch")))

        assert members() == 2
        line = stamped_line(0, 1000)
        # Its kernel buffers fill first, then its send buffer on the server.
        for mark in range(100):  # ~50 MB at most, paced by the viewer that reads
            with open(log, "a") as out:
                out.write(line * 500 + f"mark-{mark}\n")
            while f"mark-{mark}".encode() not in reader.recv_text():
                pass
            if members() < 2:
                break
        wait_until(lambda: members() == 1, timeout=30, message="the stalled viewer dropped")
        # The reader still gets lines written after that.
        with open(log, "a") as out:
            out.write("the last line\n")
        while b"the last line" not in reader.recv_text():
            pass
        # The stalled viewer, reading at last, finds a lagging status after its lines.
        stalled.sock.settimeout(10)
        while True:
            message = stalled.recv_text()
            if message.startswith(b'42["status"') and b'"lagging"' in message:
                break
        reader.close(timeout=0.2)
        stalled.close(timeout=0.2)


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_polling_and_websocket_viewers_share_a_room(tmp_path, transport):
    """A long-polling viewer gets the room's lines through Engine.IO, beside WebSocket ones."""
    import socketio

    (tmp_path / "mixed.log").write_text("")
    with start_server(data_dir=tmp_path) as server:
        got = []
        arrived = threading.Event()
        client = socketio.Client()

        @client.on("log_batch")
        def on_batch(payload):
            got.extend(item["message"] for item in payload["lines"])
            if len(got) >= 3:
                arrived.set()

        client.connect(server.url, transports=[transport])
        lean = LeanClient(server.url)
        try:
            client.call("start_streaming", {"deployment_id": "mixed", "batch": True})
            lean.call("start_streaming", {"deployment_id": "mixed", "batch": True},
                      on_other=lambda message: None)
            with open(tmp_path / "mixed.log", "a") as out:
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
