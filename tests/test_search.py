"""Whole-file routes over HTTP: search, a stretch of lines, download, the live list."""

import json
import os
import threading

import httpx
import pytest
from httpx_sse import connect_sse

from conftest import append, wait_until
from logstream.clients.logclient import LogClient
from logstream.core.search import LINE_SECONDS
from logstream.web.server import start_server


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def write_numbered(path, count, mark=()):
    """Write `count` lines; those in mark carry the word NEEDLE."""
    with open(path, "w") as fp:
        for i in range(1, count + 1):
            fp.write(f"2026-01-01 12:00:00 INFO line {i}{' NEEDLE' if i in mark else ''}\n")


def test_search_finds_every_match_newest_first_with_line_numbers(http, logs):
    deployment_id, path = logs.make()
    write_numbered(path, 30_000, mark={3, 15_000, 29_999})
    body = http.get(f"/api/deployments/{deployment_id}/search", params={"q": "needle"}).json()
    assert [m["line"] for m in body["matches"]] == [29_999, 15_000, 3]
    assert body["matches"][-1]["message"] == "2026-01-01 12:00:00 INFO line 3 NEEDLE"
    assert body["truncated"] is False
    assert http.get(f"/api/deployments/{deployment_id}/search",
                    params={"q": "absent"}).json() == {"matches": [], "truncated": False}


def test_search_pages_backwards_with_before_and_limit(http, logs):
    deployment_id, path = logs.make()
    write_numbered(path, 5000, mark=set(range(100, 5001, 100)))
    seen, before = [], None
    for _ in range(10):
        params = {"q": "NEEDLE", "limit": 7}
        if before:
            params["before"] = before
        body = http.get(f"/api/deployments/{deployment_id}/search", params=params).json()
        seen += [m["line"] for m in body["matches"]]
        if not body["truncated"]:
            break
        before = body["next_before"]
    assert seen == list(range(5000, 99, -100))


def test_search_sees_lines_appended_since_the_last_search(http, logs):
    deployment_id, path = logs.make(3)
    url = f"/api/deployments/{deployment_id}/search"
    assert http.get(url, params={"q": "fresh"}).json()["matches"] == []
    append(path, "fresh line\nhalf a li")
    body = http.get(url, params={"q": "fresh"}).json()
    assert body["matches"] == [{"line": 4, "message": "fresh line"}]
    assert http.get(url, params={"q": "half"}).json()["matches"] == []  # not a line yet


def test_regex_search_and_its_errors(http, logs):
    deployment_id, path = logs.make()
    path.write_text("alpha 12\nbeta 7\n" + "a" * 5000 + "!\ngamma 345\n")
    url = f"/api/deployments/{deployment_id}/search"
    body = http.get(url, params={"q": r"^\w+ \d{2,}$", "regex": "1"}).json()
    assert [m["line"] for m in body["matches"]] == [4, 1]
    bad = http.get(url, params={"q": "(unclosed", "regex": "1"})
    assert bad.status_code == 400 and "not a valid regular expression" in bad.json()["message"]
    slow = http.get(url, params={"q": r"^(a|aa)+$", "regex": "1"})
    assert slow.status_code == 400 and slow.json()["error"] == "slow_regex"
    assert f"{LINE_SECONDS} s" in slow.json()["message"]


@pytest.mark.parametrize("params, code", [
    ({}, "invalid_query"),
    ({"q": "x" * 1001}, "invalid_query"),
    ({"q": "a\nb"}, "invalid_query"),
    ({"q": "a", "limit": "0"}, "invalid_limit"),
    ({"q": "a", "limit": "100000"}, "invalid_limit"),
    ({"q": "a", "before": "-1"}, "invalid_before"),
    ({"q": "a", "before": "ten"}, "invalid_before"),
    ({"q": "a", "regex": "maybe"}, "invalid_regex"),
])
def test_bad_search_parameters_get_a_400_with_a_sentence(http, logs, params, code):
    deployment_id, _ = logs.make(2)
    response = http.get(f"/api/deployments/{deployment_id}/search", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert response.json()["message"].endswith(".")


def test_an_unknown_or_malformed_id_is_refused(http):
    assert http.get("/api/deployments/nope/search", params={"q": "a"}).status_code == 404
    response = http.get("/api/deployments/-bad!/search", params={"q": "a"})
    assert response.status_code == 400 and "not a deployment id" in response.json()["message"]
    assert http.get("/deployments/nope/raw").status_code == 404


def test_a_search_out_of_time_says_where_to_continue(tmp_path):
    (tmp_path / "big.log").write_text("".join(f"line {i}\n" for i in range(1, 200_001)))
    with start_server(data_dir=tmp_path, test_config={"LOGSTREAM_SEARCH_SECONDS": 0}) as server:
        body = httpx.get(f"{server.url}/api/deployments/big/search",
                         params={"q": "line"}, timeout=30).json()
    assert body == {"matches": [], "truncated": True, "next_before": 200_001}


def test_searches_beyond_the_cap_get_a_429(tmp_path):
    (tmp_path / "a.log").write_text("x\n")
    with start_server(data_dir=tmp_path, test_config={"LOGSTREAM_MAX_SEARCHES": 0}) as server:
        response = httpx.get(f"{server.url}/api/deployments/a/search", params={"q": "x"})
    assert response.status_code == 429 and "try again" in response.json()["message"]


def test_lines_returns_a_stretch_after_since(http, logs):
    deployment_id, _ = logs.make(50)
    body = http.get(f"/api/deployments/{deployment_id}/lines",
                    params={"since": 40, "limit": 3}).json()
    assert body == {"lines": [{"line": n, "message": f"line {n}"} for n in (41, 42, 43)],
                    "total": 50}
    assert http.get(f"/api/deployments/{deployment_id}/lines",
                    params={"limit": 5000}).status_code == 400


def test_download_is_an_attachment_with_ranges(http, logs):
    deployment_id, path = logs.make(1000)
    data = path.read_bytes()
    response = http.get(f"/deployments/{deployment_id}/raw")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"] == f"attachment; filename={deployment_id}.log"
    assert response.headers["accept-ranges"] == "bytes"
    part = http.get(f"/deployments/{deployment_id}/raw", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"
    tail = http.get(f"/deployments/{deployment_id}/raw", headers={"Range": "bytes=-10"})
    assert tail.content == data[-10:]
    beyond = http.get(f"/deployments/{deployment_id}/raw",
                      headers={"Range": f"bytes={len(data) + 5}-"})
    assert beyond.status_code == 416


def test_a_download_of_a_growing_file_sends_what_its_length_says(http, logs):
    deployment_id, path = logs.make(20_000)
    size = path.stat().st_size
    with http.stream("GET", f"/deployments/{deployment_id}/raw") as response:
        append(path, "later\n" * 10_000)
        body = response.read()
    assert len(body) == size == int(response.headers["content-length"])


def test_every_new_route_needs_the_token(tmp_path):
    (tmp_path / "a.log").write_text("secret line\n")
    routes = ["/api/deployments/a/search?q=secret", "/api/deployments/a/lines",
              "/deployments/a/raw", "/api/deployments/events"]
    with start_server(data_dir=tmp_path, token="s3cret") as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        for route in routes:
            refused = client.get(route)
            assert refused.status_code == 401, route
            assert "secret line" not in refused.text
        assert client.get(routes[0], headers={"Authorization": "Bearer s3cret"}).json()[
            "matches"] == [{"line": 1, "message": "secret line"}]
        assert client.get(routes[2] + "?token=s3cret").text == "secret line\n"
        with LogClient(server.url, token="s3cret") as logclient:
            assert logclient.search("a", "SECRET") == [(1, "secret line")]


def test_logclient_search_pages_and_reports_errors(server, logs):
    deployment_id, path = logs.make()
    write_numbered(path, 300, mark={10, 20, 30})
    with LogClient(server.url) as client:
        first = client.search(deployment_id, "needle", limit=2)
        assert [n for n, _ in first] == [30, 20] and first.next_before == 20
        rest = client.search(deployment_id, "needle", limit=2, before=first.next_before)
        assert [n for n, _ in rest] == [10] and rest.next_before is None
        assert [n for n, _ in client.search(deployment_id, r"line (3|30)\b", regex=True)] == [30, 3]
        with pytest.raises(ValueError, match="not a valid regular expression"):
            client.search(deployment_id, "(", regex=True)


def test_the_list_stream_announces_new_growing_and_finished_deployments(http, logs):
    updates = []
    ready = threading.Event()
    with connect_sse(http, "GET", "/api/deployments/events") as source:
        def read():
            try:
                for event in source.iter_sse():
                    updates.append(json.loads(event.data))
                    ready.set()
            except httpx.HTTPError:
                pass  # closed by the test
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        ready.wait(10)
        deployment_id, path = logs.make(2)

        def entry():
            return next((d for u in updates[-1:] for d in u if d["id"] == deployment_id), None)
        wait_until(lambda: entry() and entry()["lines"] == 2, message="the new log listed")
        append(path, "three\n")
        wait_until(lambda: entry()["lines"] == 3, message="the growth announced")
        os.utime(path, (1, 1))
        wait_until(lambda: entry()["live"] is False, message="the log listed as finished")
        source.response.close()
        reader.join(10)


@pytest.mark.parametrize("setting, route", [
    ("LOGSTREAM_MAX_DOWNLOADS", "/deployments/a/raw"),
    ("LOGSTREAM_MAX_LIST_STREAMS", "/api/deployments/events"),
])
def test_downloads_and_list_streams_beyond_their_cap_get_a_429(tmp_path, setting, route):
    (tmp_path / "a.log").write_text("x\n")
    with start_server(data_dir=tmp_path, test_config={setting: 0}) as server:
        response = httpx.get(server.url + route, timeout=10)
    assert response.status_code == 429 and "try again" in response.json()["message"]


def test_a_line_longer_than_a_search_block_is_searched_and_numbered(http, logs):
    deployment_id, path = logs.make()
    # Longer than one read (4 MiB): searched in its first read, the rest skipped.
    path.write_bytes(b"first\nNEEDLE " + b"x" * (9 << 20) + b"\nafter needle\n")
    body = http.get(f"/api/deployments/{deployment_id}/search", params={"q": "needle"}).json()
    assert [m["line"] for m in body["matches"]] == [3, 2]
    assert body["matches"][1]["message"].startswith("NEEDLE xxx")
    assert body["matches"][1]["message"].endswith("bytes cut]")
