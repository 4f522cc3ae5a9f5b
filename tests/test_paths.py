"""`logstream serve PATH...`: named files, nested folders, symlinks and standard input."""

import http.client
import os
import signal
import subprocess
import sys

import httpx
import pytest

from conftest import append, serve_process, wait_until
from logstream.clients.logclient import LogClient
from logstream.core.sources import FollowedSet, path_id
from logstream.core.spool import StdinSpool
from logstream.web.server import start_server


@pytest.fixture
def tree(tmp_path):
    """A folder with a log, a nested log, a non-log file, a symlink out, and one loose file."""
    folder = tmp_path / "app"
    (folder / "api").mkdir(parents=True)
    (folder / "app.log").write_text("top 1\ntop 2\n")
    (folder / "api" / "app.log").write_text("nested 1\n")
    (folder / "notes.txt").write_text("not a log\n")
    secret = tmp_path / "secret.log"
    secret.write_text("secret 1\n")
    (folder / "leak.log").symlink_to(secret)
    (folder / "linked").symlink_to(tmp_path, target_is_directory=True)
    loose = tmp_path / "syslog"
    loose.write_text("loose 1\nloose 2\nloose 3\n")
    return tmp_path


def listed(client):
    return {d["path"]: d for d in client.get("/api/deployments").json()}


def test_ids_are_url_safe_stable_and_distinct_for_look_alike_paths(tmp_path):
    nested = path_id("app/api/app.log", tmp_path / "app/api/app.log")
    flat = path_id("app/api-app.log", tmp_path / "app/api-app.log")
    assert nested.startswith("app-api-app-") and flat.startswith("app-api-app-")
    assert nested != flat
    assert nested == path_id("app/api/app.log", tmp_path / "app/api/app.log")
    odd = path_id("../we ird/..name.log", tmp_path / "x")
    assert "/" not in odd and ".." not in odd and " " not in odd


def test_a_folder_is_followed_recursively_without_symlinks_or_other_files(tree):
    with start_server(sources=FollowedSet([tree / "app", tree / "syslog"])) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        by_path = listed(client)
        assert set(by_path) == {str(tree / "app/app.log"), str(tree / "app/api/app.log"),
                                str(tree / "syslog")}
        assert by_path[str(tree / "syslog")]["lines"] == 3
        ids = {d["id"] for d in by_path.values()}
        assert len(ids) == 3
        page = client.get("/").text
        assert str(tree / "app/api/app.log") in page
        assert "New deployment" not in page
        refused = client.post("/deployments", headers={"Accept": "application/json"})
        assert refused.status_code == 409 and "follows the files" in refused.json()["message"]
        assert not (tree / "data").exists()


def test_a_file_created_later_in_a_followed_folder_appears_and_streams(tree):
    with start_server(sources=FollowedSet([tree / "app"])) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        later = tree / "app" / "api" / "deeper" / "worker.log"
        later.parent.mkdir()
        later.write_text("worker 1\n")
        entry = wait_until(lambda: listed(client).get(str(later)), message="the new file listed")
        with LogClient(server.url) as socket_client:
            lines = socket_client.follow(entry["id"])
            assert lines.get(timeout=10) == (1, "worker 1")
            append(later, "worker 2\n")
            assert lines.get(timeout=10) == (2, "worker 2")


def test_a_symlink_named_on_the_command_line_is_followed(tree):
    link = tree / "named-link.log"
    link.symlink_to(tree / "secret.log")
    with start_server(sources=FollowedSet([link])) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        (entry,) = client.get("/api/deployments").json()
        assert entry["path"] == str(link)
        assert client.get(f"/deployments/{entry['id']}/raw").text == "secret 1\n"


@pytest.mark.parametrize("attempt", [
    "../secret", "..%2Fsecret", "%2E%2E%2Fsecret.log", "app/../../secret",
    "leak", "leak.log", "linked", "secret", "..", "%2e%2e",
])
def test_nothing_outside_the_named_paths_can_be_searched_read_or_downloaded(tree, attempt):
    with start_server(sources=FollowedSet([tree / "app"])) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        for route in (f"/api/deployments/{attempt}/search?q=secret",
                      f"/api/deployments/{attempt}/lines",
                      f"/deployments/{attempt}/raw", f"/deployments/{attempt}/events"):
            status, body = get_verbatim(server, route)
            assert status in (400, 404), route
            assert "secret 1" not in body
        # The symlink's own id (had it been listed) is refused too.
        leak_id = path_id("app/leak.log", tree / "app" / "leak.log")
        assert client.get(f"/deployments/{leak_id}/raw").status_code == 404


def get_verbatim(server, route):
    """GET route exactly as written: no client-side removal of '..' segments."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("GET", route)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_a_followed_file_replaced_by_a_symlink_is_not_served(tree):
    with start_server(sources=FollowedSet([tree / "app"])) as server, \
            httpx.Client(base_url=server.url, timeout=10) as client:
        entry = listed(client)[str(tree / "app/app.log")]
        (tree / "app/app.log").unlink()
        (tree / "app/app.log").symlink_to(tree / "secret.log")
        for route in (f"/deployments/{entry['id']}/raw",
                      f"/api/deployments/{entry['id']}/search?q=secret"):
            response = client.get(route)
            assert response.status_code == 404
            assert "secret 1" not in response.text


def test_bad_paths_and_names_are_refused_with_a_sentence(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        FollowedSet([tmp_path / "missing.log"])
    with pytest.raises(ValueError, match="neither a regular file nor a folder"):
        FollowedSet(["/dev/null"])
    with pytest.raises(ValueError, match="can't name a stream"):
        with open(os.devnull, "rb") as empty:
            FollowedSet([], stdin=StdinSpool(empty, name="///", state_dir=tmp_path))


def test_the_stdin_spool_stays_within_its_budget(tmp_path):
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as stream:
        spool = StdinSpool(stream, max_bytes=4096, state_dir=tmp_path).start()
        with open(write_end, "wb") as writer:
            for i in range(2000):
                writer.write(f"line {i:05}\n".encode())
        assert spool.wait(10)
    assert spool.rotations >= 4
    size = os.path.getsize(spool.path)
    assert 0 < size <= 4096
    with open(spool.path) as fp:
        text = fp.read()
    assert text.endswith("line 01999\n")
    assert text.startswith("line ")  # rotated at a line boundary
    spool.close()


def serve(args, output, **options):
    """Start `logstream serve ARGS`, its output going to the file output; return (process, url)."""
    return serve_process(*args, stdout=output, **options)


def stop(process):
    process.send_signal(signal.SIGINT)
    return process.wait(timeout=15)


def test_serve_files_folders_and_a_piped_command_end_to_end(tree):
    # A real producer, piped in: its lines reach a client, numbered like a file's.
    producer = subprocess.Popen(
        [sys.executable, "-u", "-c",
         "import sys\nfor i in range(1, 6): print(f'build step {i}')\n"
         "sys.stdout.flush(); sys.stdin.readline()\nprint('build done')"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    process = None
    try:
        log = open(tree / "server-output.txt", "wb")
        process, url = serve([str(tree / "syslog"), str(tree / "app"), "-", "--name", "build"],
                             log, stdin=producer.stdout)
        log.close()  # the server has its own copy
        producer.stdout.close()  # the server holds the only reading end now
        with httpx.Client(base_url=url, timeout=10) as client:
            def spooled():
                listed = {d["path"]: d for d in client.get("/api/deployments").json()}
                return listed if listed.get("-", {}).get("lines") == 5 else None
            entries = wait_until(spooled, timeout=30, message="the piped lines to be spooled")
            assert "-" in entries and str(tree / "syslog") in entries
            assert str(tree / "app/api/app.log") in entries
            build = entries["-"]
            assert build["id"] == "build" and build["live"] is True
            with LogClient(url) as socket_client:
                lines = socket_client.follow("build")
                assert lines.take(5) == [(i, f"build step {i}") for i in range(1, 6)]
                producer.stdin.write(b"\n")
                producer.stdin.close()
                assert lines.get(timeout=10) == (6, "build done")
            assert producer.wait(10) == 0
            finished = wait_until(
                lambda: [d for d in client.get("/api/deployments").json()
                         if d["id"] == "build" and not d["live"]],
                message="the stream to be listed as finished")
            assert finished[0]["lines"] == 6
            # The server keeps serving it: history, search and download.
            found = client.get("/api/deployments/build/search", params={"q": "STEP 2"}).json()
            assert found["matches"] == [{"line": 2, "message": "build step 2"}]
            raw = client.get("/deployments/build/raw")
            assert raw.text.splitlines()[-1] == "build done"
            assert client.get("/healthz").status_code == 200
        assert stop(process) == 0
        assert f"logstream serving 3 path(s) on {url}" in (tree / "server-output.txt").read_text()
    finally:
        for proc in (producer, process):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_serve_refuses_a_missing_path_with_a_sentence(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "logstream.cli", "serve", str(tmp_path / "nope.log")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "no such file or folder" in result.stderr


def test_the_folder_walk_stops_at_its_file_budget(tmp_path, monkeypatch):
    from logstream.core import sources

    for i in range(12):
        (tmp_path / f"f{i:02}.log").write_text("x\n")
    monkeypatch.setattr(sources, "MAX_FILES", 5)
    followed = FollowedSet([tmp_path])
    assert len(followed.describe()) == 5 and followed.truncated
