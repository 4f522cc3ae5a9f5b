"""Every frame a WebSocket client gets decodes, while control frames and big batches cross."""

import json
import socket
import time

import pytest

from logstream.tools.leanclient import LeanClient
from logstream.web.server import start_server

from conftest import Logs, wait_until

LINES = 4000
PINGS = 150


@pytest.fixture(scope="module")
def fast_heartbeat_server(tmp_path_factory):
    """A server whose Engine.IO heartbeat runs every 50 ms instead of 25 s."""
    # Polling, not inotify: the history is all this test reads.
    with start_server(data_dir=tmp_path_factory.mktemp("logs"), ping_interval=0.05,
                      use_inotify=False) as handle:
        yield handle


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
def test_pongs_and_heartbeats_never_land_inside_a_big_batch(fast_heartbeat_server, deflate):
    logs = Logs(fast_heartbeat_server.data_dir)
    # 160-byte lines: 640 KB of history in frames of 160 KB, far more than
    # the socket buffers hold, so the server's writer waits inside frames.
    deployment_id, _ = logs.make(LINES, prefix="x" * 150 + " line")
    client = LeanClient(fast_heartbeat_server.url, deflate=deflate)
    # Small socket buffers on both ends: the server's writer then waits for
    # room again and again within each frame, giving the pongs every chance
    # to cut in.
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    for connection in list(fast_heartbeat_server.httpd.open_connections):
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    try:
        client.emit("start_streaming", {"deployment_id": deployment_id, "since": 0,
                                        "batch": True}, ack=True)
        numbers, sent = [], []
        while len(numbers) < LINES:
            if numbers and len(sent) < PINGS:
                # A batch is in and the server is writing the next ones; its
                # reader thread answers these pings meanwhile, while the
                # writer waits in the middle of a frame for us to read.
                for _ in range(PINGS // 10):
                    sent.append(f"ping {len(sent)}".encode())
                    client.ping(sent[-1])
            message = client.recv_text()
            if message.startswith(b'42["log_batch"'):
                batch = json.loads(message[2:])[1]
                numbers += [item["line"] for item in batch["lines"]]
            elif message.startswith((b"43", b'42["status"')):
                assert b'"streaming_started"' in message, bytes(message[:200])
            else:
                raise AssertionError(f"unexpected message {bytes(message[:80])!r}")
        # An event's answer comes after the pongs and heartbeats sent before it.
        def answered():
            client.call("ping", "after")
            return len(client.pongs) == len(sent) and client.heartbeats

        wait_until(answered, timeout=10, interval=0.06,  # under the ping rate limit
                   message="the last pongs and a heartbeat")
        assert numbers == list(range(1, LINES + 1))
        assert client.pongs == sent
        assert client.heartbeats > 0
    finally:
        client.close()


def test_a_benchmark_viewer_times_a_line_by_its_arrival_not_by_its_reading(server):
    # The fan-out benchmark's viewers share two cores with the server: the
    # kernel's receive stamp says when a line arrived, however late it is read.
    logs = Logs(server.data_dir)
    deployment_id, log = logs.make(0)
    client = LeanClient(server.url, deflate=False)

    def waiting_in_the_socket():
        try:
            return b"late reader" in client.sock.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False

    try:
        client.join(deployment_id, batch=True)
        client.stamp_arrivals()
        written_ns = time.time_ns()
        with open(log, "a") as f:
            f.write("late reader\n")
        wait_until(waiting_in_the_socket, message="the line to arrive")
        seen_ns = time.time_ns()
        time.sleep(0.3)  # the reader is late on purpose
        while b"late reader" not in client.recv_text():
            pass
        assert written_ns < client.arrived_ns <= seen_ns < time.time_ns() - 300_000_000
    finally:
        client.close(timeout=0.2)
