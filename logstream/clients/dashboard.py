"""A dashboard of log panes: a deployment picker, New and Open buttons, and a progress bar."""

import threading

import httpx
import ipywidgets as widgets

from logstream.clients.describe import PHASES, url_of
from logstream.clients.pane import DEFAULT_MAXLEN, LogPane


def button(text, icon, handler):
    """Return a button that calls handler when clicked."""
    made = widgets.Button(description=text, icon=icon, layout=widgets.Layout(width="auto"))
    made.on_click(handler)
    return made


def descendants(box):
    """Yield every widget inside box, depth first."""
    stack = list(box.children)
    while stack:
        child = stack.pop()
        stack.extend(getattr(child, "children", ()))
        yield child


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
        self.add_button = button("Open", "folder-open", self._clicked(self._add_picked))
        self.new_button = button("New", "plus", self._clicked(self.new_deployment))
        self.refresh_button = button("Refresh", "refresh", self._clicked(self.refresh))
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
        for child in descendants(self):
            child.close()
        super().close()

    def __repr__(self):
        return (f"Dashboard of {len(self.panes)} log panes on {self.url} "
                "(a live widget: JupyterLab 4 or Notebook 7 shows it)")

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
            # The value last: whoever waits for it sees the colour and text too.
            self.progress.bar_style = style
            self.progress_label.value = text
            self.progress.value = value
