"""LogPane and Dashboard against a real server, in a kernel-less Python process.

Widgets work without a front end: their messages just have no one to go to.
Each pane's messages are also handed to a stand-in for pane.js (panefront),
so what a page would show can be read back and checked.
"""

import json
import random
import threading
import time

import pytest

from conftest import append, wait_until
from logstream.web.server import start_server
from logstream.core.simulator import lifecycle
from logstream.clients.widgets import PHASES, Dashboard, LogPane, describe_line, format_duration
from logstream.clients.pane import MAX_UPDATE_CHARS
from panefront import FrontEnd

FRONT_ENDS = {}


@pytest.fixture(autouse=True)
def front_ends(monkeypatch):
    """Hand every message a pane sends to its own FrontEnd too."""
    FRONT_ENDS.clear()
    send = LogPane.send

    def recording_send(self, content, buffers=None):
        FRONT_ENDS.setdefault(self, FrontEnd()).receive(content)
        send(self, content, buffers)

    monkeypatch.setattr(LogPane, "send", recording_send)
    yield FRONT_ENDS
    FRONT_ENDS.clear()


def front(pane):
    """Return the stand-in page of pane."""
    return FRONT_ENDS.setdefault(pane, FrontEnd())


def press(pane, name):
    """Press a pane's button as its front end does: with a message to the kernel."""
    pane._on_front_end_message(pane, {"type": "action", "name": name}, [])


@pytest.fixture
def pane(server):
    """Open LogPanes on the module's server; closed after the test."""
    opened = []

    def open_pane(deployment_id, **options):
        made = LogPane(server, deployment_id, **options)
        opened.append(made)
        return made

    yield open_pane
    for made in opened:
        made.close()


def numbers(pane):
    return [n for n, _ in pane.lines]


def shown(pane, text):
    """Return True once text is on the pane's page (not just in the kernel's buffer)."""
    return text in front(pane).texts()


def header(pane, key):
    """Return what the pane's page shows in its header under key."""
    return front(pane).header.get(key, "")


def test_lines_arrive_in_order_and_are_counted(logs, pane):
    deployment_id, path = logs.make(120)
    p = pane(deployment_id, since=0)
    wait_until(lambda: p.count == 120, message="the history")
    assert numbers(p) == list(range(1, 121))
    append(path, "".join(f"live {i}\n" for i in range(121, 131)))
    wait_until(lambda: p.count == 130, message="the live lines")
    assert numbers(p) == list(range(1, 131))
    assert p.lines[-1] == (130, "live 130")
    wait_until(lambda: shown(p, "live 130") and header(p, "count") == "130 lines")
    assert p.status == "connected" and header(p, "status") == "connected"
    assert front(p).numbers() == list(range(1, 131))


def test_default_history_is_the_last_50_lines(logs, pane):
    deployment_id, _ = logs.make(80)
    p = pane(deployment_id)
    wait_until(lambda: p.count == 50)
    assert numbers(p) == list(range(31, 81))


def test_ping_shows_the_round_trip_time(logs, pane):
    deployment_id, _ = logs.make(1)
    p = pane(deployment_id)
    assert p.rtt_ms is None
    rtt = p.ping()
    assert rtt > 0 and p.rtt_ms == rtt
    wait_until(lambda: header(p, "rtt") == f"RTT {rtt:.1f} ms", message="the RTT on the page")
    press(p, "ping")
    wait_until(lambda: p.rtt_ms != rtt, message="a second ping")
    assert p.rtt_ms > 0


def test_ping_while_disconnected_says_what_to_do(logs, pane):
    deployment_id, _ = logs.make(1)
    p = pane(deployment_id, connect=False)
    with pytest.raises(ConnectionError, match="press Connect before Ping"):
        p.ping()
    press(p, "ping")  # a button never raises into the kernel: it shows the problem
    wait_until(lambda: "press Connect" in header(p, "note"))
    with pytest.raises(ValueError, match="has no 'reboot' button"):
        p.click("reboot")


def test_clear_empties_the_view_and_count_and_lines_are_not_sent_again(logs, pane):
    deployment_id, path = logs.make(10)
    p = pane(deployment_id, since=0)
    wait_until(lambda: p.count == 10 and shown(p, "line 10"))
    press(p, "clear")
    assert (p.count, p.lines) == (0, [])
    wait_until(lambda: header(p, "count") == "0 lines" and not shown(p, "line 10"))
    append(path, "after clear\n")
    wait_until(lambda: p.count == 1)
    assert p.lines == [(11, "after clear")]


def test_disconnect_then_connect_resumes_without_gap_or_duplicate(logs, pane):
    deployment_id, path = logs.make(5)
    p = pane(deployment_id, since=0)
    wait_until(lambda: p.count == 5)
    press(p, "disconnect")
    assert p.status == "disconnected"
    wait_until(lambda: header(p, "status") == "disconnected")
    append(path, "written while away 6\nwritten while away 7\n")
    time.sleep(0.3)  # give a wrongly still-open subscription time to deliver
    assert p.count == 5
    press(p, "connect")
    assert p.status == "connected"
    wait_until(lambda: p.count == 7, message="the lines written while away")
    assert numbers(p) == [1, 2, 3, 4, 5, 6, 7]
    assert p.lines[-1] == (7, "written while away 7")


def payload_bytes(message):
    return len(json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode())


def test_a_burst_of_10000_lines_sends_each_line_once_in_throttled_updates(logs, pane):
    deployment_id, path = logs.make(0)
    p = pane(deployment_id)
    wait_until(lambda: header(p, "status") == "connected")
    page = front(p)
    before, bytes_before, seen_before = p.renders, p.bytes_sent, len(page.messages)
    started = time.monotonic()
    append(path, "".join(f"burst {i}\n" for i in range(1, 10_001)))
    wait_until(lambda: p.count == 10_000 and shown(p, "burst 10000"), timeout=30)
    elapsed = time.monotonic() - started
    renders = p.renders - before
    assert len(p.lines) == p.maxlen == 500
    assert numbers(p) == list(range(9501, 10_001))
    # The page keeps the newest 5,000 rows, in order.
    assert page.numbers() == list(range(5001, 10_001))
    # Each update carries only lines never sent before (lines the page would
    # drop at once may never be sent at all).
    sent = [item[0] for update in page.updates() for item in update.get("lines", [])]
    assert sent == sorted(set(sent)), "a line was sent twice, or out of order"
    # At most one update per 0.1 s, however many lines came in meanwhile.
    assert 1 <= renders <= 10 * elapsed + 2, (renders, elapsed)
    # The bytes counted are those of the messages sent, and those are about
    # the lines themselves: nothing is sent again, no markup is added.
    # (The stand-in gets each message just before the pane counts it.)
    wait_until(lambda: p.bytes_sent - bytes_before == sum(
        payload_bytes(m) for m in page.messages[seen_before:]),
        message="the count of bytes sent to match the messages")
    burst = page.messages[seen_before:]
    counted = sum(payload_bytes(m) for m in burst)
    each_line_once = sum(payload_bytes([10_000 + i, i, f"burst {i}"]) + 1 for i in range(1, 10_001))
    assert counted < each_line_once + 200 * len(burst), (counted, each_line_once)


def test_an_update_carries_at_most_its_budget_of_text(logs, pane):
    deployment_id, _ = logs.make(0)
    # One update at start (the header), then none for 100 s: this test
    # feeds lines and flushes itself, as the client and flush threads would.
    p = pane(deployment_id, connect=False, max_renders_per_second=0.01)
    wait_until(lambda: p.renders == 1)
    long = "x" * 60_000
    for number in range(1, 101):
        p._on_line(number, f"{number} {long}")
    assert p._flush()
    (update,) = front(p).updates()[1:]
    numbers_sent = [item[1] for item in update["lines"]]
    assert sum(len(item[2]) for item in update["lines"]) <= MAX_UPDATE_CHARS
    # The newest lines, in order; the oldest were dropped before being sent.
    assert numbers_sent == list(range(numbers_sent[0], 101)) and numbers_sent[0] > 1
    assert p.count == 100 and len(p.lines) == 100


def test_a_page_that_loads_late_gets_the_kept_lines_once(logs, pane):
    deployment_id, path = logs.make(30)
    p = pane(deployment_id, since=0, maxlen=20)
    wait_until(lambda: shown(p, "line 30"))
    late = FrontEnd()  # a page opened now: it missed every update so far
    FRONT_ENDS[p] = late
    p._on_front_end_message(p, {"type": "hello", "since": 0}, [])
    (backlog,) = late.messages
    assert backlog["type"] == "backlog" and backlog["header"]["count"] == "30 lines"
    assert late.numbers() == list(range(11, 31))  # the lines the kernel keeps
    assert sum(n for _, n in backlog["rates"]) == 30
    append(path, "line 31\n")
    wait_until(lambda: late.numbers()[-1:] == [31])
    # A second hello (another tab) repeats the backlog; this page keeps each row once.
    p._on_front_end_message(p, {"type": "hello", "since": 0}, [])
    wait_until(lambda: len(late.messages) >= 3)
    assert late.numbers() == list(range(11, 32))
    p.clear()
    wait_until(lambda: late.numbers() == [])
    append(path, "line 32\n")
    wait_until(lambda: late.numbers() == [32])


def test_the_render_rate_follows_max_renders_per_second(server, logs, pane):
    deployment_id, path = logs.make(0)
    p = pane(deployment_id, max_renders_per_second=4)
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            append(path, f"steady {i}\n")
            stop.wait(0.005)

    thread = threading.Thread(target=writer)
    before, started = p.renders, time.monotonic()
    thread.start()
    try:
        wait_until(lambda: p.renders - before >= 6, message="six renders")
    finally:
        stop.set()
        thread.join()
    elapsed = time.monotonic() - started
    renders = p.renders - before
    assert p.count > renders * 5  # many lines per render
    assert renders <= 4 * elapsed + 2, (renders, elapsed)


def test_log_text_is_sent_as_text(logs, pane):
    # The page inserts it with textContent (tests/test_jupyterlab.py checks
    # that no <img> appears); here: it arrives exactly as written.
    deployment_id, _ = logs.make(0)
    hostile = '<img src=x onerror="alert(1)"> & <b>bold</b>'
    logs.data_dir.joinpath(f"{deployment_id}.log").write_text(hostile + "\n")
    p = pane(deployment_id)
    wait_until(lambda: shown(p, hostile))
    assert p.lines == [(1, hostile)]


def test_a_front_end_without_widgets_shows_a_sentence(logs, pane):
    deployment_id, _ = logs.make(3)
    p = pane(deployment_id, since=0)
    p.wait_for(3)
    data, _ = p._repr_mimebundle_()
    assert data["text/plain"] == (f"LogPane {deployment_id}: connected, 3 lines, RTT — "
                                  "(a live widget: JupyterLab 4 or Notebook 7 shows it)")
    assert "application/vnd.jupyter.widget-view+json" in data


def test_two_panes_show_only_their_own_deployment(logs, pane):
    first, first_path = logs.make(3, prefix="first")
    second, second_path = logs.make(3, prefix="second")
    a, b = pane(first, since=0), pane(second, since=0)
    append(first_path, "first 4\n")
    append(second_path, "second 4\nsecond 5\n")
    wait_until(lambda: a.count == 4 and b.count == 5)
    assert [m for _, m in a.lines] == ["first 1", "first 2", "first 3", "first 4"]
    assert all(m.startswith("second") for _, m in b.lines)
    a.clear()
    assert b.count == 5


def test_bad_arguments_are_refused_with_a_sentence(server, logs):
    with pytest.raises(ValueError, match="There is no deployment called 'nowhere'"):
        LogPane(server, "nowhere")
    with pytest.raises(ValueError, match="is not a deployment id"):
        LogPane(server, "../etc/passwd")
    with pytest.raises(ValueError, match="server handle or an http"):
        LogPane("localhost:5000", "x")
    with pytest.raises(ValueError, match="maxlen"):
        LogPane(server, "x", maxlen=0)
    wait_until(lambda: not [t for t in threading.enumerate() if t.name == "logpane:nowhere"],
               message="the refused pane's render thread to end")


def test_close_stops_the_render_thread_and_the_connection(logs, server):
    deployment_id, _ = logs.make(1)
    p = LogPane(server, deployment_id)
    client = p._client
    assert client.connected
    p.close()
    assert p.status == "disconnected" and not client.connected
    wait_until(lambda: not p._thread.is_alive(), message="the render thread to end")


def test_a_pane_reconnects_by_itself_when_the_server_comes_back(tmp_path):
    (tmp_path / "app.log").write_text("before 1\n")
    first = start_server(data_dir=tmp_path)
    port = first.port
    p = LogPane(first, "app", since=0)
    try:
        wait_until(lambda: p.count == 1)
        first.stop()
        wait_until(lambda: p.status == "reconnecting", message="the pane to notice")
        wait_until(lambda: header(p, "status") == "reconnecting")
        append(tmp_path / "app.log", "while down 2\n")
        with start_server(data_dir=tmp_path, port=port):
            wait_until(lambda: p.status == "connected", timeout=15, message="the reconnection")
            append(tmp_path / "app.log", "after 3\n")
            wait_until(lambda: p.count == 3)
            assert p.lines == [(1, "before 1"), (2, "while down 2"), (3, "after 3")]
            wait_until(lambda: header(p, "duration").startswith("connected for"))
    finally:
        p.close()
        first.stop()


def test_phases_are_the_simulators(logs):
    rng = random.Random(7)
    while True:  # a run that does not fail passes through every phase
        events = list(lifecycle(rng, "shop-api"))
        if events[-1][2].endswith("succeeded"):
            break
    seen = list(dict.fromkeys(phase for _, phase, _ in events))
    assert tuple(seen) == PHASES
    assert describe_line("2025-01-01T00:00:00.000Z WARN  [build] Image size") == ("WARN", "build")
    assert describe_line("just text [build] here") == (None, None)


def test_durations_read_like_a_clock():
    assert [format_duration(s) for s in (0, 59, 65, 3725)] == \
        ["0 s", "59 s", "1 min 05 s", "1 h 02 min"]


@pytest.fixture(scope="module")
def fast_server(tmp_path_factory):
    """A server whose simulated deployments write a line every 5 ms."""
    with start_server(data_dir=tmp_path_factory.mktemp("fast"), line_interval=0.005) as handle:
        yield handle


def test_dashboard_new_button_opens_a_pane_and_follows_the_lifecycle(fast_server):
    earlier = fast_server.new_deployment()
    dash = Dashboard([], fast_server)
    try:
        assert earlier in dash.picker.options
        values = []
        dash.progress.observe(lambda change: values.append(change["new"]), "value")
        dash.new_button.click()
        assert dash.note_label.value == ""
        (pane,) = dash.panes
        assert dash.picker.value == pane.deployment_id
        assert pane.deployment_id in dash.refresh()
        wait_until(lambda: pane.outcome is not None, timeout=30, message="the deployment to end")
        wait_until(lambda: dash.progress.value == len(PHASES) - 1, message="a full bar")
        # It only ever moves forward. (How many steps it shows depends on how
        # fast the deployment runs against the 10 renders a second.)
        assert values == sorted(values) and values[-1] == len(PHASES) - 1
        expected = {"succeeded": "success", "failed": "danger"}[pane.outcome]
        wait_until(lambda: dash.progress.bar_style == expected)
        assert pane.phase == "done" and pane.outcome in dash.progress_label.value
    finally:
        dash.close()


def test_dashboard_keeps_rooms_apart_and_the_picker_switches_the_bar(fast_server):
    first, second = fast_server.new_deployment(), fast_server.new_deployment()
    dash = Dashboard([first, second], fast_server)
    try:
        a, b = dash.panes
        assert [p.deployment_id for p in dash.row.children] == [first, second]
        # Every lifecycle writes at least its 7 clone lines; one that fails
        # early (a quarter do) may write barely 20 in all.
        wait_until(lambda: a.count >= 7 and b.count >= 7)
        for pane_, deployment_id in ((a, first), (b, second)):
            written = (fast_server.data_dir / f"{deployment_id}.log").read_text().splitlines()
            assert all(written[n - 1] == message for n, message in pane_.lines)
        dash.picker.value = first
        wait_until(lambda: dash.progress_label.value.startswith(first))
        dash.picker.value = second
        wait_until(lambda: dash.progress_label.value.startswith(second))
        assert dash.add(first) is a  # opening an open deployment reuses its pane
        dash.remove(second)
        assert dash.panes == [a] and b.status == "disconnected"
    finally:
        dash.close()


def test_dashboard_needs_to_know_its_server():
    with pytest.raises(ValueError, match="Give the Dashboard a server"):
        Dashboard([])
