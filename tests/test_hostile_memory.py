"""A client that never reads: the server's memory stays within its budget."""

import socket
import time

import httpx
import psutil
import pytest
import websocket

from hostilehelp import serve_subprocess, settled_rss


# -- memory: backlogs bounded in bytes ----------------------------------------------

@pytest.mark.parametrize("line, count", [(b"x" * 1023, 12_000), (b"\xff" * 1023, 2_000)],
                         ids=["1KiB-lines", "invalid-utf8-lines"])
def test_a_client_that_never_reads_cannot_grow_the_server(tmp_path, line, count):
    # Invalid UTF-8 grows about 6 times on the wire (each byte becomes "\\ufffd").
    (tmp_path / "big.log").write_bytes((line + b"\n") * count)
    process, url = serve_subprocess(tmp_path)
    sockets = []
    try:
        baseline = psutil.Process(process.pid).memory_info().rss
        # Never reads: a small receive buffer, so the kernel can't hold the backlog.
        for _ in range(1):
            ws = websocket.create_connection(
                url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)], timeout=10)
            ws.recv()
            ws.send("40")
            ws.recv()
            sockets.append(ws)
            for i in range(60):
                ws.send(f'42{i}["start_streaming",{{"deployment_id":"big","since":0}}]')
                time.sleep(0.2)  # within the rate limit (5 a second), so each is served
        grown = settled_rss(process.pid, baseline + (1 << 30)) - baseline
        # One client's byte budget (4 MiB by default), the follower's reads
        # and what the allocator keeps: far below 60 copies of the history.
        assert grown < 80 << 20, f"the server grew by {grown >> 20} MiB"
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
    finally:
        for ws in sockets:
            ws.sock.close()
        process.terminate()
        process.communicate(timeout=15)


def test_sse_readers_that_never_read_cannot_grow_the_server(tmp_path):
    (tmp_path / "big.log").write_bytes((b"y" * 1023 + b"\n") * 12_000)
    process, url = serve_subprocess(tmp_path)
    port = int(url.rsplit(":", 1)[1])
    sockets = []
    try:
        baseline = psutil.Process(process.pid).memory_info().rss
        for _ in range(20):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.sendall(b"GET /deployments/big/events?since=0 HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\n\r\n")
            sockets.append(sock)
        grown = settled_rss(process.pid, baseline + (1 << 30)) - baseline
        # 20 budgets of 4 MiB plus one read in flight each, not 20 histories.
        assert grown < 140 << 20, f"the server grew by {grown >> 20} MiB"
    finally:
        for sock in sockets:
            sock.close()
        process.terminate()
        process.communicate(timeout=15)
