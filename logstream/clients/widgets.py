"""Notebook widgets: live log panes that follow deployments, and a dashboard of them."""

import collections
import html
import re
import threading
import time

import httpx
import ipywidgets as widgets

from logstream.clients.logclient import LogClient
from logstream.core.deployments import is_valid_id

DEFAULT_MAXLEN = 500
MAX_RENDERS_PER_SECOND = 10
# With no line arriving, the pane still looks at its connection and clock
# this often, so the status light and the connected-for time stay true.
TICK_SECONDS = 0.25

# The simulator tags each line with its phase, in this order (simulator.lifecycle).
PHASES = ("clone", "install", "build", "test", "deploy", "health", "done")
SIMULATED_LINE = re.compile(r"^\S+\s+(?P<level>[A-Z]+)\s+\[(?P<phase>[a-z]+)\]\s(?P<message>.*)$")
LEVEL_COLOURS = {"WARN": "#a15c00", "WARNING": "#a15c00", "ERROR": "#c62828"}
STATUS_COLOURS = {"connected": "#2e7d32", "connecting": "#f9a825", "reconnecting": "#f9a825",
                  "disconnected": "#9e9e9e", "error": "#c62828"}


def url_of(server_or_url):
    """Return the base URL of a server handle or URL string, refusing anything else."""
    url = getattr(server_or_url, "url", server_or_url)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"Expected a logstream server handle or an http(s) URL, "
                         f"not {server_or_url!r}.")
    return url.rstrip("/")


def describe_line(text):
    """Return (level, phase) of a simulator line, or (None, None) for any other line."""
    match = SIMULATED_LINE.match(text)
    if match and match["phase"] in PHASES:
        return match["level"], match["phase"]
    return None, None


def log_html(lines, height):
    """Return the lines as escaped HTML: log text is data, never markup."""
    rows = []
    for number, text in lines:
        level, _ = describe_line(text)
        escaped = html.escape(text)
        colour = LEVEL_COLOURS.get(level)
        if colour:
            escaped = f'<span style="color:{colour}">{escaped}</span>'
        rows.append(f'<span style="color:#9e9e9e">{number:>6}</span>  {escaped}')
    body = "\n".join(rows)
    # column-reverse keeps the view scrolled to the newest line; tex2jax_ignore
    # stops MathJax from typesetting a "$" in a log line as mathematics.
    return (f'<div class="logstream-log tex2jax_ignore" style="height:{height};'
            'overflow-y:auto;display:flex;flex-direction:column-reverse;'
            'border:1px solid #ddd;background:#fbfbfb">'
            '<pre style="margin:0;padding:4px;font-size:12px;line-height:1.35;'
            f'white-space:pre-wrap;word-break:break-all">{body}</pre></div>')


def format_duration(seconds):
    """Return a duration such as '42 s', '3 min 05 s' or '1 h 02 min'."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class LogPane(widgets.VBox):
    """Show one deployment's log live, with Connect, Disconnect, Ping and Clear.

    Lines arrive on the Socket.IO client's threads and only go into a bounded
    buffer there; a render thread copies the buffer into the widgets at most
    ``max_renders_per_second`` times a second, by assigning traits (never by
    capturing output), so a flood of lines can't flood the browser.
    """

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
        self.deployment_id = deployment_id
        self.maxlen = maxlen
        self.since = since
        self.batch = batch
        self.height = height
        self.min_render_interval = 1.0 / max_renders_per_second
        self.renders = 0            # how many times the widgets were updated
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._buffer = collections.deque(maxlen=maxlen)
        self._count = 0
        self._version = 0           # bumped whenever the buffer changes
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
        self._rendered = {}
        self._listeners = []
        self._wake = threading.Event()
        self._closed = threading.Event()

        spaced = dict(layout=widgets.Layout(margin="0 12px 0 0"))
        self.light = widgets.HTML(**spaced)
        self.count_label = widgets.Label(**spaced)
        self.duration_label = widgets.Label(**spaced)
        self.rtt_label = widgets.Label(**spaced)
        self.note_label = widgets.Label()
        for label, name in ((self.light, "status"), (self.count_label, "count"),
                            (self.duration_label, "duration"), (self.rtt_label, "rtt")):
            label.add_class(f"logstream-{name}")
        title = widgets.HTML(f"<b>{html.escape(deployment_id)}</b>", **spaced)
        self.connect_button = self._button("Connect", "plug", self._clicked(self.connect))
        self.disconnect_button = self._button("Disconnect", "times", self._clicked(self.disconnect))
        self.ping_button = self._button("Ping", "exchange", self._clicked(self.ping))
        self.clear_button = self._button("Clear", "eraser", self._clicked(self.clear))
        self.log_view = widgets.HTML(log_html([], height))
        header = widgets.HBox([self.light, title, self.count_label, self.duration_label,
                               self.rtt_label],
                              layout=widgets.Layout(align_items="center"))
        buttons = widgets.HBox([self.connect_button, self.disconnect_button, self.ping_button,
                                self.clear_button, self.note_label],
                               layout=widgets.Layout(align_items="center"))
        super().__init__([header, buttons, self.log_view], layout=widgets.Layout(
            flex="1 1 0", min_width="320px", padding="4px", margin="0 8px 8px 0",
            border="1px solid #e0e0e0"))
        self.add_class("logstream-pane")
        self._render()
        self._thread = threading.Thread(target=self._render_loop, daemon=True,
                                        name=f"logpane:{deployment_id}")
        self._thread.start()
        if connect:
            try:
                self.connect()
            except Exception:
                self.close()
                raise

    @staticmethod
    def _button(text, icon, handler):
        button = widgets.Button(description=text, icon=icon,
                                layout=widgets.Layout(width="auto"))
        button.on_click(handler)
        return button

    def _clicked(self, action):
        # A button must never raise into the kernel: show what went wrong instead.
        def handler(_button):
            try:
                self._note = ""
                action()
            except Exception as error:  # noqa: BLE001 - shown to the user
                self._note = str(error)
            self._request_render()
        return handler

    # -- what a notebook reads ----------------------------------------------

    @property
    def lines(self):
        """Return the buffered (line number, message) pairs, oldest first."""
        with self._lock:
            return list(self._buffer)

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
        self._request_render()
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
            self._request_render()
            if isinstance(error, ValueError):
                raise
            raise ConnectionError(self._error) from error
        with self._lock:
            self._following = True
        self._request_render()
        return self

    def disconnect(self):
        """Leave the room and close the connection; Connect resumes later."""
        with self._lock:
            client, self._client = self._client, None
            self._wanted = self._following = False
            self._error = None
        if client is not None:
            client.close()
        self._request_render()
        return self

    def ping(self, timeout=5):
        """Ping the server, show the round-trip time and return it in milliseconds."""
        client = self._client
        if client is None or not client.connected:
            raise ConnectionError("The pane is not connected: press Connect before Ping.")
        rtt = client.ping({"from": "LogPane"}, timeout=timeout)
        self._rtt_ms = rtt
        self._request_render()
        return rtt

    def clear(self):
        """Empty the view and reset the count; cleared lines are not sent again."""
        with self._lock:
            self._buffer.clear()
            self._count = 0
            self._version += 1
        self._request_render()
        return self

    def wait_for(self, count, timeout=10):
        """Wait until count lines have arrived (since the last Clear); return the pane."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self._count >= count, timeout):
                raise TimeoutError(f"{self.deployment_id}: {self._count} of {count} lines "
                                   f"arrived in {timeout} s (status: {self._status()}).")
        return self

    def on_render(self, callback):
        """Call callback(pane) on the render thread after each render."""
        self._listeners.append(callback)

    def close(self):
        """Disconnect, stop rendering and close the widgets."""
        if not hasattr(self, "_closed"):  # __init__ refused its arguments
            return super().close()
        self.disconnect()
        self._closed.set()
        self._wake.set()
        for child in self._descendants():
            child.close()
        super().close()

    def _descendants(self):
        stack = list(self.children)
        while stack:
            child = stack.pop()
            stack.extend(getattr(child, "children", ()))
            yield child

    def __repr__(self):
        return (f"<LogPane {self.deployment_id} {self.status}, {self.count} lines, "
                f"rtt {self._rtt_ms and round(self._rtt_ms, 1)} ms>")

    # -- the client's event threads -----------------------------------------

    def _on_line(self, number, message):
        # Called in order, once per line, under the subscription's lock: keep it short.
        with self._lock:
            self._buffer.append((number, message))
            self._count += 1
            self._version += 1
            self._last_line = number
            self._arrived.notify_all()
            _, phase = describe_line(message)
            if phase is not None:
                self._phase = phase
                if phase == "done":
                    self._outcome = "succeeded" if message.rstrip().endswith("succeeded") \
                        else "failed"
        self._wake.set()

    # -- the render thread --------------------------------------------------

    def _request_render(self):
        self._wake.set()

    def _render_loop(self):
        while not self._closed.is_set():
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            if self._closed.is_set():
                return
            if self._render():
                # However many lines keep arriving, wait before the next render.
                self._closed.wait(self.min_render_interval)

    def _render(self):
        """Copy the state into the widgets; return True when anything changed."""
        now = time.monotonic()
        with self._lock:
            status = self._status()
            if status != "connected":
                self._connected_since = None
            elif self._connected_since is None:
                self._connected_since = now
            since = self._connected_since
            version = self._version
            lines = list(self._buffer) if version != self._rendered.get("version") else None
        state = {
            "status": status,
            "count": f"{self._count} lines",
            "duration": f"connected for {format_duration(now - since)}" if since is not None
            else "not connected",
            "rtt": "RTT —" if self._rtt_ms is None else f"RTT {self._rtt_ms:.1f} ms",
            "note": self._error or self._note,
            "version": version,
        }
        if state == self._rendered:
            return False
        colour = STATUS_COLOURS[status]
        self.light.value = (f'<span title="{status}" style="color:{colour};font-size:16px">●</span>'
                            f' <span class="logstream-status-text">{status}</span>')
        self.count_label.value = state["count"]
        self.duration_label.value = state["duration"]
        self.rtt_label.value = state["rtt"]
        self.note_label.value = state["note"]
        if lines is not None:
            self.log_view.value = log_html(lines, self.height)
        self.connect_button.disabled = status in ("connected", "connecting", "reconnecting")
        self.disconnect_button.disabled = status in ("disconnected", "error")
        self.ping_button.disabled = status != "connected"
        self._rendered = state
        self.renders += 1
        for listener in list(self._listeners):
            listener(self)
        return True


class Dashboard(widgets.VBox):
    """Show several log panes side by side, a deployment picker and a progress bar.

    Items are LogPanes or deployment ids (then give ``server``). The progress
    bar follows the deployment chosen in the picker through the phases the
    simulator tags its lines with.
    """

    def __init__(self, panes=(), server=None, *, maxlen=DEFAULT_MAXLEN, timeout=10):
        items = list(panes)
        if server is not None:
            url = url_of(server)
        else:
            url = next((item.url for item in items if isinstance(item, LogPane)), None)
            if url is None:
                raise ValueError("Give the Dashboard a server (or its URL) or at least one "
                                 "LogPane, so it knows where to find deployments.")
        self.url = url
        self.maxlen = maxlen
        self.timeout = timeout
        self.panes = []
        self._lock = threading.Lock()
        self.picker = widgets.Dropdown(description="Deployment", options=[],
                                       layout=widgets.Layout(width="340px"))
        self.add_button = LogPane._button("Open", "folder-open", self._clicked(self._add_picked))
        self.new_button = LogPane._button("New", "plus", self._clicked(self.new_deployment))
        self.refresh_button = LogPane._button("Refresh", "refresh", self._clicked(self.refresh))
        self.note_label = widgets.Label()
        self.progress = widgets.IntProgress(value=0, min=0, max=len(PHASES) - 1,
                                            description="Progress")
        self.progress_label = widgets.Label()
        self.progress.add_class("logstream-progress")
        self.row = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap", width="100%"))
        toolbar = widgets.HBox([self.picker, self.add_button, self.new_button,
                                self.refresh_button, self.note_label],
                               layout=widgets.Layout(align_items="center"))
        progress = widgets.HBox([self.progress, self.progress_label],
                                layout=widgets.Layout(align_items="center"))
        super().__init__([toolbar, progress, self.row])
        self.add_class("logstream-dashboard")
        for item in items:
            self.add(item)
        self.refresh()
        self.picker.observe(lambda change: self._update_progress(), "value")
        self._update_progress()

    def _clicked(self, action):
        def handler(_button):
            try:
                self.note_label.value = ""
                action()
            except Exception as error:  # noqa: BLE001 - shown to the user
                self.note_label.value = str(error)
        return handler

    def refresh(self):
        """Reload the picker's list from the server's /api/deployments."""
        response = httpx.get(f"{self.url}/api/deployments", timeout=self.timeout)
        response.raise_for_status()
        ids = [d["id"] for d in response.json()]
        # Open panes stay pickable even if the listing is momentarily behind.
        ids += [p.deployment_id for p in self.panes if p.deployment_id not in ids]
        current = self.picker.value
        self.picker.options = ids
        if current in ids:
            self.picker.value = current
        elif self.panes:
            self.picker.value = self.panes[-1].deployment_id
        return ids

    def new_deployment(self):
        """Start a simulated deployment on the server, open a pane on it, return its id."""
        response = httpx.post(f"{self.url}/deployments", timeout=self.timeout,
                              headers={"Accept": "application/json"})
        response.raise_for_status()
        deployment_id = response.json()["deployment_id"]
        self.add(deployment_id)
        return deployment_id

    def add(self, item):
        """Add a pane (or open one on a deployment id) and return it."""
        if isinstance(item, LogPane):
            pane = item
        elif isinstance(item, str):
            pane = self.pane(item) or LogPane(self.url, item, maxlen=self.maxlen)
        else:
            raise TypeError(f"A Dashboard holds LogPanes or deployment ids, not {item!r}.")
        if pane not in self.panes:
            self.panes.append(pane)
            pane.on_render(self._pane_rendered)
            self.row.children = tuple(self.panes)
        if pane.deployment_id not in self.picker.options:
            self.picker.options = (*self.picker.options, pane.deployment_id)
        self.picker.value = pane.deployment_id
        return pane

    def pane(self, deployment_id):
        """Return the pane following deployment_id, or None."""
        return next((p for p in self.panes if p.deployment_id == deployment_id), None)

    def remove(self, deployment_id):
        """Close and remove the pane following deployment_id."""
        pane = self.pane(deployment_id)
        if pane is not None:
            self.panes.remove(pane)
            self.row.children = tuple(self.panes)
            pane.close()
        self._update_progress()

    def close(self):
        """Close every pane and the dashboard's own widgets."""
        if not hasattr(self, "panes"):  # __init__ refused its arguments
            return super().close()
        for pane in list(self.panes):
            pane.close()
        self.panes.clear()
        for child in LogPane._descendants(self):
            child.close()
        super().close()

    def __repr__(self):
        return f"<Dashboard of {len(self.panes)} panes on {self.url}>"

    def _add_picked(self):
        if not self.picker.value:
            raise ValueError("Pick a deployment first (or press New).")
        self.add(self.picker.value)

    def _pane_rendered(self, pane):
        if pane.deployment_id == self.picker.value:
            self._update_progress()

    def _update_progress(self):
        # Called from the picker (kernel thread) and from panes' render threads.
        with self._lock:
            pane = self.pane(self.picker.value) if self.picker.value else None
            if pane is None:
                value, text, style = 0, "open a deployment to follow its progress", ""
            elif pane.phase is None:
                value, text, style = 0, "waiting for the first phase", ""
            else:
                value = PHASES.index(pane.phase)
                text = f"{pane.deployment_id}: {pane.phase}"
                style = {"succeeded": "success", "failed": "danger"}.get(pane.outcome, "info")
                if pane.outcome:
                    text += f" ({pane.outcome})"
            self.progress.value = value
            self.progress.bar_style = style
            self.progress_label.value = text
