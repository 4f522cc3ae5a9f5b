"""End-to-end: the HTTP routes over a real socket."""

import os
import re
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from conftest import wait_until


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_healthz(http):
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_index_lists_every_deployment_with_a_link_and_a_new_button(http, logs):
    deployment_id, _ = logs.make(3)
    page = http.get("/").text
    # Relative links: they keep working under a proxy's path prefix.
    assert f'href="deployments/{deployment_id}"' in page
    assert 'action="deployments"' in page and 'method="post"' in page
    assert "New deployment" in page


def test_api_lists_lines_bytes_and_live(http, logs):
    deployment_id, path = logs.make(7)
    (entry,) = [d for d in http.get("/api/deployments").json() if d["id"] == deployment_id]
    assert entry["lines"] == 7
    assert entry["bytes"] == path.stat().st_size
    assert entry["live"] is True  # just written
    os.utime(path, (1, 1))
    (entry,) = [d for d in http.get("/api/deployments").json() if d["id"] == deployment_id]
    assert entry["live"] is False


def test_form_post_starts_a_deployment_and_redirects(http, server):
    response = http.post("/deployments", headers={"Accept": "text/html"})
    assert response.status_code == 303
    location = response.headers["Location"]
    # Relative to /deployments, so a proxy's prefix stays in the browser's address.
    assert location.startswith("deployments/")
    page_url = urljoin(str(response.url), location)
    assert page_url.startswith(f"{server.url}/deployments/")
    deployment_id = location.rsplit("/", 1)[1]
    assert http.get(page_url).status_code == 200
    path = server.data_dir / f"{deployment_id}.log"
    wait_until(lambda: path.exists() and path.read_text().count("\n") >= 3,
               message="the simulator to write lines")


def test_json_post_returns_201_with_id_and_url(http, server):
    response = http.post("/deployments", headers={"Accept": "application/json"})
    assert response.status_code == 201
    body = response.json()
    assert body["url"] == f"/deployments/{body['deployment_id']}"
    assert response.headers["Location"] == body["url"]
    listed = {d["id"]: d for d in http.get("/api/deployments").json()}
    assert listed[body["deployment_id"]]["live"] is True


def test_viewer_page_and_unknown_deployment(http, logs):
    deployment_id, _ = logs.make(1)
    page = http.get(f"/deployments/{deployment_id}")
    assert page.status_code == 200
    assert f'data-deployment-id="{deployment_id}"' in page.text
    assert '"../static/vendor/socket.io.min.js"' in page.text
    assert 'data-root-url="../"' in page.text
    assert f'data-events-url="../deployments/{deployment_id}/events"' in page.text
    missing = http.get("/deployments/not-there")
    assert missing.status_code == 404
    assert "no deployment called" in missing.text


@pytest.mark.parametrize("path", [
    "/deployments/..%2F..%2Fetc%2Fpasswd",
    "/deployments/%2e%2e",
    "/deployments/.env",
    "/deployments/a..b",
    "/deployments/" + "x" * 65,
])
def test_bad_ids_are_refused_without_touching_the_filesystem(http, path):
    response = http.get(path)
    assert response.status_code in (400, 404)
    assert "root:" not in response.text


def test_root_page_takes_its_base_from_a_proxys_prefix(http, logs):
    deployment_id, _ = logs.make(1)
    page = http.get("/", headers={"X-Forwarded-Prefix": "/user/ada/proxy/1234"}).text
    assert '<base href="/user/ada/proxy/1234/">' in page
    # Other pages are linked relative to their own address, which has every folder.
    viewer = http.get(f"/deployments/{deployment_id}",
                      headers={"X-Forwarded-Prefix": "/proxy/1234"}).text
    assert "<base" not in viewer


@pytest.mark.parametrize("prefix", ["", "/", "//evil.example", "https://evil.example/x",
                                    'javascript:alert(1)', '/a"><script>alert(1)</script>',
                                    "/a b", "/a?b"])
def test_root_page_ignores_a_prefix_that_is_not_a_plain_path(http, prefix):
    page = http.get("/", headers={"X-Forwarded-Prefix": prefix}).text
    assert "<base" not in page and "evil" not in page and "<script>alert" not in page


def test_pages_and_scripts_name_no_absolute_path():
    # An absolute path would escape a proxy's prefix (tests/test_proxy.py shows it live).
    root = Path(__file__).resolve().parent.parent
    for template in (root / "templates").glob("*.html"):
        assert not re.search(r"[^_]url_for\(", template.read_text()), template.name
    for script in (root / "logstream" / "static").glob("*.js"):
        assert not re.search(r"""["'`]/(api|deployments|static|socket\.io|healthz)""",
                             script.read_text()), script.name


def test_error_page_links_back_relative_to_its_own_address(http):
    page = http.get("/deployments/a..b").text
    assert 'href="../"' in page and 'href="../static/logstream.css"' in page


def test_bad_id_gets_a_sentence_in_json(http):
    response = http.get("/deployments/a..b", headers={"Accept": "application/json"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_deployment_id"
    assert "is not a deployment id" in body["message"]


def test_symlinks_are_neither_listed_nor_served(http, server, tmp_path):
    outside = tmp_path / "outside.log"
    outside.write_text("secret\n")
    os.symlink(outside, server.data_dir / "linked.log")
    assert "linked" not in [d["id"] for d in http.get("/api/deployments").json()]
    assert http.get("/deployments/linked").status_code == 404
    assert http.get("/deployments/linked/events").status_code == 404


def test_the_browser_client_is_served_by_the_app(http):
    response = http.get("/static/vendor/socket.io.min.js")
    assert response.status_code == 200
    assert "io" in response.text[:2000]
