"""The browser viewer, driven in a real Chromium through Playwright."""

import os
import random
import re
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import append, wait_until
from logstream.web import vendor
from logstream.web.server import start_server
from logstream.core.simulator import format_line, lifecycle

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "viewer.png"
WAIT_MS = 10_000
# What Chromium itself logs while a server is down; expected only in the restart test.
OUTAGE_NOISE = re.compile(r"ERR_CONNECTION_REFUSED|WebSocket connection to .* failed")
# When a tab closes its WebSocket while the server is sending, simple-websocket
# can put one more frame after its close reply (its send() checks `connected`
# without a lock); Chromium reports that, though the page has already left.
CLOSE_RACE_NOISE = re.compile(r"WebSocket connection to .* failed: Data frame received after close")


def unavailable(reason):
    """Skip the module, except under CI, where a missing browser is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so the browser tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        unavailable("Playwright is not installed: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"{CHROMIUM} is missing: install Debian's chromium (make system-deps)")
    if not vendor.is_present():
        unavailable("the browser's Socket.IO client is missing: run python -m logstream.web.vendor")
    expect.set_options(timeout=WAIT_MS)
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Exception as error:  # Playwright raises its own Error type
            unavailable(f"Chromium at {CHROMIUM} did not start: {error}")
        yield chromium
        chromium.close()


class Tabs:
    """Open viewer tabs in one fresh browser context and record what goes wrong in them."""

    def __init__(self, context, base_url):
        from playwright.sync_api import expect

        self.expect = expect
        self.context = context
        self.base_url = base_url
        self.errors = []
        self.dialogs = []
        self.allowed = [CLOSE_RACE_NOISE]
        context.on("console", self._console)
        context.on("weberror", lambda error: self.errors.append(f"pageerror: {error.error}"))
        context.on("dialog", self._dialog)

    def _console(self, message):
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, deployment_id=None, path=None, base_url=None):
        """Open a new tab on a deployment's page (or any path) and return it."""
        page = self.context.new_page()
        path = path or f"/deployments/{deployment_id}"
        page.goto((base_url or self.base_url) + path)
        return page

    def unexpected_errors(self):
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server for the module; simulated deployments write a line every 0.2 s,
    so even one that fails early (about 25 lines) is still live when a page opens."""
    with start_server(data_dir=tmp_path_factory.mktemp("logs"), port=0,
                      line_interval=0.2) as handle:
        yield handle


@pytest.fixture
def tabs(browser, server):
    """A fresh browser context per test; fails the test on any console error."""
    context = browser.new_context(viewport=VIEWPORT)
    opened = Tabs(context, server.url)
    # Count live intervals, so a test can see that reconnects don't add timers.
    context.add_init_script("""
        window.__intervals = 0;
        const setInterval_ = window.setInterval, clearInterval_ = window.clearInterval;
        window.setInterval = (...args) => { window.__intervals += 1; return setInterval_(...args); };
        window.clearInterval = (id) => { window.__intervals -= 1; return clearInterval_(id); };
    """)
    yield opened
    context.close()
    assert opened.unexpected_errors() == [], "the page logged errors"
    assert opened.dialogs == [], "the page opened a dialog"


def line_numbers(page):
    """Return the line numbers in the page's log, top to bottom."""
    return page.eval_on_selector_all("#log li[data-line]", "els => els.map(e => +e.dataset.line)")


def shown(page):
    """Return [line number, text] for every line in the page's log."""
    return page.eval_on_selector_all(
        "#log li[data-line]", "els => els.map(e => [+e.dataset.line, e.textContent])")


def wait_for_line(page, number):
    page.locator(f'#log li[data-line="{number}"]').wait_for(state="attached", timeout=WAIT_MS)


def numbered(start, stop, prefix="line"):
    return "".join(f"{prefix} {i}\n" for i in range(start, stop))


def wait_streaming(tabs, page):
    """Wait until the page has joined its deployment, so later writes reach it live."""
    tabs.expect(page.locator("#status")).to_have_text("Connected")
    page.locator('#viewer[data-streaming="true"]').wait_for(state="attached", timeout=WAIT_MS)


def open_connected(tabs, deployment_id, **options):
    page = tabs.open(deployment_id, **options)
    wait_streaming(tabs, page)
    return page


# -- five manual checks of a live log viewer, automated ------------------------

def test_page_loads_and_shows_connected(tabs, logs):
    deployment_id, _ = logs.make(5)
    page = open_connected(tabs, deployment_id)
    wait_for_line(page, 5)
    assert shown(page) == [[i, f"line {i}"] for i in range(1, 6)]
    tabs.expect(page.locator("#message-count")).to_have_text("5")
    tabs.expect(page.locator("#last-line")).to_have_text("5")
    tabs.expect(page.locator("#duration")).to_have_text(re.compile(r"^\d+ s$"))
    assert page.locator("#connect").is_disabled()
    assert tabs.unexpected_errors() == []


def test_new_deployment_button_streams_lines(tabs):
    page = tabs.open(path="/")
    page.click("#new-deployment")
    page.wait_for_url(re.compile(r"/deployments/[\w.-]+$"))
    tabs.expect(page.locator("#status")).to_have_text("Connected")
    # Lines keep arriving: three times in a row the last line number grows.
    last = page.evaluate("window.logstreamViewer.lastLine")
    for _ in range(3):
        handle = page.wait_for_function(
            "n => window.logstreamViewer.lastLine > n && window.logstreamViewer.lastLine",
            arg=last, timeout=WAIT_MS)
        last = handle.json_value()
    wait_for_line(page, last)
    # History then live lines, with no gap and no duplicate (under load the
    # history may start after line 1: the page joins with the last 50).
    numbers = line_numbers(page)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    # The simulator writes levels and timestamps; the page picks them out.
    last = page.locator("#log li").last
    assert last.locator(".time").count() == 1
    assert last.locator(".level").text_content() in {"INFO", "WARN", "ERROR"}


def test_two_tabs_show_the_same_lines(tabs, logs):
    deployment_id, path = logs.make(10)
    first = open_connected(tabs, deployment_id)
    append(path, numbered(11, 21))
    second = open_connected(tabs, deployment_id)
    append(path, numbered(21, 41))
    for page in (first, second):
        wait_for_line(page, 40)
    assert shown(first) == shown(second) == [[i, f"line {i}"] for i in range(1, 41)]


def test_server_restart_resumes_without_gap_or_duplicate(tabs, tmp_path):
    data_dir = tmp_path / "logs"
    before = start_server(data_dir=data_dir, port=0, line_interval=0.05)
    port = before.port
    after = None
    try:
        path = data_dir / "restart.log"
        path.write_text(numbered(1, 21))
        page = open_connected(tabs, "restart", base_url=before.url)
        append(path, numbered(21, 31))
        wait_for_line(page, 30)

        tabs.allowed.append(OUTAGE_NOISE)  # the browser logs its failed reconnects
        before.stop()
        tabs.expect(page.locator("#status")).to_have_text("Disconnected")
        append(path, numbered(31, 46))  # written while nobody is listening

        after = start_server(data_dir=data_dir, port=port, line_interval=0.05)
        tabs.expect(page.locator("#status")).to_have_text("Connected", timeout=15_000)
        wait_for_line(page, 45)
        append(path, numbered(46, 51))
        wait_for_line(page, 50)
        assert shown(page) == [[i, f"line {i}"] for i in range(1, 51)]
        tabs.expect(page.locator("#message-count")).to_have_text("50")
    finally:
        before.stop()
        if after is not None:
            after.stop()


def test_two_deployments_in_two_tabs_stay_isolated(tabs, logs):
    a_id, a_path = logs.make(3, prefix="alpha")
    b_id, b_path = logs.make(3, prefix="beta")
    a = open_connected(tabs, a_id)
    b = open_connected(tabs, b_id)
    append(a_path, numbered(4, 21, "alpha"))
    append(b_path, numbered(4, 11, "beta"))
    wait_for_line(a, 20)
    wait_for_line(b, 10)
    assert shown(a) == [[i, f"alpha {i}"] for i in range(1, 21)]
    assert shown(b) == [[i, f"beta {i}"] for i in range(1, 11)]


# -- controls -----------------------------------------------------------------

def test_ping_shows_round_trip_in_ms(tabs, logs):
    deployment_id, _ = logs.make(1)
    page = open_connected(tabs, deployment_id)
    assert page.locator("#rtt").text_content() == "–"
    page.click("#ping")
    tabs.expect(page.locator("#rtt")).to_have_text(re.compile(r"^\d+\.\d ms$"))


def test_clear_empties_the_view_and_new_lines_still_arrive(tabs, logs):
    deployment_id, path = logs.make(10)
    page = open_connected(tabs, deployment_id)
    wait_for_line(page, 10)
    page.click("#clear")
    tabs.expect(page.locator("#log li")).to_have_count(0)
    tabs.expect(page.locator("#message-count")).to_have_text("0")
    append(path, numbered(11, 13))
    wait_for_line(page, 12)
    # Cleared lines stay cleared: only the new ones come in.
    assert line_numbers(page) == [11, 12]
    tabs.expect(page.locator("#message-count")).to_have_text("2")


def test_disconnect_then_connect_resumes_and_adds_no_timers(tabs, logs, server):
    deployment_id, path = logs.make(5)
    page = open_connected(tabs, deployment_id)
    wait_for_line(page, 5)
    intervals = page.evaluate("window.__intervals")
    hub = server.app.extensions["logstream"].hub
    for round_ in range(3):
        page.click("#disconnect")
        tabs.expect(page.locator("#status")).to_have_text("Disconnected")
        assert page.locator("#disconnect").is_disabled()
        wait_until(lambda: hub.subscriber_count(deployment_id) == 0,
                   message="the server to drop the page's subscription")
        first = 6 + round_ * 5
        append(path, numbered(first, first + 5))
        page.click("#connect")
        tabs.expect(page.locator("#status")).to_have_text("Connected")
        wait_for_line(page, first + 4)
    assert shown(page) == [[i, f"line {i}"] for i in range(1, 21)]
    assert page.evaluate("window.__intervals") == intervals


def test_html_in_a_log_line_is_shown_as_text(tabs, logs):
    deployment_id, path = logs.make(0)
    page = open_connected(tabs, deployment_id)
    hostile = ["<img src=x onerror=alert(1)>", "<b>bold</b> and <script>alert(2)</script>",
               "2024-01-01T00:00:00Z ERROR <i>styled</i>"]
    append(path, "".join(line + "\n" for line in hostile))
    wait_for_line(page, 3)
    assert shown(page) == [[i, text] for i, text in enumerate(hostile, 1)]
    assert page.locator("#log img, #log b, #log script, #log i").count() == 0
    assert page.locator("#log li").nth(2).get_attribute("class") == "level-error"


def test_levels_and_timestamps_are_picked_out(tabs, logs):
    deployment_id, path = logs.make(0)
    page = open_connected(tabs, deployment_id)
    append(path, "2025-03-14T09:26:53.500Z INFO  [clone] started\n"
                 "2025-03-14 09:26:54,001 - app - WARNING - disk 91% full\n"
                 "[ERROR] connection refused\n"
                 "no level here, not even in AssertionError\n")
    wait_for_line(page, 4)
    items = page.locator("#log li")
    assert [items.nth(i).get_attribute("class") for i in range(4)] == \
        ["level-info", "level-warn", "level-error", None]
    assert items.nth(0).locator(".time").text_content() == "2025-03-14T09:26:53.500Z"
    assert items.nth(1).locator(".time").text_content() == "2025-03-14 09:26:54,001"
    assert items.nth(1).locator(".level").text_content() == "WARNING"


def test_filter_hides_lines_without_losing_them(tabs, logs):
    deployment_id, path = logs.make(0)
    page = open_connected(tabs, deployment_id)
    append(path, "".join(f"{'GET' if i % 3 else 'POST'} /item/{i}\n" for i in range(1, 31)))
    wait_for_line(page, 30)
    visible = page.locator("#log li:not([hidden])")

    page.fill("#filter", "post")  # substring, case-insensitive
    tabs.expect(visible).to_have_count(10)
    tabs.expect(page.locator("#filter-info")).to_have_text("10 of 30 lines match")
    append(path, "POST /item/31\nGET /item/32\n")
    wait_for_line(page, 32)
    tabs.expect(visible).to_have_count(11)  # new lines are filtered too

    page.fill("#filter", r"/item\/(1|2)\d$/")  # a regex
    tabs.expect(visible).to_have_count(20)

    page.fill("#filter", "/[unclosed/")
    tabs.expect(page.locator("#filter")).to_have_class(re.compile(r"\binvalid\b"))
    tabs.expect(page.locator("#filter-info")).to_contain_text("Not a valid regex")

    page.fill("#filter", "")
    tabs.expect(visible).to_have_count(32)
    assert line_numbers(page) == list(range(1, 33))


def test_a_catastrophic_regex_filter_is_stopped_and_the_tab_stays_responsive(tabs, logs):
    deployment_id, path = logs.make(0)
    page = open_connected(tabs, deployment_id)
    # /(a+)+$/ backtracks exponentially on a run of a's that ends in b:
    # on the page's own thread, one such line would freeze the tab.
    append(path, "".join(f"{'a' * 32}b {i}\n" for i in range(1, 6)))
    wait_for_line(page, 5)
    page.fill("#filter", "/(a+)+$/")
    tabs.expect(page.locator("#filter-info")).to_contain_text("too slow", timeout=10_000)
    # Nothing is hidden by a filter that could not run, and lines keep coming.
    tabs.expect(page.locator("#log li:not([hidden])")).to_have_count(5)
    append(path, "after\n")
    wait_for_line(page, 6)
    page.fill("#filter", "/after/")
    tabs.expect(page.locator("#log li:not([hidden])")).to_have_count(1)
    assert tabs.unexpected_errors() == []


def test_auto_scroll_pauses_when_scrolled_up(tabs, logs):
    deployment_id, path = logs.make(200)
    page = open_connected(tabs, deployment_id)
    wait_for_line(page, 200)
    at_bottom = "(() => { const l = document.getElementById('log');" \
                " return l.scrollHeight - l.scrollTop - l.clientHeight < 40; })()"
    page.wait_for_function(at_bottom)
    page.eval_on_selector("#log", "log => { log.scrollTop = 0; }")
    append(path, numbered(201, 204))
    wait_for_line(page, 203)
    tabs.expect(page.locator("#new-lines")).to_have_text("3 new lines ↓")
    assert page.eval_on_selector("#log", "log => log.scrollTop") == 0
    page.click("#new-lines")
    tabs.expect(page.locator("#new-lines")).to_be_hidden()
    assert page.evaluate(at_bottom)


@pytest.mark.parametrize("transport", ["sse", "polling"])
def test_switching_transport_resumes_without_duplicates(tabs, logs, transport):
    deployment_id, path = logs.make(5)
    page = open_connected(tabs, deployment_id)
    wait_for_line(page, 5)
    if transport == "sse":
        with page.expect_request(re.compile(r"/events\?since=5$")):
            page.select_option("#transport", transport)
    else:
        page.select_option("#transport", transport)
    tabs.expect(page.locator("#status")).to_have_text("Connected")
    assert page.evaluate("window.logstreamViewer.transport") == transport
    append(path, numbered(6, 16))
    wait_for_line(page, 15)
    assert shown(page) == [[i, f"line {i}"] for i in range(1, 16)]
    page.click("#ping")
    tabs.expect(page.locator("#rtt")).to_have_text(re.compile(r"^\d+\.\d ms( \(HTTP\))?$"))


def test_server_stops_after_a_long_polling_tab_vanished(browser, tmp_path):
    handle = start_server(data_dir=tmp_path, port=0)
    (tmp_path / "polled.log").write_text(numbered(1, 4))
    context = browser.new_context()
    try:
        tabs = Tabs(context, handle.url)
        page = tabs.open("polled")
        page.select_option("#transport", "polling")
        wait_streaming(tabs, page)
        wait_for_line(page, 3)
        assert tabs.unexpected_errors() == []
    finally:
        context.close()  # no goodbye: the tab just goes, mid long-poll
    stopper = threading.Thread(target=handle.stop, daemon=True)
    stopper.start()
    stopper.join(15)
    assert not stopper.is_alive(), "server.stop() hangs on a vanished long-polling client"


def test_a_token_protected_server_streams_to_the_page(browser, tmp_path):
    (tmp_path / "guarded.log").write_text(numbered(1, 4))
    with start_server(data_dir=tmp_path, port=0, token="s3cret") as handle:
        context = browser.new_context()
        try:
            tabs = Tabs(context, handle.url)
            refused = context.request.get(handle.url + "/deployments/guarded")
            assert refused.status == 401
            requested = []
            context.on("request", lambda request: requested.append(request.url))
            page = tabs.open(path="/deployments/guarded?token=s3cret")
            wait_streaming(tabs, page)
            wait_for_line(page, 3)
            page.select_option("#transport", "sse")
            wait_streaming(tabs, page)
            append(tmp_path / "guarded.log", numbered(4, 6))
            wait_for_line(page, 5)
            assert shown(page) == [[i, f"line {i}"] for i in range(1, 6)]
            assert tabs.unexpected_errors() == []
            # The HttpOnly cookie carries the token: the page can't read it,
            # and builds no URL with it.
            assert "s3cret" not in page.content()
            assert page.evaluate("document.cookie") == ""
            streams = [url for url in requested if "/events" in url or "/socket.io" in url]
            assert streams and not [url for url in streams if "s3cret" in url]
        finally:
            context.close()


def test_sse_transport_streams_a_new_page(tabs, logs):
    deployment_id, path = logs.make(60)
    page = tabs.open(deployment_id)
    page.select_option("#transport", "sse")
    tabs.expect(page.locator("#status")).to_have_text("Connected")
    assert page.evaluate("window.logstreamViewer.transport") == "sse"
    wait_for_line(page, 60)
    append(path, numbered(61, 63))
    wait_for_line(page, 62)
    numbers = line_numbers(page)
    assert numbers == sorted(set(numbers)) and numbers[-1] == 62


def test_burst_keeps_the_dom_bounded_and_the_page_responsive(tabs, logs):
    deployment_id, path = logs.make(0)
    page = open_connected(tabs, deployment_id)
    append(path, numbered(1, 20_001, "burst"))
    wait_for_line(page, 20_000)
    tabs.expect(page.locator("#message-count")).to_have_text("20000")
    assert page.locator("#log li").count() == 5000
    assert line_numbers(page) == list(range(15_001, 20_001))
    # Still responsive: a frame gets painted and the controls still work.
    page.evaluate("new Promise(done => requestAnimationFrame(() => done()))")
    page.fill("#filter", "burst 1999")
    tabs.expect(page.locator("#filter-info")).to_have_text("10 of 5000 lines match")
    page.click("#ping")
    tabs.expect(page.locator("#rtt")).to_have_text(re.compile(r"ms$"))


# -- the index page and the screenshot -----------------------------------------

def test_index_lists_size_state_and_last_activity(tabs, logs, server):
    old_id, old_path = logs.make(3)
    day_ago = datetime.now(timezone.utc).timestamp() - 86_400
    os.utime(old_path, (day_ago, day_ago))
    live_id = server.new_deployment()
    page = tabs.open(path="/")
    old = page.locator(f'tr[data-deployment-id="{old_id}"]')
    tabs.expect(old.locator(".lines")).to_have_text("3")
    tabs.expect(old.locator(".size")).to_have_text(f"{old_path.stat().st_size} Bytes")
    tabs.expect(old.locator(".state")).to_have_text("finished")
    tabs.expect(old.locator(".modified")).to_contain_text("1 d ago")
    live = page.locator(f'tr[data-deployment-id="{live_id}"]')
    tabs.expect(live.locator(".state")).to_have_text("live")
    tabs.expect(live.locator(".modified")).to_contain_text("just now")
    live.locator("a").click()
    page.wait_for_url(f"**/deployments/{live_id}")
    tabs.expect(page.locator("#status")).to_have_text("Connected")


def failing_deployment_log():
    """Return a finished, failed simulated deployment log with fixed timestamps."""
    for seed in range(1000):
        events = list(lifecycle(random.Random(seed), "shop-api"))
        if "failed during test" in events[-1][2]:
            break
    start = datetime(2025, 3, 14, 9, 26, 53, tzinfo=timezone.utc)
    return "".join(format_line(level, phase, message, now=start + timedelta(seconds=i / 2))
                   for i, (level, phase, message) in enumerate(events))


def test_screenshot_of_the_viewer(tabs, logs, request, tmp_path):
    deployment_id, path = logs.make(0, name="shop-api-7f3k2q")
    path.write_text(failing_deployment_log())
    page = open_connected(tabs, deployment_id)
    page.locator("#log li.level-error").last.wait_for()
    page.click("#ping")
    tabs.expect(page.locator("#rtt")).to_have_text(re.compile(r"ms$"))
    # Only `make screenshots` (pytest -k screenshot) replaces the committed
    # picture, so an ordinary test run never dirties the working tree.
    target = SCREENSHOT if "screenshot" in (request.config.option.keyword or "") \
        else tmp_path / "viewer.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
