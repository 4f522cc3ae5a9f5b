"""Speak Engine.IO and Socket.IO by hand over a bare WebSocket, keeping every frame."""

import json
import time

import websocket  # websocket-client: a plain WebSocket, no Socket.IO on top

ENGINEIO_TYPES = {"0": "open", "1": "close", "2": "ping", "3": "pong", "4": "message",
                  "5": "upgrade", "6": "noop"}
SOCKETIO_TYPES = {"0": "CONNECT", "1": "DISCONNECT", "2": "EVENT", "3": "ACK",
                  "4": "CONNECT_ERROR", "5": "BINARY_EVENT", "6": "BINARY_ACK"}


def socketio_url(url, path="/socket.io/"):
    """Return the ws:// URL that opens a Socket.IO session straight on a WebSocket."""
    base = url.rstrip("/").replace("http://", "ws://", 1).replace("https://", "wss://", 1)
    return f"{base}{path}?EIO=4&transport=websocket"


def describe(frame):
    """Return what a text frame means, e.g. 'Socket.IO EVENT "pong"' or 'Engine.IO ping'."""
    if not frame:
        return "(the WebSocket was closed)"
    kind = ENGINEIO_TYPES.get(frame[0], f"unknown type {frame[0]!r}")
    if kind != "message":
        return f"Engine.IO {kind}" + (" (handshake)" if kind == "open" else "")
    if len(frame) < 2:
        return "Engine.IO message (empty)"
    packet = SOCKETIO_TYPES.get(frame[1], f"unknown packet {frame[1]!r}")
    rest = frame[2:]
    ack_id = ""
    while rest[:1].isdigit():
        ack_id, rest = ack_id + rest[0], rest[1:]
    text = f"Socket.IO {packet}"
    if packet == "EVENT" and rest:
        text += f" {json.loads(rest)[0]!r}"
    if ack_id:
        text += f" (ack id {ack_id})"
    return text


class RawSocket:
    """A bare WebSocket to a Socket.IO server that records what crosses the wire.

    Nothing is done for you: no handshake, no heartbeat answers, no
    reconnection. ``frames`` holds (seconds since opening, direction, text).
    """

    def __init__(self, url, timeout=5):
        self.url = socketio_url(url)
        self.frames = []
        self._opened = time.monotonic()
        self.ws = websocket.create_connection(self.url, timeout=timeout)
        self.status = self.ws.getstatus()            # 101 Switching Protocols
        self.headers = dict(self.ws.getheaders() or {})

    @property
    def connected(self):
        """Return True while the WebSocket is open."""
        return self.ws.connected

    def send(self, text):
        """Send one text frame."""
        self.ws.send(text)
        self._record("sent", text)

    def receive(self, timeout=5):
        """Return the next text frame, waiting up to timeout seconds."""
        self.ws.settimeout(timeout)
        text = self.ws.recv()
        self._record("received", text)
        return text

    def receive_until(self, predicate, timeout=5):
        """Receive frames until predicate(frame) is true; return them all."""
        deadline = time.monotonic() + timeout
        got = []
        while not got or not predicate(got[-1]):
            got.append(self.receive(max(0.01, deadline - time.monotonic())))
        return got

    def until_closed(self, timeout=5):
        """Receive frames until the server closes the WebSocket; return them."""
        deadline = time.monotonic() + timeout
        got = []
        try:
            while self.connected:
                text = self.receive(max(0.01, deadline - time.monotonic()))
                got.append(text)
                if text == "":  # the close frame: websocket-client has answered it
                    break
        except websocket.WebSocketConnectionClosedException:
            pass
        return got

    def _record(self, direction, text):
        self.frames.append((time.monotonic() - self._opened, direction, text))

    def transcript(self, width=64):
        """Return the frames as lines: time, direction, frame, meaning."""
        rows = []
        for at, direction, text in self.frames:
            arrow = "→" if direction == "sent" else "←"
            shown = text if len(text) <= width else text[: width - 1] + "…"
            rows.append(f"{at * 1000:8.1f} ms {arrow} {shown:<{width}}  {describe(text)}")
        return "\n".join(rows)

    def close(self):
        """Close the WebSocket."""
        self.ws.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
