"""Capture the frames of docs/protocol.md from a real server: `python docs/capture_frames.py`."""

import tempfile
from pathlib import Path

import httpx
import websocket

from logstream.web.server import start_server

DEPLOYMENT = "shop-api-k3x9q2"
FIRST_LINES = ("2026-11-25T17:45:20.101Z INFO  [clone] Cloning into 'shop-api'...\n"
               "2026-11-25T17:45:20.602Z INFO  [clone] HEAD is now at 4f5cf6b\n")


def capture():
    """Run the documented exchange against a fresh server; return its frames."""
    frames = []
    with tempfile.TemporaryDirectory() as tmp, start_server(data_dir=tmp, port=0) as server:
        log = Path(tmp) / f"{DEPLOYMENT}.log"
        log.write_text(FIRST_LINES)

        def write(text):
            with open(log, "a") as fp:
                fp.write(text)

        ws = websocket.create_connection(
            server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket", timeout=10)

        def receive(count=1):
            for _ in range(count):
                frames.append(("<", ws.recv()))

        def send(frame):
            ws.send(frame)
            frames.append((">", frame))

        receive()
        send("40")
        receive()
        send(f'421["start_streaming",{{"deployment_id":"{DEPLOYMENT}","since":1}}]')
        receive(3)
        write("2026-11-25T17:45:21.103Z WARN  [install] pip is looking at multiple versions of urllib3\n")
        receive()
        send(f'422["start_streaming",{{"deployment_id":"{DEPLOYMENT}","since":2,"batch":true}}]')
        receive(3)
        write("2026-11-25T17:45:21.604Z INFO  [install] Collecting flask>=3.0\n"
              "2026-11-25T17:45:22.105Z INFO  [install] Collecting redis>=5.0\n")
        receive()
        send('423["ping",{"sent_at":1795629920123}]')
        receive(2)
        send('42["start_streaming",{"deployment_id":"../etc/passwd"}]')
        receive()
        send(f'424["stop_streaming",{{"deployment_id":"{DEPLOYMENT}"}}]')
        receive(2)
        send(f'425["start_streaming",{{"deployment_id":"{DEPLOYMENT}","since":5}}]')
        receive(2)
        with open(log, "r+") as fp:
            fp.truncate(0)
        receive()
        ws.close()

        write("2026-11-25T17:46:00.000Z INFO  [deploy] Starting replica 1/3 of shop-api\n")
        with httpx.stream("GET", f"{server.url}/deployments/{DEPLOYMENT}/events",
                          headers={"Last-Event-ID": "0"}, timeout=10) as response:
            text = ""
            for chunk in response.iter_text():
                text += chunk
                if "Starting replica" in text:
                    break
        frames.append(("sse", text))
    return frames


if __name__ == "__main__":
    for direction, frame in capture():
        print(frame if direction == "sse" else f"{direction} {frame}")
