"""start_server: a background server for notebooks that stops cleanly."""

import socket
import threading

import httpx

from conftest import Logs, RawClient, wait_until
from logstream.web.server import start_server


def port_is_free(port):
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def logstream_threads():
    return sorted(t.name for t in threading.enumerate()
                  if t.name.startswith(("follower:", "simulator:", "logstream:")))


def test_start_stream_and_stop_cleanly(tmp_path, capfd):
    before = logstream_threads()
    with start_server(data_dir=tmp_path, port=0, line_interval=0.01) as server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url + "/healthz").status_code == 200
        deployment_id = server.new_deployment()
        client = RawClient(server.url)
        client.call("start_streaming", {"deployment_id": deployment_id, "batch": True})
        wait_until(lambda: len(client.line_numbers()) >= 5, message="simulated lines")
        assert any("GET /healthz" in line for line in server.logs())
    # stopped: clients are disconnected, threads end, the port is free
    wait_until(lambda: not client.sio.connected, message="the client to be disconnected")
    assert port_is_free(server.port)
    wait_until(lambda: logstream_threads() == before, message="server threads to end")
    out, err = capfd.readouterr()
    assert out == "" and err == "", "a quiet server printed into the notebook cell"
    server.stop()  # stopping twice is harmless
    client.close()


def test_restart_on_the_same_port_resumes_without_loss(tmp_path):
    logs = Logs(tmp_path)
    deployment_id, path = logs.make(10)
    server = start_server(data_dir=tmp_path, port=0)
    port = server.port
    client = RawClient(server.url)
    client.call("start_streaming", {"deployment_id": deployment_id, "since": 0})
    wait_until(lambda: len(client.line_numbers()) == 10)
    server.stop()
    with open(path, "a") as fp:
        fp.write("written while the server was down\n")
    with start_server(data_dir=tmp_path, port=port) as again:
        resumed = RawClient(again.url)
        reply = resumed.call("start_streaming", {"deployment_id": deployment_id, "since": 10})
        assert reply["first_line"] == 11
        wait_until(lambda: resumed.line_numbers() == [11])
        assert resumed.messages()[11] == "written while the server was down"
        resumed.close()
