"""Helpers for the hostile-client tests: servers, raw sessions, raw SSE requests, RSS."""

import json
import socket
import subprocess
import time

import psutil
import websocket

from conftest import serve_process

TOKEN = "s3cret"


def connected_sids(server):
    """Return the Socket.IO sessions the server counts as connected to its namespace."""
    return list(server.socketio.server.manager.rooms.get("/", {}).get(None, {}))


def ws_session(server, auth=None, rcvbuf=None):
    """Open a raw Engine.IO WebSocket and ask to join the namespace; return (ws, reply)."""
    options = {"sockopt": [(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)]} if rcvbuf else {}
    ws = websocket.create_connection(
        server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
        timeout=10, **options)
    ws.recv()  # the Engine.IO open packet
    ws.send("40" + (json.dumps(auth) if auth is not None else ""))
    return ws, ws.recv()


def read_head(sock):
    """Read an HTTP response from sock until its head ends (or the connection does); return every byte read."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def sse_request(server, path, host="127.0.0.1"):
    """Open an SSE request on a raw socket and return it with the response head."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{server.port}\r\n\r\n".encode())
    return sock, read_head(sock).decode(errors="replace")


def serve_subprocess(data_dir, *args, preexec_fn=None):
    """Start `logstream serve` in its own process, its output piped for the test to read."""
    return serve_process("--data-dir", str(data_dir), *args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)


def settled_rss(pid, ceiling, timeout=60):
    """Return the process's RSS once it stops changing (or passes ceiling)."""
    proc = psutil.Process(pid)
    samples = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        samples.append(proc.memory_info().rss)
        if samples[-1] > ceiling:
            break
        if len(samples) >= 6 and max(samples[-6:]) - min(samples[-6:]) < 1 << 20:
            break
        time.sleep(0.5)  # sampling a process from outside: nothing to wait on
    return samples[-1]
