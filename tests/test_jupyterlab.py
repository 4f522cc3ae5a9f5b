"""Run lessons in a real JupyterLab 4 and Notebook 7 in headless Chromium, and use their panes.

Lesson 06 runs once, up to its clean-up cell; the tests below then use its
panes as a reader would (they run in file order; the clean-up is last).
"""

import re

import pytest

from jupyterui import (NEWEST_ROW, ROOT, TOKEN, chromium, jupyter, newest_row_visible, run,
                       wait_for_cell)

SCREENSHOT = ROOT / "docs" / "screenshots" / "pane.png"
pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# Record every text the panes' line counters show, as the page changes.
WATCH_COUNTS = """() => {
  window.seenCounts = new Set();
  const note = () => document.querySelectorAll('.logstream-count')
      .forEach(el => window.seenCounts.add(el.textContent));
  new MutationObserver(note).observe(document.body,
      {subtree: true, childList: true, characterData: true});
}"""


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def lesson06(browser, tmp_path_factory):
    """Lesson 06 in JupyterLab, run up to its clean-up cell; yields the page."""
    home = tmp_path_factory.mktemp("lab")
    with jupyter("lab", home, ["06-live-log-panes.ipynb"]) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab/tree/06-live-log-panes.ipynb?token={TOKEN}")
        # The status bar says Idle only once the kernel is up and connected;
        # running cells before that runs nothing.
        page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")) \
            .wait_for(timeout=60_000)
        page.evaluate(WATCH_COUNTS)
        select_cell(page, clean_up_cell(page))
        run(page, "Run All Above Selected Cell")
        # Cells run in order: once the one before the clean-up has, all have.
        last = clean_up_cell(page).locator(
            "xpath=preceding-sibling::*[contains(@class, 'jp-CodeCell')][1]")
        wait_for_cell(page, last, 120, home)
        yield page
        page.close()


def clean_up_cell(page):
    return page.locator(".jp-CodeCell", has_text="server.stop()").last


def select_cell(page, cell):
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").click()


def panes(page):
    return page.locator(".logstream-pane")


def test_every_pane_shows_its_newest_line_on_screen(lesson06):
    # The app pane, the burst pane and the dashboard's two.
    assert panes(lesson06).count() == 4
    newest = [newest_row_visible(panes(lesson06).nth(i)) for i in range(4)]
    assert newest[1]["line"] == 10_000 and newest[1]["rows"] == 5000, newest[1]
    assert all(row["following"] for row in newest), newest
    # The counters changed while the cells ran: updates streamed into the page.
    seen = lesson06.evaluate("() => [...window.seenCounts]")
    assert len(seen) >= 3, seen
    progress = lesson06.locator(".logstream-progress")
    progress.scroll_into_view_if_needed()
    assert progress.is_visible()


def test_scrolling_up_stops_following_and_counts_new_lines(lesson06):
    from playwright.sync_api import expect

    app = panes(lesson06).first   # the application writes 50 lines a second into it
    newest_row_visible(app)
    box = app.locator(".logstream-log")
    box.hover()
    lesson06.mouse.wheel(0, -3000)
    button = app.locator(".logstream-new-lines")
    expect(button).to_have_text(re.compile(r"^\d[\d,]* new lines? ↓$"))
    # New lines keep arriving, and the reader stays where they scrolled to.
    first = int(button.text_content().split()[0].replace(",", ""))
    expect(button).not_to_have_text(f"{first:,} new line{'s' if first != 1 else ''} ↓")
    seen = app.evaluate(NEWEST_ROW)
    assert not seen["inBox"] and not seen["following"], seen
    button.click()
    expect(button).to_be_hidden()
    assert newest_row_visible(app)["following"]


def test_the_filter_hides_rows_that_do_not_match(lesson06):
    from playwright.sync_api import expect

    burst = panes(lesson06).nth(1)   # lines 5001 to 10,000 of "burst line N"
    burst.scroll_into_view_if_needed()
    info = burst.locator(".logstream-filter-info")
    shown = burst.locator(".logstream-row:not([hidden])")
    burst.locator(".logstream-filter").fill("burst line 99")
    expect(info).to_have_text("100 of 5000 lines match")
    assert shown.count() == 100
    assert all(t.startswith("burst line 99") for t in shown.all_text_contents())
    burst.locator(".logstream-filter").fill("/7$/")
    expect(info).to_have_text("500 of 5000 lines match")
    assert all(t.endswith("7") for t in shown.all_text_contents())
    assert newest_row_visible(burst)["line"] == 9997
    burst.locator(".logstream-filter").fill("/(/")
    expect(info).to_contain_text("Not a valid regex")
    expect(burst.locator(".logstream-filter")).to_have_class(re.compile(r"\binvalid\b"))
    burst.locator(".logstream-filter").fill("")
    expect(info).to_have_text("")
    assert shown.count() == 5000


def test_ping_shows_the_round_trip_time(lesson06):
    from playwright.sync_api import expect

    burst = panes(lesson06).nth(1)
    rtt = burst.locator(".logstream-rtt")
    expect(rtt).to_have_text("RTT —")   # the lesson pinged only the first pane
    burst.locator(".logstream-ping").click()
    expect(rtt).to_have_text(re.compile(r"^RTT \d+\.\d ms$"))


def test_log_text_is_shown_as_text(lesson06):
    from playwright.sync_api import expect

    # A line of markup written into app.log, from a cell added to the lesson.
    select_cell(lesson06, clean_up_cell(lesson06))
    lesson06.keyboard.press("Escape")
    lesson06.keyboard.press("a")   # a new cell above the clean-up
    lesson06.keyboard.press("Enter")
    lesson06.keyboard.type("append(Path(workdir.name) / 'app.log', "
                           "'<img src=x onerror=\"window.pwned = 1\"> & <b>bold</b>\\n')")
    lesson06.keyboard.press("Shift+Enter")
    app = panes(lesson06).first
    app.scroll_into_view_if_needed()
    row = app.locator(".logstream-row", has_text='<img src=x onerror="window.pwned = 1"> & <b>')
    expect(row).to_have_count(1)
    assert row.text_content() == '<img src=x onerror="window.pwned = 1"> & <b>bold</b>'
    assert row.locator("img, b").count() == 0
    assert lesson06.evaluate("() => window.pwned") is None


def test_screenshot_of_a_pane_in_jupyterlab(lesson06, request, tmp_path):
    from playwright.sync_api import expect

    dashboard = lesson06.locator(".logstream-dashboard")   # two simulated deployments
    for i in (2, 3):
        pane = panes(lesson06).nth(i)
        newest_row_visible(pane)
        pane.locator(".logstream-ping").click()
        expect(pane.locator(".logstream-rtt")).to_have_text(re.compile(r"ms$"))
    dashboard.scroll_into_view_if_needed()
    # Only `make screenshots` (pytest -k screenshot) replaces the committed
    # picture, so an ordinary test run never dirties the working tree.
    target = SCREENSHOT if "screenshot" in (request.config.option.keyword or "") \
        else tmp_path / "pane.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    dashboard.screenshot(path=target)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_reloaded_page_gets_the_kept_lines_again(lesson06):
    from playwright.sync_api import expect

    # Saved outputs name the widgets; after a reload their front ends load
    # again, ask the kernel for what it kept, and follow on from there.
    lesson06.keyboard.press("Control+s")
    expect(lesson06.locator(".jp-mod-dirty")).to_have_count(0)
    lesson06.reload()
    lesson06.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\| Idle")) \
        .wait_for(timeout=60_000)
    expect(panes(lesson06)).to_have_count(4)
    burst = newest_row_visible(panes(lesson06).nth(1))
    assert (burst["line"], burst["rows"]) == (10_000, 500), burst   # the kernel keeps 500
    app = panes(lesson06).first
    before = newest_row_visible(app)["line"]
    expect(app.locator(".logstream-row").last).not_to_have_attribute("data-line", str(before))
    assert newest_row_visible(app)["line"] > before


def on_screen(locator):
    """Return True if locator's element is in the viewport and not covered by another."""
    locator.scroll_into_view_if_needed()
    return locator.evaluate("""el => {
      const r = el.getBoundingClientRect();
      const x = r.left + r.width / 2, y = r.top + r.height / 2;
      return r.width > 0 && r.height > 0 && r.top >= 0 && r.bottom <= innerHeight
        && el.contains(document.elementFromPoint(x, y));
    }""")


def test_the_search_box_finds_old_lines_and_shows_them_with_their_surroundings(lesson06):
    from playwright.sync_api import expect

    markup = '<img src=x onerror="window.pwned = 2"> burst found'
    select_cell(lesson06, clean_up_cell(lesson06))
    lesson06.keyboard.press("Escape")
    lesson06.keyboard.press("a")   # a new cell above the clean-up
    lesson06.keyboard.press("Enter")
    lesson06.keyboard.type("append(burst_log, '" + markup + "\\n')")
    lesson06.keyboard.press("Shift+Enter")
    burst = panes(lesson06).nth(1)   # the kernel keeps lines 9501 on, the page 5001 on
    expect(burst.locator(".logstream-log .logstream-row").last).to_have_text(markup)
    live_rows = burst.locator(".logstream-log .logstream-row").count()
    search = burst.locator(".logstream-search")
    search.locator(".logstream-search-summary").click()
    search.locator(".logstream-search-query").fill("^burst line 123$|onerror")
    search.locator(".logstream-search-regex").check()
    search.locator(".logstream-search-go").click()
    expect(search.locator(".logstream-search-info")).to_have_text("2 matches, newest first")
    matches = search.locator(".logstream-search-match")
    assert matches.all_text_contents() == [f"10001{markup}", "123burst line 123"]
    assert search.locator("img").count() == 0
    assert lesson06.evaluate("() => window.pwned") is None
    assert on_screen(matches.nth(1))
    matches.nth(1).click()
    hit = search.locator(".logstream-search-region .logstream-hit")
    expect(hit).to_have_attribute("data-line", "123")
    expect(hit).to_have_text("burst line 123")
    region = search.locator(".logstream-search-region .logstream-row")
    assert region.count() == 41 and region.first.get_attribute("data-line") == "103"
    assert on_screen(hit)
    # The live rows are where they were.
    assert burst.locator(".logstream-log .logstream-row").count() == live_rows
    search.locator(".logstream-search-query").fill("(")
    search.locator(".logstream-search-go").click()
    expect(search.locator(".logstream-search-info")).to_have_text(
        "'(' is not a valid regular expression: missing ) at position 1.")
    expect(search.locator(".logstream-search-match")).to_have_count(0)


def test_after_the_clean_up_the_panes_stay_on_the_page(lesson06):
    from playwright.sync_api import expect

    cell = clean_up_cell(lesson06)
    select_cell(lesson06, cell)
    lesson06.keyboard.press("Shift+Enter")
    expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]"))
    assert panes(lesson06).count() == 4
    for i in range(4):
        pane = panes(lesson06).nth(i)
        pane.scroll_into_view_if_needed()
        expect(pane.locator(".logstream-status-text")).to_have_text("disconnected")
        expect(pane.locator(".logstream-connect")).to_be_enabled()
        assert newest_row_visible(pane)["rows"] > 0


def test_lesson_00_keeps_its_pane_in_notebook_7_after_run_all(browser, tmp_path):
    from playwright.sync_api import expect

    with jupyter("notebook", tmp_path, ["00-start-here.ipynb"]) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/notebooks/00-start-here.ipynb?token={TOKEN}")
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']") \
            .wait_for(timeout=60_000)
        run(page, "Run All Cells")
        # The last cell, the clean-up, ran too: the pane is disconnected, and still there.
        wait_for_cell(page, clean_up_cell(page), 120, tmp_path)
        # Cells out of view may be detached from the page: bring the pane's in.
        page.locator(".jp-CodeCell", has_text="pane = LogPane(").scroll_into_view_if_needed()
        expect(panes(page)).to_have_count(1)
        pane = panes(page).first
        expect(pane.locator(".logstream-status-text")).to_have_text("disconnected")
        newest = newest_row_visible(pane)
        assert newest["rows"] >= 10 and newest["line"] >= 10, newest
        expect(pane.locator(".logstream-row").first).to_contain_text("started")
        page.close()
