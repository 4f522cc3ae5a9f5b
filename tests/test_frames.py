"""Every frame a WebSocket client gets decodes, while control frames and big batches cross."""

import json
import socket

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
