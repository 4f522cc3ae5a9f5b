"""A stand-in for pane.js in kernel-less tests: it applies a LogPane's messages the same way."""

import json
import threading

MAX_ROWS = 5000  # pane.js's MAX_ROWS


class FrontEnd:
    """Keep what a page showing the pane would keep, and every message it was sent."""

    def __init__(self):
        self.rows = []          # [seq, number, message], at most MAX_ROWS
        self.last_seq = 0
        self.epoch = 0
        self.header = {}
        self.messages = []
        self.lock = threading.Lock()

    def receive(self, message):
        # Through JSON, as over the kernel's WebSocket.
        message = json.loads(json.dumps(message))
        with self.lock:
            self.messages.append(message)
            if message["type"] == "update":
                if message.get("clear"):
                    self.rows, self.epoch = [], message["epoch"]
                fresh = [item for item in message.get("lines", []) if item[0] > self.last_seq]
                if fresh:
                    self.last_seq = fresh[-1][0]
                    self.rows = (self.rows + fresh)[-MAX_ROWS:]
            elif message["type"] == "backlog" and message["epoch"] >= self.epoch:
                by_seq = {item[0]: item for item in self.rows + message["lines"]}
                self.rows = [by_seq[seq] for seq in sorted(by_seq)][-MAX_ROWS:]
                self.last_seq = max(self.last_seq, self.rows[-1][0] if self.rows else 0)
            header = message.get("header")
            if header and header["v"] >= self.header.get("v", 0):
                self.header = header

    def texts(self):
        """Return the messages of the rows shown, oldest first."""
        with self.lock:
            return [message for _, _, message in self.rows]

    def numbers(self):
        """Return the line numbers of the rows shown, oldest first."""
        with self.lock:
            return [number for _, number, _ in self.rows]

    def updates(self):
        """Return the update messages received, in order."""
        with self.lock:
            return [m for m in self.messages if m["type"] == "update"]
