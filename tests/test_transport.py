"""The fast emit path: pre-encoded payloads, direct frames, shared compression."""

import json

from hypothesis import given
from hypothesis import strategies as st

from conftest import wait_until
from logstream.tools.leanclient import LeanClient
from logstream.web.payloads import batch_event, batch_json, line_event, line_json
from logstream.web.websocket import LogPacket, RawJSON

COMPACT = {"separators": (",", ":")}


@given(st.lists(st.text(), max_size=5), st.booleans())
def test_pre_encoded_payloads_are_what_json_dumps_gives(texts, historical):
    lines = list(enumerate(texts, start=1))
    assert batch_json("dep-1", lines, historical) == json.dumps(
        batch_event("dep-1", lines, historical), **COMPACT)
    for number, text in lines:
        assert line_json("dep-1", number, text, historical) == json.dumps(
            line_event("dep-1", number, text, historical), **COMPACT)


def test_packets_splice_raw_json_and_still_spot_binary():
    packet = LogPacket(data=["log_batch", RawJSON('{"lines":[]}')])
    assert packet.encode() == '2["log_batch",{"lines":[]}]'
    assert LogPacket(data=["status", {"type": "é"}]).encode() == \
        '2["status",{"type":"\\u00e9"}]'
    assert LogPacket(data=["blob", {"data": b"\x00"}]).packet_type == 5  # BINARY_EVENT


def stream_all(client, deployment_id, count):
    """Ask for a deployment's whole history in batches; return {line: message}."""
    found = {}

    def take(message):
        if message.startswith(b'42["log_batch"'):
            found.update((item["line"], item["message"])
                         for item in json.loads(message[2:])[1]["lines"])

    # History is sent before the ack, so the ack's wait sees some of it.
    client.call("start_streaming", {"deployment_id": deployment_id, "since": 0,
                                    "batch": True}, on_other=take)
    while len(found) < count:
        take(client.recv_text())
    return found


def test_big_messages_arrive_compressed_small_ones_plain(server, logs):
    deployment_id, path = logs.make(3000, prefix="compressible line")
    client = LeanClient(server.url, deflate=True)
    try:
        assert client.compressed
        client.call("ping", "before")
        assert client.inflated == 0  # the pong and its ack are tiny
        assert stream_all(client, deployment_id, 3000) == {n: f"compressible line {n}" for n in range(1, 3001)}
        assert client.inflated >= 1
    finally:
        client.close()
        # Stopping the server while a connection is still closing can hang
        # Engine.IO's disconnect(); let each one finish first.
        wait_until(lambda: all(s.closed for s in server.socketio.server.eio.sockets.values()),
                   message="the server to close its side")


def test_clients_without_deflate_get_the_same_lines(server, logs):
    deployment_id, _ = logs.make(3000)
    client = LeanClient(server.url, deflate=False)
    try:
        assert not client.compressed
        assert stream_all(client, deployment_id, 3000) == {n: f"line {n}" for n in range(1, 3001)}
        assert client.inflated == 0
    finally:
        client.close()
        # Stopping the server while a connection is still closing can hang
        # Engine.IO's disconnect(); let each one finish first.
        wait_until(lambda: all(s.closed for s in server.socketio.server.eio.sockets.values()),
                   message="the server to close its side")
