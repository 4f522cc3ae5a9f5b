"""The server reads WebSocket frames itself: what a real client's frames mean, and what a broken client gets."""

import base64
import os
import socket
import struct
import zlib

import pytest
import wsproto
from hypothesis import given, settings, strategies as st
from wsproto.events import AcceptConnection, Request, TextMessage, BytesMessage, Ping
from wsproto.extensions import PerMessageDeflate

from conftest import serve_process
from hostilehelp import read_head
from logstream.web.wsconn import (INVALID_DATA, PROTOCOL_ERROR, TOO_BIG, FrameReader,
                                  ProtocolError)

LIMIT = 64 * 1024


def masked(first_byte, payload, key=b"\x01\x02\x03\x04", length=None):
    """Return a client frame (masked), optionally claiming another length."""
    n = len(payload) if length is None else length
    if n < 126:
        header = struct.pack("!BB", first_byte, 0x80 | n)
    elif n < 1 << 16:
        header = struct.pack("!BBH", first_byte, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first_byte, 0x80 | 127, n)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + body


def events_of(reader, data, chunk=None):
    """Feed data (in chunks of chunk bytes, or whole) and return every event the reader gives."""
    found = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        reader.feed(piece)
        while (event := reader.next()) is not None:
            found.append(event)
    return found


def wsproto_client(deflate):
    """Return a wsproto client whose handshake is done, and whose frames are what a real client sends."""
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    extensions = [PerMessageDeflate()] if deflate else []
    server.receive_data(client.send(Request(host="localhost", target="/", extensions=extensions)))
    next(event for event in server.events() if isinstance(event, Request))
    client.receive_data(server.send(AcceptConnection(extensions=[PerMessageDeflate()])))
    assert [type(event) for event in client.events()] == [AcceptConnection]
    return client


messages = st.lists(st.one_of(st.text(max_size=3000).map(lambda t: ("text", t)),
                              st.binary(max_size=3000).map(lambda b: ("bytes", b))),
                    min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(messages, st.booleans(), st.integers(1, 4000), st.booleans())
def test_a_real_clients_messages_arrive_whole_however_the_bytes_are_cut(items, deflate, chunk,
                                                                        fragment):
    client = wsproto_client(deflate)
    wire = b""
    for kind, value in items:
        event = TextMessage if kind == "text" else BytesMessage
        if fragment and len(value) > 1:
            half = len(value) // 2
            wire += client.send(event(data=value[:half], message_finished=False))
            wire += client.send(Ping(payload=b"between"))
            wire += client.send(event(data=value[half:], message_finished=True))
        else:
            wire += client.send(event(data=value))
    got = events_of(FrameReader(LIMIT, deflate=deflate), wire, chunk)
    expected = []
    for _, value in items:
        if fragment and len(value) > 1:
            expected.append(("ping", b"between"))
        expected.append(("message", value))
    assert got == expected


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.booleans(), st.integers(1, 64))
def test_any_bytes_give_events_or_a_protocol_error_and_nothing_else(data, deflate, chunk):
    # A hostile client's bytes: the reader never fails in any other way, and
    # holds no more than it was sent.
    reader = FrameReader(1024, deflate=deflate)
    try:
        for event in events_of(reader, data, chunk):
            assert event[0] in ("message", "ping", "pong", "close")
    except ProtocolError as error:
        assert error.code in (PROTOCOL_ERROR, INVALID_DATA, TOO_BIG)
    assert len(reader._buffer) <= len(data)


def test_a_deflated_frame_that_does_not_inflate_is_invalid_data():
    with pytest.raises(ProtocolError) as refused:
        events_of(FrameReader(LIMIT, deflate=True), masked(0xC1, b"\xff\xff\xff\xff"))
    assert refused.value.code == INVALID_DATA


def test_a_close_frame_gives_its_code_and_reason():
    reader = FrameReader(LIMIT)
    assert events_of(reader, masked(0x88, struct.pack("!H", 1001) + "bye ✓".encode())) == \
        [("close", 1001, "bye ✓")]
    assert events_of(FrameReader(LIMIT), masked(0x88, b"")) == [("close", None, "")]


@pytest.mark.parametrize("wire, code", [
    (b"\x81\x05hello", PROTOCOL_ERROR),                           # not masked
    (masked(0x91, b"x"), PROTOCOL_ERROR),                         # RSV3
    (masked(0xC1, b"x"), PROTOCOL_ERROR),                         # RSV1 with no deflate agreed
    (masked(0x83, b"x"), PROTOCOL_ERROR),                         # opcode 3
    (masked(0x80, b"x"), PROTOCOL_ERROR),                         # a continuation of nothing
    (masked(0x01, b"a") + masked(0x81, b"b"), PROTOCOL_ERROR),    # a message inside a message
    (masked(0x09, b"x"), PROTOCOL_ERROR),                         # a fragmented ping
    (masked(0x89, b"x" * 126), PROTOCOL_ERROR),                   # a ping of 126 bytes
    (masked(0x88, b"\x03"), PROTOCOL_ERROR),                      # a one-byte close code
    (masked(0x88, struct.pack("!H", 1005)), PROTOCOL_ERROR),      # a code no peer may send
    (masked(0x81, b"\xff\xfe"), INVALID_DATA),                    # text that isn't UTF-8
    (masked(0x88, struct.pack("!H", 1000) + b"\xff"), INVALID_DATA),
], ids=["unmasked", "rsv3", "rsv1", "opcode", "orphan", "nested", "fragmented-ping",
        "long-ping", "short-close", "reserved-close", "bad-utf8", "bad-reason"])
def test_a_broken_frame_is_refused_with_the_close_code_rfc_6455_names(wire, code):
    with pytest.raises(ProtocolError) as refused:
        events_of(FrameReader(LIMIT), wire)
    assert refused.value.code == code


def test_a_message_over_the_limit_is_refused_before_its_bytes_arrive():
    reader = FrameReader(LIMIT)
    # Only the header of a frame claiming 1 GiB: refused from the header alone.
    with pytest.raises(ProtocolError) as refused:
        events_of(reader, masked(0x82, b"", length=1 << 30)[:14])
    assert refused.value.code == TOO_BIG
    # Many small fragments adding up past the limit: refused as they come.
    reader = FrameReader(LIMIT)
    with pytest.raises(ProtocolError) as refused:
        events_of(reader, masked(0x02, b"x" * 1000) + masked(0x00, b"x" * 1000) * 70)
    assert refused.value.code == TOO_BIG


def test_a_small_deflated_frame_cannot_inflate_past_the_limit():
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(b"\0" * (50 * LIMIT)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    bomb = bomb[:-4]
    assert len(bomb) < LIMIT // 10
    with pytest.raises(ProtocolError) as refused:
        events_of(FrameReader(LIMIT, deflate=True), masked(0xC2, bomb))
    assert refused.value.code == TOO_BIG


# -- against a real server, in each async mode ---------------------------------


@pytest.fixture(scope="module", params=["gevent", "threading"])
def served(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("logs")
    process, url = serve_process("--async-mode", request.param, "--data-dir", str(folder))
    yield url
    process.terminate()
    process.wait(10)


class Wire:
    """A hand-made WebSocket client of a real server: frames as bytes, answers as frames."""

    def __init__(self, url, deflate=False):
        host, port = url.rsplit("/", 1)[-1].split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if deflate else ""
        self.sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                           f"Host: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n{offer}\r\n").encode())
        head, _, self.buffer = read_head(self.sock).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert self.frame()[1].startswith(b"0{")  # Engine.IO's open packet

    def frame(self):
        """Return (opcode, payload) of the server's next frame, or None once it hung up."""
        while True:
            if len(self.buffer) >= 2:
                n, start = self.buffer[1] & 0x7F, 2
                if n == 126:
                    n, start = int.from_bytes(self.buffer[2:4], "big"), 4
                elif n == 127:
                    n, start = int.from_bytes(self.buffer[2:10], "big"), 10
                if len(self.buffer) >= start + n:
                    opcode, payload = self.buffer[0] & 0x0F, self.buffer[start:start + n]
                    self.buffer = self.buffer[start + n:]
                    return opcode, payload
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buffer += data

    def until(self, wanted):
        """Return the first frame for which wanted(opcode, payload) holds, skipping others."""
        while True:
            frame = self.frame()
            if frame is None or wanted(*frame):
                return frame

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def hung_up(self):
        """Return True when the server has ended the TCP connection."""
        return self.until(lambda opcode, payload: False) is None


def test_pings_are_answered_and_fragments_joined(served):
    with Wire(served) as wire:
        wire.sock.sendall(masked(0x81, b"40"))
        assert wire.until(lambda op, data: op == 0x1)[1].startswith(b"40{")
        wire.sock.sendall(masked(0x89, b"are you there"))
        assert wire.until(lambda op, data: op == 0xA) == (0xA, b"are you there")
        # One event in three frames, a ping in between.
        wire.sock.sendall(masked(0x01, b'421["pi') + masked(0x89, b"mid")
                          + masked(0x00, b'ng",') + masked(0x80, b'"x"]'))
        assert wire.until(lambda op, data: op == 0xA) == (0xA, b"mid")
        _, ack = wire.until(lambda op, data: data.startswith(b"431"))
        assert b'"echo":"x"' in ack


@pytest.mark.parametrize("frame, code", [
    (masked(0x81, b"4" * (LIMIT + 1)), TOO_BIG),
    (masked(0x81, b"42\xff"), INVALID_DATA),
    (b"\x81\x0242", PROTOCOL_ERROR),
], ids=["too-big", "bad-utf8", "unmasked"])
def test_a_broken_client_gets_a_close_code_and_the_connection_ends(served, frame, code):
    with Wire(served) as wire:
        wire.sock.sendall(masked(0x81, b"40"))
        wire.until(lambda op, data: data.startswith(b"40{"))
        wire.sock.sendall(frame)
        closing = wire.until(lambda op, data: op == 0x8)
        assert closing is not None and int.from_bytes(closing[1][:2], "big") == code
        assert wire.hung_up()


def test_a_clients_close_is_answered_with_its_code_and_the_connection_ends(served):
    with Wire(served, deflate=True) as wire:
        wire.sock.sendall(masked(0x88, struct.pack("!H", 1001)))
        assert wire.until(lambda op, data: op == 0x8) == (0x8, struct.pack("!H", 1001))
        assert wire.hung_up()


def test_a_deflated_event_from_a_browser_is_understood(served):
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)

    def deflated(text):
        data = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return masked(0xC1, data[:-4])  # context kept from one message to the next, as browsers do

    with Wire(served, deflate=True) as wire:
        wire.sock.sendall(deflated(b"40"))
        wire.until(lambda op, data: data.startswith(b"40{"))
        for n in range(3):
            wire.sock.sendall(deflated(b'42%d["ping","deflated"]' % (n + 1)))
            _, ack = wire.until(lambda op, data: data.startswith(b"43%d" % (n + 1)))
            assert b'"echo":"deflated"' in ack
