"""Search a pane's whole log from the kernel and send its page the matches and their surroundings."""

import threading

import httpx

from logstream.clients.logclient import LogClient

# Matches the box asks for; the server gives at most 1,000 in one answer.
SEARCH_LIMIT = 100
MAX_SEARCH_LIMIT = 1000
# A match's text in the results list is cut to this many characters, so one
# answer carries at most MAX_SEARCH_LIMIT * MAX_MATCH_CHARS of log text.
MAX_MATCH_CHARS = 1000
# Lines shown either side of a clicked match, each cut to REGION_LINE_CHARS.
REGION_CONTEXT = 20
REGION_LINE_CHARS = 16 * 1024


def cut(message, most):
    """Return message, shortened to most characters with an ellipsis if longer."""
    return message if len(message) <= most else message[:most - 1] + "…"


class PaneSearch:
    """Answer a pane's search box: one request at a time, off the comm thread, newest wins."""

    def __init__(self, pane):
        self.pane = pane
        self.client = LogClient(pane.url)   # HTTP only: never connected
        self.results = None     # the last search_results message sent
        self.region = None      # the last region message sent
        self._lock = threading.Lock()
        self._pending = {}      # kind -> the newest request of that kind not yet answered
        self._running = False

    def search(self, query, regex=False, limit=SEARCH_LIMIT):
        """Return the whole log's (line, message) matches for query, newest first."""
        if not isinstance(query, str) or not query:
            raise ValueError("Type some text to search for.")
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValueError(f"limit must be a whole number from 1 to {MAX_SEARCH_LIMIT}, "
                             f"not {limit!r}.")
        try:
            return self.client.search(self.pane.deployment_id, query, regex=bool(regex),
                                      limit=limit)
        except httpx.HTTPError as error:
            raise ConnectionError(f"Could not search {self.pane.url}: {error}") from error

    def lines_around(self, line):
        """Return the (line, message) pairs within REGION_CONTEXT lines of line."""
        if isinstance(line, bool) or not isinstance(line, int) or line < 1:
            raise ValueError(f"{line!r} is not a line number.")
        since = max(0, line - REGION_CONTEXT - 1)
        try:
            return self.client.lines(self.pane.deployment_id, since=since,
                                     limit=line + REGION_CONTEXT - since)
        except httpx.HTTPError as error:
            raise ConnectionError(f"Could not read {self.pane.url}: {error}") from error

    def handle(self, content):
        """Queue a search or load_region message from the page; return True if it was one."""
        kind = content.get("type")
        if kind not in ("search", "load_region"):
            return False
        with self._lock:
            self._pending[kind] = content
            if self._running:
                return True
            self._running = True
        threading.Thread(target=self._work, daemon=True,
                         name=f"panesearch:{self.pane.deployment_id}").start()
        return True

    def _work(self):
        while True:
            with self._lock:
                if not self._pending:
                    self._running = False
                    return
                kind, content = self._pending.popitem()
            try:
                if kind == "search":
                    self._answer_search(content)
                else:
                    self._answer_region(content)
            except Exception:  # noqa: BLE001 - the next request must still be answered
                with self._lock:
                    self._running = False
                raise

    def _answer_search(self, content):
        query, regex = content.get("q"), bool(content.get("regex"))
        reply = {"type": "search_results", "id": content.get("id"), "q": query, "regex": regex,
                 "matches": [], "truncated": False, "error": ""}
        try:
            found = self.search(query, regex=regex)
        except (ValueError, ConnectionError) as error:
            reply["error"] = str(error)
        else:
            reply["matches"] = [[n, cut(message, MAX_MATCH_CHARS)] for n, message in found]
            reply["truncated"] = found.next_before is not None
        self.results = reply
        self.pane.send(reply)

    def _answer_region(self, content):
        line = content.get("line")
        reply = {"type": "region", "id": content.get("id"), "line": line, "lines": [], "error": ""}
        try:
            found = self.lines_around(line)
        except (ValueError, ConnectionError) as error:
            reply["error"] = str(error)
        else:
            reply["lines"] = [[n, cut(message, REGION_LINE_CHARS)] for n, message in found]
            if not any(n == line for n, _ in found):
                reply["error"] = f"Line {line} is not in the log."
        self.region = reply
        self.pane.send(reply)
