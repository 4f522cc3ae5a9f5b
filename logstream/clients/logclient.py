"""Python client helpers: connect, follow deployments in order, ping the server."""

import collections
import threading
import time

import httpx
import socketio

# Lines held while the server hasn't said where the stream starts; beyond
# this they are dropped and asked for again (the next join resumes from the
# last line handed on), so memory stays bounded.
MAX_PENDING = 10_000
# Joins left unanswered (None) asked again this many times in a row.
NO_REPLY_RETRIES = 3


class Subscription:
    """The lines of one followed deployment, in order, each exactly once.

    python-socketio runs every incoming event in its own thread, so events
    can arrive out of order; lines are put back in order by their number
    and duplicates (resends after a reconnect) are dropped.
    """

    def __init__(self, deployment_id, since=None, batch=True, maxlen=None, on_line=None):
        self.deployment_id = deployment_id
        self.batch = batch
        self.on_line = on_line
        self.last_line = since or 0   # the last line handed on, in order
        self.started = None           # the streaming_started status, once known
        self.statuses = []
        self.errors = []
        self._ready = False
        self._unanswered = 0  # joins in a row the server answered with None
        self._pending = {}
        self._lines = collections.deque(maxlen=maxlen)
        self._cond = threading.Condition()

    # -- fed by the client's event threads ----------------------------------

    def _started(self, status, since):
        """Handle the reply to a start_streaming that asked for lines after since."""
        first = status["first_line"]
        with self._cond:
            if since is not None and first <= since:
                # The file was truncated or replaced while we were away:
                # numbering starts again.
                self._pending = {n: m for n, m in self._pending.items() if n >= first}
                self.last_line = first - 1
            elif since is None:
                # Asked for the tail: the reply says where history starts.
                # (With since, last_line stays: lines up to since may still
                # be on their way, and the reply can overtake the history.)
                self.last_line = max(self.last_line, first - 1)
            # Lines held back before this reply that are at or below
            # last_line are resends.
            self._pending = {n: m for n, m in self._pending.items() if n > self.last_line}
            self.started = status
            self._ready = True
            self._drain()

    def _restarting(self):
        with self._cond:
            # After a reconnect, history can overtake the reply that says
            # where it starts: hold lines back until that reply arrives.
            self._ready = False

    def _receive(self, items):
        with self._cond:
            for item in items:
                # Until the server says where the stream starts, keep every
                # line: after a truncation, numbers restart below last_line.
                if not self._ready and len(self._pending) >= MAX_PENDING:
                    continue  # asked for again when the stream restarts
                if not self._ready or item["line"] > self.last_line:
                    self._pending[item["line"]] = item["message"]
            if self._ready:
                self._drain()

    def _status(self, status):
        with self._cond:
            self.statuses.append(status)
            if status["type"] in ("truncated", "rotated", "deleted", "created"):
                # Numbering restarts.
                self.last_line = status["next_line"] - 1
                self._pending = {n: m for n, m in self._pending.items() if n > self.last_line}
                self._drain()
            self._cond.notify_all()

    def _drain(self):
        while self.last_line + 1 in self._pending:
            self.last_line += 1
            message = self._pending.pop(self.last_line)
            self._lines.append((self.last_line, message))
            if self.on_line is not None:
                self.on_line(self.last_line, message)
        self._cond.notify_all()

    # -- for the caller -----------------------------------------------------

    def get(self, timeout=None):
        """Return the next (line, message), waiting up to timeout seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._lines, timeout):
                raise TimeoutError(f"no line from {self.deployment_id} in {timeout} s")
            return self._lines.popleft()

    def wait_for_line(self, number, timeout=10):
        """Wait until line `number` has been received; return True if it was."""
        with self._cond:
            return self._cond.wait_for(lambda: self.last_line >= number, timeout)

    def take(self, count, timeout=10):
        """Return the next count lines, waiting up to timeout seconds in all."""
        deadline = time.monotonic() + timeout
        return [self.get(max(0.0, deadline - time.monotonic())) for _ in range(count)]

    def drain(self):
        """Return every line received and not yet taken, without waiting."""
        with self._cond:
            lines = list(self._lines)
            self._lines.clear()
            return lines

    def __iter__(self):
        while True:
            yield self.get()


class LogClient:
    """A python-socketio client for a logstream server.

    Use it as a context manager. ``follow()`` joins a deployment's room;
    after a dropped connection, or a server that stopped and came back, the
    client reconnects by itself and resumes every subscription after its
    last line, so nothing is lost or repeated.
    """

    def __init__(self, url, *, transports=("websocket",), token=None, reconnection=True):
        self.url = url
        self.transports = list(transports)
        self.token = token
        self.reconnection = reconnection
        self._closing = threading.Event()
        self._reconnecting = None  # the thread trying to come back, while it runs
        self._reconnect_lock = threading.Lock()
        # One way back after every drop: this client's own, which also comes
        # back after the server closed the connection (python-socketio's
        # reconnects only after a lost transport).
        self.sio = socketio.Client(reconnection=False)
        self.subscriptions = {}
        self.errors = []
        self._register_handlers()

    def _register_handlers(self):
        sio = self.sio

        @sio.on("connect")
        def on_connect():
            # Runs after every reconnect too: resume after the last line seen.
            for sub in list(self.subscriptions.values()):
                self._request(sub, sub.last_line, wait=False)

        @sio.on("disconnect")
        def on_disconnect(reason=None):
            # A lost transport, a missed heartbeat, or a server that closed
            # the connection because it stops: come back when it can.
            if (reason != sio.reason.CLIENT_DISCONNECT and self.reconnection
                    and not self._closing.is_set()):
                self._start_reconnecting()

        @sio.on("new_log")
        def on_new_log(data):
            sub = self.subscriptions.get(data["deployment_id"])
            if sub is not None:
                sub._receive([data])

        @sio.on("log_batch")
        def on_log_batch(data):
            sub = self.subscriptions.get(data["deployment_id"])
            if sub is not None:
                sub._receive(data["lines"])

        @sio.on("status")
        def on_status(data):
            sub = self.subscriptions.get(data.get("deployment_id"))
            if sub is None or data["type"] == "streaming_started":
                return
            sub._status(data)
            if data["type"] == "lagging":
                # The server stopped sending after last_line, every line up to
                # it is already on its way to us: ask for the rest from disk.
                self._request(sub, data["last_line"], wait=False)

        @sio.on("stream_error")
        def on_stream_error(data):
            self.errors.append(data)
            sub = self.subscriptions.get(data.get("deployment_id"))
            if sub is not None and data.get("error") == "source_failed":
                # The server let go of the file after an error; joining again
                # starts a fresh follower, resuming after our last line.
                sub.errors.append(data)
                self._request(sub, sub.last_line, wait=False)

        @sio.on("connect_error")
        def on_connect_error(data):
            self.refusal = data.get("message") if isinstance(data, dict) else data

    def connect(self, timeout=10):
        """Open the connection; a refusal raises ConnectionError with the server's reason."""
        self._closing.clear()
        return self._open(timeout)

    def _open(self, timeout=10):
        self.refusal = None
        try:
            self.sio.connect(self.url, transports=self.transports,
                             auth={"token": self.token} if self.token else None,
                             wait_timeout=timeout)
        except socketio.exceptions.ConnectionError as error:
            self.sio.disconnect()  # close the half-open transport
            raise socketio.exceptions.ConnectionError(
                f"{self.url} refused the connection: {self.refusal}" if self.refusal
                else str(error)) from error
        return self

    @property
    def reconnecting(self):
        """Return True while the connection is down and the client is trying to come back."""
        thread = self._reconnecting
        return not self.sio.connected and thread is not None and thread.is_alive()

    def _start_reconnecting(self):
        with self._reconnect_lock:
            if self._reconnecting is None or not self._reconnecting.is_alive():
                self._reconnecting = threading.Thread(
                    target=self._reconnect, daemon=True, name="logclient:reconnect")
                self._reconnecting.start()

    def _reconnect(self, first_delay=0.2, delay_max=2.0):
        delay = first_delay
        while not self._closing.wait(delay):
            if self.sio.connected:
                return  # and stayed up for a moment: a later drop starts anew
            try:
                self._open()
                delay = first_delay
            except (socketio.exceptions.ConnectionError, ValueError):
                # ValueError: the old connection is still closing down.
                delay = min(delay * 2, delay_max)
        if self.sio.connected:  # closed while an attempt was under way
            self.sio.disconnect()

    def close(self):
        """Close the connection and stop reconnecting."""
        self._closing.set()
        # disconnect() alone leaves a client that is between reconnection
        # attempts trying again forever; shutdown() stops those too.
        self.sio.shutdown()

    def __enter__(self):
        return self.connect() if not self.sio.connected else self

    def __exit__(self, *exc):
        self.close()

    @property
    def connected(self):
        """Return True while the connection is up."""
        return self.sio.connected

    def follow(self, deployment_id, since=None, batch=True, maxlen=None, on_line=None,
               timeout=10):
        """Join a deployment's room and return its Subscription."""
        if deployment_id in self.subscriptions and self.sio.connected:
            # The server answers a join for a deployment this connection
            # already streams like a resume, sending nothing again: leave it
            # first, so this subscription gets its history from `since`.
            self.unfollow(deployment_id, timeout=timeout)
        sub = Subscription(deployment_id, since=since, batch=batch, maxlen=maxlen,
                           on_line=on_line)
        self.subscriptions[deployment_id] = sub
        self._request(sub, since, wait=True, timeout=timeout)
        return sub

    def unfollow(self, deployment_id, timeout=10):
        """Leave a deployment's room."""
        self.subscriptions.pop(deployment_id, None)
        return self.sio.call("stop_streaming", {"deployment_id": deployment_id},
                             timeout=timeout)

    def _request(self, sub, since, wait, timeout=10):
        request = {"deployment_id": sub.deployment_id, "batch": sub.batch}
        sub._restarting()
        if since is not None:
            request["since"] = since

        def answered(reply):
            if reply and reply.get("type") == "streaming_started":
                sub._unanswered = 0
                sub._started(reply, since)
            elif reply:
                sub.errors.append(reply)
            else:
                # No answer (the server gave up waiting, or we raced a
                # disconnect): without one the subscription would never be
                # ready and its lines would pile up. Ask again.
                sub._unanswered += 1
                sub.errors.append({"error": "no_reply", "message":
                                   "The server did not answer start_streaming."})
                if (sub._unanswered <= NO_REPLY_RETRIES and self.sio.connected
                        and self.subscriptions.get(sub.deployment_id) is sub):
                    threading.Thread(target=self._request, args=(sub, sub.last_line or since, False),
                                     daemon=True, name="logclient:rejoin").start()

        if wait:
            reply = self.sio.call("start_streaming", request, timeout=timeout)
            answered(reply)
            if reply and "error" in reply:
                self.subscriptions.pop(sub.deployment_id, None)
                raise ValueError(reply["message"])
        else:
            self.sio.emit("start_streaming", request, callback=answered)

    def ping(self, payload=None, timeout=5):
        """Ping the server and return the round-trip time in milliseconds."""
        started = time.perf_counter()
        self.sio.call("ping", payload, timeout=timeout)
        return (time.perf_counter() - started) * 1000

    def search(self, deployment_id, text, *, regex=False, limit=100, before=None, timeout=30):
        """Search a deployment's whole log; return its matches as (line, message), newest first.

        The list has a ``next_before`` attribute: None when every match was
        returned, else the ``before`` that asks for the older ones.
        """
        params = {"q": text, "limit": limit}
        if regex:
            params["regex"] = "1"
        if before is not None:
            params["before"] = before
        body = self._get_json(f"/api/deployments/{deployment_id}/search", params, timeout)
        matches = SearchResult((m["line"], m["message"]) for m in body["matches"])
        matches.next_before = body.get("next_before") if body["truncated"] else None
        return matches


    def lines(self, deployment_id, since=0, limit=100, timeout=30):
        """Return up to limit (line, message) pairs of a deployment's log after line since."""
        body = self._get_json(f"/api/deployments/{deployment_id}/lines",
                              {"since": since, "limit": limit}, timeout)
        return [(m["line"], m["message"]) for m in body["lines"]]

    def _get_json(self, path, params, timeout):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=timeout)
        body = response.json() if response.headers.get("content-type", "").startswith(
            "application/json") else {}
        if response.status_code != 200:
            raise ValueError(body.get("message") or
                             f"The request failed: HTTP {response.status_code}.")
        return body


class SearchResult(list):
    """A list of (line, message) matches that knows where the next page starts."""

    next_before = None


def follow(url, deployment_id, since=None, **options):
    """Connect to url and follow one deployment; return (client, subscription)."""
    client = LogClient(url, **options).connect()
    return client, client.follow(deployment_id, since=since)
