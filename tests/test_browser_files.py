"""The whole-log search box, the download link and the live deployment list, in Chromium."""

import os
import re

import pytest

from conftest import append
from logstream.core.sources import FollowedSet
from logstream.web.server import start_server
from test_browser import VIEWPORT, WAIT_MS, Tabs, browser  # noqa: F401  (the browser fixture)

pytestmark = pytest.mark.browser


@pytest.fixture
def tabs_on(browser):  # noqa: F811  (the fixture imported above)
    """Open tabs on a given server; fail the test on any console error."""
    contexts = []

    def open_tabs(url):
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(Tabs(context, url))
        return contexts[-1]

    yield open_tabs
    for tabs in contexts:
        tabs.context.close()  # a no-op when the test closed it already
        assert tabs.unexpected_errors() == [], "the page logged errors"


def test_search_box_lists_matches_and_shows_a_match_in_its_region(tmp_path, tabs_on):
    with open(tmp_path / "big.log", "w") as fp:
        for i in range(1, 20_001):
            fp.write(f"2026-01-01 12:00:00 INFO line {i}{' NEEDLE' if i in (50, 12_000) else ''}\n")
    with start_server(data_dir=tmp_path) as server:
        tabs = tabs_on(server.url)
        page = tabs.open("big")
        expect = tabs.expect
        page.click("#search-panel summary")
        page.fill("#search-query", "needle")
        page.click("#search-go")
        results = page.locator("#search-results button")
        expect(results).to_have_count(2)
        assert results.evaluate_all("els => els.map(e => +e.dataset.line)") == [12_000, 50]
        expect(page.locator("#search-info")).to_have_text("2 matches, newest first")
        results.nth(1).click()
        hit = page.locator("#search-region li.hit")
        expect(hit).to_have_text("2026-01-01 12:00:00 INFO line 50 NEEDLE")
        assert hit.get_attribute("data-line") == "50"
        numbers = page.eval_on_selector_all("#search-region li", "els => els.map(e => +e.dataset.line)")
        assert numbers == list(range(30, 71))
        # A bad regex is explained, not thrown (Chromium still logs the 400 it got).
        tabs.allowed.append(re.compile(r"status of 400 \(BAD REQUEST\)"))
        page.check("#search-regex")
        page.fill("#search-query", "(oops")
        page.click("#search-go")
        expect(page.locator("#search-info")).to_contain_text("not a valid regular expression")
        # The download link fetches the whole file from a relative URL.
        text = page.evaluate(
            "fetch(document.getElementById('download').href).then(r => r.text())")
        assert text == (tmp_path / "big.log").read_text()
        tabs.context.close()  # before the server stops, so no reset is reported


def test_the_index_shows_new_growing_and_finished_logs_without_a_reload(tmp_path, tabs_on):
    folder = tmp_path / "srv"
    folder.mkdir()
    (folder / "first.log").write_text("one\n")
    with start_server(sources=FollowedSet([folder])) as server:
        tabs = tabs_on(server.url)
        page = tabs.open(path="/")
        expect = tabs.expect
        rows = page.locator("#deployments tbody tr")
        expect(rows).to_have_count(1)
        later = folder / "nested" / "later.log"
        later.parent.mkdir()
        later.write_text("a\nb\n")
        expect(rows).to_have_count(2, timeout=WAIT_MS)
        row = page.locator("#deployments tr", has_text=str(later))
        expect(row.locator(".lines")).to_have_text("2")
        expect(row.locator(".badge")).to_have_text("live")
        append(later, "c\n")
        expect(row.locator(".lines")).to_have_text("3")
        os.utime(later, (1, 1))
        expect(row.locator(".badge")).to_have_text("finished")
        # The new row's link opens that log's page.
        row.locator("a").click()
        page.wait_for_url("**/deployments/*")
        page.locator('#log li[data-line="3"]').wait_for(state="attached", timeout=WAIT_MS)
        tabs.context.close()  # before the server stops, so no reset is reported
