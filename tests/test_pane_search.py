"""A LogPane's "Search the whole log" box, kernel side, against a real server.

The page's messages are sent to the pane as pane.js sends them, and what the
pane sends back is read as pane.js would receive it (through JSON).
"""

import json

import pytest

from conftest import append
from logstream.support import wait_until
from logstream.clients.pane import LogPane
from logstream.clients.panesearch import MAX_MATCH_CHARS, REGION_CONTEXT

MARKUP = '<img src=x onerror="window.pwned = 1"> needle & <b>bold</b>'


@pytest.fixture
def pane(server, monkeypatch):
    """Open a LogPane whose sent messages are kept in pane.sent; closed after the test."""
    opened = []
    send = LogPane.send

    def recording_send(self, content, buffers=None):
        self.sent.append(json.loads(json.dumps(content)))
        send(self, content, buffers)

    monkeypatch.setattr(LogPane, "send", recording_send)

    def open_pane(deployment_id):
        made = LogPane.__new__(LogPane)
        made.sent = []
        made.__init__(server, deployment_id)
        opened.append(made)
        return made

    yield open_pane
    for made in opened:
        made.close()


def ask(pane, message, kind):
    """Send pane a message as its page does; return the reply of that kind."""
    before = len([m for m in pane.sent if m["type"] == kind])
    pane._on_front_end_message(pane, json.loads(json.dumps(message)), [])
    wait_until(lambda: len([m for m in pane.sent if m["type"] == kind]) > before,
               what=f"a {kind} message")
    return [m for m in pane.sent if m["type"] == kind][-1]


def test_search_finds_lines_that_scrolled_out_of_the_pane(logs, pane):
    deployment_id, path = logs.make(0)
    opened = pane(deployment_id)
    append(path, f"line 1\n{MARKUP}\n" + "".join(f"line {i}\n" for i in range(3, 1201)))
    opened.wait_for(1200)
    assert opened.lines[0][0] == 701   # the kernel keeps the newest 500
    assert opened.search("needle") == [(2, MARKUP)]
    assert opened.search(r"^line 1\d?$", regex=True) == [(19, "line 19"), (18, "line 18"),
                                                       (17, "line 17"), (16, "line 16"),
                                                       (15, "line 15"), (14, "line 14"),
                                                       (13, "line 13"), (12, "line 12"),
                                                       (11, "line 11"), (10, "line 10"),
                                                       (1, "line 1")]
    reply = ask(opened, {"type": "search", "id": 1, "q": "line 11", "regex": False},
                "search_results")
    # Newest first: lines 1199 down to 11 that contain "line 11".
    want = [[n, f"line {n}"] for n in range(1200, 0, -1) if "line 11" in f"line {n}"]
    assert reply["matches"] == want[:100] and reply["truncated"] is True
    assert (reply["id"], reply["error"]) == (1, "")
    reply = ask(opened, {"type": "search", "id": 2, "q": "onerror", "regex": False},
                "search_results")
    assert reply["matches"] == [[2, MARKUP]] and reply["truncated"] is False


def test_a_bad_or_slow_regex_comes_back_as_a_sentence(logs, pane):
    deployment_id, _ = logs.make(10)
    opened = pane(deployment_id)
    reply = ask(opened, {"type": "search", "id": 3, "q": "(", "regex": True}, "search_results")
    assert reply["matches"] == []
    assert reply["error"] == "'(' is not a valid regular expression: missing ) at position 1."
    with pytest.raises(ValueError, match="not a valid regular expression"):
        opened.search("(", regex=True)
    append(logs.data_dir / f"{deployment_id}.log", "a" * 5000 + "!\n")
    reply = ask(opened, {"type": "search", "id": 4, "q": r"^(a|aa)+$", "regex": True},
                "search_results")
    assert reply["matches"] == [] and reply["error"].startswith(
        "The regular expression '^(a|aa)+$' took over ")
    assert reply["error"].endswith("(it backtracks too much): make it more specific.")
    reply = ask(opened, {"type": "search", "id": 5, "q": "", "regex": False}, "search_results")
    assert reply["error"] == "Type some text to search for."


def test_load_region_sends_the_lines_around_the_match(logs, pane):
    deployment_id, path = logs.make(0)
    opened = pane(deployment_id)
    append(path, "".join(f"line {i}\n" for i in range(1, 1001)))
    opened.wait_for(1000)
    rows_before = opened.lines
    reply = ask(opened, {"type": "load_region", "id": 5, "line": 123}, "region")
    assert reply["line"] == 123 and reply["error"] == ""
    assert reply["lines"] == [[n, f"line {n}"] for n in range(123 - REGION_CONTEXT,
                                                              123 + REGION_CONTEXT + 1)]
    # At the start of the log there is nothing before line 1.
    reply = ask(opened, {"type": "load_region", "id": 6, "line": 3}, "region")
    assert [n for n, _ in reply["lines"]] == list(range(1, 3 + REGION_CONTEXT + 1))
    reply = ask(opened, {"type": "load_region", "id": 7, "line": 5000}, "region")
    assert reply["error"] == "Line 5000 is not in the log."
    reply = ask(opened, {"type": "load_region", "id": 8, "line": "x"}, "region")
    assert reply["error"] == "'x' is not a line number."
    # The live rows were not disturbed.
    assert opened.lines == rows_before


def test_long_matches_are_cut_in_the_results_list(logs, pane):
    deployment_id, path = logs.make(0)
    opened = pane(deployment_id)
    append(path, "needle " + "x" * 5000 + "\n")
    opened.wait_for(1)
    reply = ask(opened, {"type": "search", "id": 9, "q": "needle"}, "search_results")
    [[number, text]] = reply["matches"]
    assert number == 1 and len(text) == MAX_MATCH_CHARS and text.endswith("…")
    assert len(opened.search("needle")[0][1]) == 5007   # Python gets the whole line
