"""The notebook log pane: follow one deployment and send the pane's page only new lines."""

import collections
import json
import pathlib
import threading
import time

import anywidget
import ipywidgets as widgets
import traitlets

from logstream.clients.describe import (describe_line, format_duration, lines_text, outcome_of,
                                        url_of)
from logstream.clients.logclient import LogClient
from logstream.clients.panesearch import SEARCH_LIMIT, PaneSearch
from logstream.core.deployments import is_valid_id

HERE = pathlib.Path(__file__).resolve().parent
# Lines the kernel keeps: what `lines` returns and what a newly opened view starts with.
DEFAULT_MAXLEN = 500
# Rows the front end keeps (pane.js's MAX_ROWS). Lines waiting to be sent
# beyond this many would be dropped by the front end at once: they are
# dropped before they are ever sent.
MAX_ROWS = 5000
# Nor more characters of log text than this in one update (a line can be as
# long as the server's max_line_bytes, 64 KiB by default): the oldest waiting
# lines go first, the newest always stays.
MAX_UPDATE_CHARS = 2 * 1024 * 1024
MAX_RENDERS_PER_SECOND = 10
# With no line arriving, the pane still looks at its connection and clock
# this often, so the status light and the connected-for time stay true.
TICK_SECONDS = 0.25
RATE_WINDOW_SECONDS = 60
ACTIONS = ("connect", "disconnect", "ping", "clear")


class LogPane(anywidget.AnyWidget):
    """Show one deployment's log live, with Connect, Disconnect, Ping, Clear, a filter and a search.

    Lines arrive on the Socket.IO client's threads and only go into bounded
    queues there. A flush thread sends the front end (``pane.js``) what is
    new, at most ``max_renders_per_second`` times a second, as one custom
    message: the lines it has not sent before and the header if it changed.
    The front end appends them (at most once per animation frame), keeps the
    newest 5,000 rows, follows the end unless the reader scrolled up, and
    filters, all without asking the kernel again.
    """

    # One module: the search box's functions, then the pane that uses them.
    _esm = "\n".join((HERE / name).read_text() for name in ("panesearch.js", "pane.js"))
    _css = HERE / "pane.css"
    deployment_id = traitlets.Unicode().tag(sync=True)
    height = traitlets.Unicode("260px").tag(sync=True)

    def __init__(self, server_or_url, deployment_id, *, maxlen=DEFAULT_MAXLEN, since=None,
                 batch=True, connect=True, height="260px",
                 max_renders_per_second=MAX_RENDERS_PER_SECOND):
        url = url_of(server_or_url)
        if not is_valid_id(deployment_id):
            raise ValueError(f"{deployment_id!r} is not a deployment id: use letters, digits, "
                             "'.', '_' and '-' (at most 64).")
        if not isinstance(maxlen, int) or maxlen < 1:
            raise ValueError(f"maxlen must be a whole number of lines, at least 1, not {maxlen!r}.")
        if not max_renders_per_second > 0:
            raise ValueError("max_renders_per_second must be more than 0.")
        self.url = url
        self.maxlen = maxlen
        self.since = since
        self.batch = batch
        self.min_render_interval = 1.0 / max_renders_per_second
        self.renders = 0            # how many updates were sent to the front end
        self.messages_sent = 0      # custom messages sent to the front end, of any kind
        self.bytes_sent = 0         # their JSON payload bytes (Jupyter's envelope comes on top)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self._buffer = collections.deque(maxlen=maxlen)    # (seq, number, message)
        self._outbox = collections.deque()  # the same, not sent yet
        self._outbox_chars = 0              # the length of their messages
        self._rates = collections.deque(maxlen=RATE_WINDOW_SECONDS)  # [second, lines]
        self._seq = 0               # every line received gets the next one, even after Clear
        self._count = 0
        self._last_line = 0
        self._phase = None
        self._outcome = None
        self._rtt_ms = None
        self._client = None
        self._wanted = False        # the user asked to be connected
        self._following = False     # the room was joined at least once
        self._error = None
        self._note = ""
        self._connected_since = None
        self._clear_pending = False
        self._epoch = 0             # bumped by every Clear, so an older backlog can't undo one
        self._header = None         # the header the front end was last sent
        self._header_fields = None  # the same without its version
        self._header_version = 0    # orders headers sent by the flush thread and in backlogs
        self._listeners = []
        self._wake = threading.Event()
        self._closed = threading.Event()
        super().__init__(deployment_id=deployment_id, height=height, layout=widgets.Layout(
            flex="1 1 0", min_width="320px", margin="0 8px 8px 0"))
        self.searcher = PaneSearch(self)
        self.on_msg(self._on_front_end_message)
        self._thread = threading.Thread(target=self._flush_loop, daemon=True,
                                        name=f"logpane:{deployment_id}")
        self._thread.start()
        if connect:
            try:
                self.connect()
            except Exception:
                self.close()
                raise

    # -- what a notebook reads ----------------------------------------------

    @property
    def lines(self):
        """Return the kept (line number, message) pairs, oldest first."""
        with self._lock:
            return [(number, message) for _, number, message in self._buffer]

    @property
    def count(self):
        """Return how many lines arrived since the pane was created or cleared."""
        return self._count

    @property
    def last_line(self):
        """Return the number of the last line received (0 before any)."""
        return self._last_line

    @property
    def rtt_ms(self):
        """Return the last ping's round-trip time in milliseconds, or None."""
        return self._rtt_ms

    @property
    def phase(self):
        """Return the simulated deployment's latest phase tag, or None."""
        return self._phase

    @property
    def outcome(self):
        """Return 'succeeded' or 'failed' once a simulated deployment is done, else None."""
        return self._outcome

    @property
    def header(self):
        """Return the header texts the front end shows (status, count, duration, rtt, note)."""
        return dict(self._header or {})

    @property
    def status(self):
        """Return connected, connecting, reconnecting, disconnected or error."""
        with self._lock:
            return self._status()

    def _status(self):
        if self._error:
            return "error"
        if not self._wanted:
            return "disconnected"
        if self._client is None or not self._following:
            return "connecting"
        # The client reconnects by itself; until it has, say so.
        return "connected" if self._client.connected else "reconnecting"

    # -- actions ------------------------------------------------------------

    def connect(self, timeout=10):
        """Join the deployment's room, resuming after the last line received."""
        with self._lock:
            if self._wanted:
                return self
            self._wanted, self._following, self._error = True, False, None
            client = self._client = LogClient(self.url)
            since = self._last_line or self.since
        self._wake.set()
        try:
            client.connect(timeout=timeout)
            client.follow(self.deployment_id, since=since, batch=self.batch,
                          maxlen=1, on_line=self._on_line, timeout=timeout)
        except Exception as error:
            client.close()
            with self._lock:
                self._wanted, self._client = False, None
                self._error = (str(error) if isinstance(error, ValueError) else
                               f"Could not connect to {self.url}: {error}")
            self._wake.set()
            if isinstance(error, ValueError):
                raise
            raise ConnectionError(self._error) from error
        with self._lock:
            self._following = True
        self._wake.set()
        return self

    def disconnect(self):
        """Leave the room and close the connection; Connect resumes later."""
        with self._lock:
            client, self._client = self._client, None
            self._wanted = self._following = False
            self._error = None
        if client is not None:
            client.close()
        self._wake.set()
        return self

    def ping(self, timeout=5):
        """Ping the server, show the round-trip time and return it in milliseconds."""
        client = self._client
        if client is None or not client.connected:
            raise ConnectionError("The pane is not connected: press Connect before Ping.")
        rtt = client.ping({"from": "LogPane"}, timeout=timeout)
        self._rtt_ms = rtt
        self._wake.set()
        return rtt

    def clear(self):
        """Empty the view and reset the count; cleared lines are not sent again."""
        with self._lock:
            self._buffer.clear()
            self._outbox.clear()
            self._outbox_chars = 0
            self._count = 0
            self._epoch += 1
            self._clear_pending = True
        self._wake.set()
        return self

    def search(self, query, regex=False, limit=SEARCH_LIMIT):
        """Search the whole log on the server; return (line, message) matches, newest first."""
        return self.searcher.search(query, regex=regex, limit=limit)

    def click(self, name):
        """Do what the button called name does, showing an error instead of raising it."""
        if name not in ACTIONS:
            raise ValueError(f"A pane has no {name!r} button; it has {', '.join(ACTIONS)}.")
        self._note = ""
        try:
            getattr(self, name)()
        except Exception as error:  # noqa: BLE001 - a button shows what went wrong
            self._note = str(error)
        self._wake.set()

    def wait_for(self, count, timeout=10):
        """Wait until count lines have arrived (since the last Clear); return the pane."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._count >= count, timeout):
                raise TimeoutError(f"{self.deployment_id}: {self._count} of {count} lines "
                                   f"arrived in {timeout} s (status: {self._status()}).")
        return self

    def on_render(self, callback):
        """Call callback(pane) on the flush thread after each update sent to the front end."""
        self._listeners.append(callback)

    def close(self):
        """Disconnect, stop the flush thread and remove the widget from the page."""
        if hasattr(self, "_closed"):  # else __init__ refused its arguments
            self.disconnect()
            self._closed.set()
            self._wake.set()
        super().close()

    def __repr__(self):
        rtt = "—" if self._rtt_ms is None else f"{self._rtt_ms:.1f} ms"
        return (f"LogPane {self.deployment_id}: {self.status}, {lines_text(self._count)}, RTT {rtt} "
                "(a live widget: JupyterLab 4 or Notebook 7 shows it)")

    # -- the front end ------------------------------------------------------

    def send(self, content, buffers=None):
        """Send a custom message to the front end, counting it and its JSON bytes."""
        size = len(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode())
        with self._send_lock:
            self.messages_sent += 1
            self.bytes_sent += size
        super().send(content, buffers)

    def _on_front_end_message(self, _widget, content, _buffers):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "hello":
            # A front end (a page opened or reloaded) has its module loaded:
            # lines sent before it listened never reached it.
            since = content.get("since")
            self._send_backlog(since if isinstance(since, int) else 0)
        elif kind == "action" and content.get("name") in ACTIONS:
            self.click(content["name"])
        elif kind is not None:
            self.searcher.handle(content)

    def _send_backlog(self, since):
        now = int(time.time())
        with self._lock:
            lines = [list(item) for item in self._buffer if item[0] > since]
            rates = [[now - second, n] for second, n in self._rates]
            header = {**self._header_locked(time.monotonic()), "v": self._header_version}
            epoch = self._epoch
        self.send({"type": "backlog", "epoch": epoch, "header": header, "lines": lines,
                   "rates": rates})

    # -- the client's event threads -----------------------------------------

    def _on_line(self, number, message):
        # Called in order, once per line, under the subscription's lock: keep it short.
        second = int(time.time())
        with self._lock:
            self._seq += 1
            item = (self._seq, number, message)
            self._buffer.append(item)
            self._outbox.append(item)
            self._outbox_chars += len(message)
            while len(self._outbox) > MAX_ROWS or (self._outbox_chars > MAX_UPDATE_CHARS
                                                   and len(self._outbox) > 1):
                self._outbox_chars -= len(self._outbox.popleft()[2])
            self._count += 1
            self._last_line = number
            if self._rates and self._rates[-1][0] == second:
                self._rates[-1][1] += 1
            else:
                self._rates.append([second, 1])
            self._arrived.notify_all()
            _, phase = describe_line(message)
            if phase is not None:
                self._phase = phase
                if phase == "done":
                    self._outcome = outcome_of(message)
        self._wake.set()

    # -- the flush thread ---------------------------------------------------

    def _flush_loop(self):
        while not self._closed.is_set():
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            if self._closed.is_set():
                return
            if self._flush():
                # However many lines keep arriving, wait before the next update.
                self._closed.wait(self.min_render_interval)

    def _header_locked(self, now):
        status = self._status()
        if status != "connected":
            self._connected_since = None
        elif self._connected_since is None:
            self._connected_since = now
        since = self._connected_since
        return {
            "status": status,
            "count": lines_text(self._count),
            "duration": f"connected for {format_duration(now - since)}" if since is not None
            else "not connected",
            "rtt": "RTT —" if self._rtt_ms is None else f"RTT {self._rtt_ms:.1f} ms",
            "note": self._error or self._note,
        }

    def _flush(self):
        """Send the front end what changed since the last update; return True if anything did."""
        with self._lock:
            # The count in the header and the lines sent with it agree.
            header = self._header_locked(time.monotonic())
            lines = [list(item) for item in self._outbox]
            self._outbox.clear()
            self._outbox_chars = 0
            cleared, self._clear_pending = self._clear_pending, False
            epoch = self._epoch
            if header == self._header_fields:
                header = None
            else:
                self._header_fields = dict(header)
                self._header_version += 1
                header["v"] = self._header_version
        update = {"type": "update"}
        if cleared:
            update["clear"] = True
            update["epoch"] = epoch
        if header is not None:
            update["header"] = header
        if lines:
            update["lines"] = lines
        if len(update) == 1:
            return False
        # Counted before it goes: whoever sees the update on the page then
        # finds it counted too.
        if header is not None:
            self._header = header
        self.renders += 1
        self.send(update)
        for listener in list(self._listeners):
            listener(self)
        return True
