"""Count what a notebook log pane sends its page, next to re-sending the pane's whole HTML."""

import html
import json
import threading

FULL_RENDER_LINES = 500  # what the pane that re-sent its HTML showed


def full_html(lines):
    """Return the pane's lines as one escaped HTML block, as a full re-render would send it."""
    rows = "\n".join(f'<span style="color:#9e9e9e">{number:>6}</span>  {html.escape(text)}'
                     for number, text in lines)
    return ('<div class="logstream-log tex2jax_ignore" style="height:260px;overflow-y:auto;'
            'display:flex;flex-direction:column-reverse;border:1px solid #ddd;'
            'background:#fbfbfb"><pre style="margin:0;padding:4px;font-size:12px;'
            f'line-height:1.35;white-space:pre-wrap;word-break:break-all">{rows}</pre></div>')


def json_bytes(value):
    """Return the size of value as compact UTF-8 JSON, as the pane counts its messages."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


class RenderCost:
    """Count, update by update, the bytes a pane sends and what a full re-render would send.

    A full re-render sends the HTML of the last 500 lines every time, so at
    each of the pane's updates it adds that block's size.
    """

    def __init__(self, pane):
        self.pane = pane
        self.updates = 0
        self.sent = 0            # JSON bytes the pane really sent
        self.full = 0            # JSON bytes re-sending the whole HTML would have sent
        self._lock = threading.Lock()
        self._start = pane.bytes_sent
        self._stopped = False
        pane.on_render(self._updated)

    def _updated(self, pane):
        if self._stopped:
            return
        block = json_bytes(full_html(pane.lines[-FULL_RENDER_LINES:]))
        with self._lock:
            self.updates += 1
            self.full += block
            self.sent = pane.bytes_sent - self._start

    def stop(self):
        """Stop counting; return (updates, bytes sent, bytes a full re-render would send)."""
        with self._lock:
            self._stopped = True
            return self.updates, self.sent, self.full
