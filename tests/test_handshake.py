"""A WebSocket handshake gets the answer wsproto would give, whether logstream answers it or wsproto does."""

import base64
import json
import os
import socket

import pytest
import wsproto
from wsproto.events import AcceptConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from conftest import wait_until
from hostilehelp import read_head
from logstream.web import internals
from logstream.web.handshake import quick_handshake

# What clients offer: none, browsers' (Chromium and Firefox send this one),
# window sizes, no context takeover, an extension nobody speaks, two offers.
OFFERS = [
    None,
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12",
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    "x-webkit-deflate-frame",
    "x-unknown, permessage-deflate; client_max_window_bits",
    "permessage-deflate; client_max_window_bits=8, permessage-deflate; server_max_window_bits=10",
]


def request_headers(offer, key=None):
    headers = {"Host": "localhost:5000", "Upgrade": "websocket",
               "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": key or base64.b64encode(os.urandom(16)).decode()}
    if offer is not None:
        headers["Sec-WebSocket-Extensions"] = offer
    return headers


def environ_of(headers, method="GET"):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/socket.io/"}
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def wsproto_answer(headers):
    """Return wsproto's own answer to the request, and its server connection."""
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    text = "GET /socket.io/ HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    server.receive_data((text + "\r\n").encode())
    assert any(isinstance(event, Request) for event in server.events())
    return server.send(AcceptConnection(extensions=[PerMessageDeflate()])), server


def parsed(response):
    status, *lines = response.decode().rstrip("\r\n").split("\r\n")
    return status, {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}


@pytest.mark.parametrize("offer", OFFERS)
def test_a_well_formed_request_gets_wsprotos_answer_and_the_same_deflate(offer):
    headers = request_headers(offer)
    expected, stock = wsproto_answer(headers)
    answer = quick_handshake(environ_of(headers))
    assert answer is not None
    response, extensions = answer
    assert parsed(response) == parsed(expected)

    class Holder:  # what simple-websocket exposes as ws.ws
        def __init__(self, connection):
            self.ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
            self.ws.connection = connection

    quick = wsproto.connection.Connection(wsproto.ConnectionType.SERVER, extensions)
    assert internals.deflate_window_bits(Holder(quick)) == \
        internals.deflate_window_bits(Holder(stock.connection))


@pytest.mark.parametrize("offer", OFFERS)
def test_a_client_reads_what_the_quick_connection_sends(offer):
    """A real wsproto client does the handshake, then decodes a big (deflated) and a small message."""
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    extensions = [PerMessageDeflate()] if offer else []
    opening = client.send(Request(host="localhost", target="/socket.io/", extensions=extensions))
    head = opening.decode().split("\r\n\r\n")[0].split("\r\n")[1:]
    headers = dict(line.split(": ", 1) for line in head)
    response, server_extensions = quick_handshake(environ_of(headers))
    client.receive_data(response)
    assert [type(event) for event in client.events()] == [AcceptConnection]
    server = wsproto.connection.Connection(wsproto.ConnectionType.SERVER, server_extensions)
    for text in ("42[\"ping\"]", "x" * 5000):
        client.receive_data(server.send(TextMessage(data=text)))
        assert [event.data for event in client.events()] == [text]


@pytest.mark.parametrize("change", [
    {"Sec-WebSocket-Key": None},
    {"Sec-WebSocket-Version": "8"},
    {"Upgrade": "h2c"},
    {"Connection": "keep-alive"},
    {"Host": None},
    {"Sec-WebSocket-Protocol": "chat"},
    {"Sec-WebSocket-Extensions": "permessage-deflate; x=\u00e9"},
    {"method": "POST"},
], ids=lambda change: next(iter(change)))
def test_anything_else_is_left_to_wsproto(change):
    headers = request_headers("permessage-deflate")
    method = change.pop("method", "GET")
    for name, value in change.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    assert quick_handshake(environ_of(headers, method)) is None


def handshake_over_a_socket(server, headers):
    """Send a WebSocket request to a real server; return its response's head and body."""
    text = ("GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(text.encode())
        head, _, body = read_head(sock).partition(b"\r\n\r\n")
        status, fields = parsed(head + b"\r\n\r\n")
        if status.startswith("HTTP/1.1 101"):
            return status, fields, b""
        while len(body) < int(fields.get("content-length", 0)):
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    return status, fields, body


def test_a_real_server_gives_a_browsers_handshake_wsprotos_answer(server):
    headers = request_headers("permessage-deflate; client_max_window_bits")
    headers["Host"] = f"{server.host}:{server.port}"
    status, fields, _ = handshake_over_a_socket(server, headers)
    expected_status, expected_fields = parsed(wsproto_answer(headers)[0])
    assert (status, fields) == (expected_status, expected_fields)


@pytest.mark.parametrize("change, status, code, words", [
    ({"Sec-WebSocket-Version": "8"}, "426", "websocket_version", "version 13"),
    ({"Sec-WebSocket-Key": None}, "400", "bad_websocket_handshake", "Sec-WebSocket-Key"),
], ids=["version 8", "no key"])
def test_a_malformed_handshake_gets_a_4xx_with_a_sentence_and_leaves_no_session(
        server, change, status, code, words):
    eio = server.socketio.server.eio
    before = set(eio.sockets)
    headers = request_headers("permessage-deflate")
    headers["Host"] = f"{server.host}:{server.port}"
    for name, value in change.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    got_status, fields, body = handshake_over_a_socket(server, headers)
    assert got_status.startswith(f"HTTP/1.1 {status}"), got_status
    answer = json.loads(body)
    assert answer["error"] == code and words in answer["message"], answer
    if status == "426":
        assert fields["sec-websocket-version"] == "13"
    wait_until(lambda: not set(eio.sockets) - before, timeout=10,
               message="the refused request's Engine.IO session to be gone")
