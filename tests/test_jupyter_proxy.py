"""Where a notebook's link to the viewer points, and the launcher tile's settings."""

import json
import os

import httpx
import pytest

from logstream.web import jupyter_proxy
from logstream.web.jupyter_proxy import setup_logstream, viewer_url
from logstream.web.server import start_server

DIRECT = "http://127.0.0.1:4321"
JUPYTER_VARIABLES = ("JUPYTERHUB_SERVICE_PREFIX", "JPY_SESSION_NAME")


@pytest.fixture
def no_jupyter(monkeypatch):
    """Run as a plain Python process would, outside any Jupyter server."""
    for name in JUPYTER_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_outside_jupyter_the_link_is_direct():
    assert viewer_url(4321, DIRECT, environ={}) == DIRECT + "/"


def test_on_jupyterhub_the_link_goes_through_the_users_server():
    environ = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    assert viewer_url(4321, DIRECT, environ=environ) == "/user/ada/proxy/4321/"


def test_under_jupyterlab_the_link_goes_through_its_base_url(tmp_path):
    # What a Jupyter server writes for its own process, read by the kernel it started.
    (tmp_path / "jpserver-777.json").write_text(json.dumps({"base_url": "/lab/base/"}))
    environ = {"JPY_SESSION_NAME": "notebook.ipynb"}
    assert viewer_url(4321, DIRECT, environ=environ, parent_pid=777,
                      runtime_dir=tmp_path) == "/lab/base/proxy/4321/"
    # A server that left no file is taken to sit at the root.
    assert viewer_url(4321, DIRECT, environ=environ, parent_pid=778,
                      runtime_dir=tmp_path) == "/proxy/4321/"


def test_without_jupyter_server_proxy_the_link_stays_direct(monkeypatch):
    monkeypatch.setattr(jupyter_proxy, "proxy_installed", lambda: False)
    environ = {"JUPYTERHUB_SERVICE_PREFIX": "/user/ada/"}
    assert viewer_url(4321, DIRECT, environ=environ) == DIRECT + "/"


def test_handle_shows_a_link_that_works_from_this_machine(tmp_path, no_jupyter):
    with start_server(data_dir=tmp_path, port=0) as server:
        deployment_id = server.new_deployment()
        assert server.viewer_url == server.url + "/"
        shown = server._repr_html_()
        assert f'href="{server.url}/"' in shown and "running" in shown
        assert httpx.get(server.viewer_url).status_code == 200
        frame = server.iframe(deployment_id)
        assert frame.src == f"{server.url}/deployments/{deployment_id}"
        assert httpx.get(frame.src).status_code == 200
        assert f'src="{frame.src}"' in frame._repr_html_()


def test_handle_links_through_the_hub_and_carries_the_token(tmp_path, no_jupyter,
                                                           monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ada/")
    with start_server(data_dir=tmp_path, port=0, token="s3cret") as server:
        assert server.viewer_url == f"/user/ada/proxy/{server.port}/?token=s3cret"
        assert f'href="/user/ada/proxy/{server.port}/?token=s3cret"' in server._repr_html_()
        # The same page, asked for directly, answers to that token.
        assert httpx.get(server.url + "/?token=s3cret").status_code == 200


def test_launcher_settings_are_what_jupyter_server_proxy_accepts(monkeypatch, tmp_path):
    from jupyter_server_proxy import config
    monkeypatch.setenv("LOGSTREAM_DATA_DIR", str(tmp_path))
    settings = setup_logstream()
    # What jupyter-server-proxy does with an entry point's return value.
    process = config.ServerProcess(name="logstream", **settings)
    assert process.launcher_entry.title == "Log stream"
    assert os.path.isfile(process.launcher_entry.icon_path)
    command = process.command
    assert command[command.index("--data-dir") + 1] == str(tmp_path)
    assert "{port}" in command
    token = settings["environment"]["LOGSTREAM_TOKEN"]
    assert settings["request_headers_override"] == {"Authorization": f"Bearer {token}"}
    assert setup_logstream()["environment"]["LOGSTREAM_TOKEN"] != token, "a fresh token each time"
