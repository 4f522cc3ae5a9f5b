"""The lessons' static site builds, works offline, and every link between its pages resolves."""

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
# One short lesson runs, to check outputs and images make it into a page; the
# others are rendered without running (the lesson tests run every one).
EXECUTED = "03"


class Page(HTMLParser):
    """Collect a page's links, the resources it loads, and its element ids."""

    def __init__(self, text):
        super().__init__()
        self.links, self.loads, self.ids = [], [], set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for name in ("src", "href") if tag in ("script", "img", "link", "iframe") else ():
            if attrs.get(name):
                self.loads.append(attrs[name])


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    dest = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_site.py"), str(dest),
                    "--execute", EXECUTED], check=True, timeout=600, cwd=ROOT)
    return dest


def pages(site):
    return {path.name: Page(path.read_text()) for path in site.glob("*.html")}


def test_every_lesson_has_a_page_and_the_index_links_them(site):
    assert {f"{path.stem}.html" for path in LESSONS} | {"index.html"} == \
        {path.name for path in site.glob("*.html")}
    index = Page((site / "index.html").read_text())
    assert {f"{path.stem}.html" for path in LESSONS} <= set(index.links)


def test_every_internal_link_resolves(site):
    found = pages(site)
    checked = 0
    for name, page in found.items():
        for link in page.links + page.loads:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https", "mailto", "data"):
                continue
            assert not parts.scheme, f"{name}: unexpected link {link}"
            target = name if not parts.path else unquote(parts.path)
            assert (site / target).is_file(), f"{name} links to {link}, which is not in the site"
            if parts.fragment and target in found:
                assert unquote(parts.fragment) in found[target].ids, f"{name}: no anchor for {link}"
            checked += 1
    assert checked > 2 * len(LESSONS)  # at least the index and the navigation links


def test_the_pages_load_nothing_from_the_network(site):
    for name, page in pages(site).items():
        external = [url for url in page.loads if urlsplit(url).scheme in ("http", "https")]
        assert external == [], f"{name} loads {external}"
        assert not re.search(r"@import\s+url\(\s*['\"]?https?:", (site / name).read_text())


def test_a_run_lesson_shows_its_outputs_and_what_is_left_to_do(site):
    executed = next(site.glob(f"{EXECUTED}-*.html")).read_text()
    assert 'class="jp-OutputArea-child' in executed
    assert "Not done yet:" in executed      # the exercise is left for the reader
    skipped = (site / f"{LESSONS[0].stem}.html").read_text()
    assert 'class="jp-OutputArea-child' not in skipped
