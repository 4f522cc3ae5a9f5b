"""docs/protocol.md shows frames with the shape the server really sends."""

import json
import re
import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def shape(value):
    """Return the structure of a JSON value: key names and value types, not values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool) or value is None:
        return type(value).__name__
    return "number" if isinstance(value, (int, float)) else type(value).__name__


def socketio_shapes(frames):
    """Return the set of (kind, event, payload shape) of Socket.IO event/ack frames."""
    shapes = set()
    for frame in frames:
        match = re.match(r"4([23])\d*(\[.*\])$", frame)
        if match:
            payload = json.loads(match.group(2))
            kind = "event" if match.group(1) == "2" else "ack"
            event = payload[0] if kind == "event" else None
            body = payload[1:] if kind == "event" else payload
            shapes.add((kind, event, json.dumps(shape(body), sort_keys=True)))
    return shapes


@pytest.fixture(scope="module")
def captured():
    return runpy.run_path(str(DOCS / "capture_frames.py"))["capture"]()


def test_every_documented_frame_matches_a_captured_one(captured):
    documented = [line[2:] for line in (DOCS / "protocol.md").read_text().splitlines()
                  if line.startswith(("< ", "> "))]
    assert len(documented) >= 15
    live = socketio_shapes(frame for direction, frame in captured if direction != "sse")
    for frame in documented:
        for item in socketio_shapes([frame]):
            assert item in live, f"documented frame no longer matches the server: {frame}"


def test_documented_sse_example_matches_the_server(captured):
    (sse,) = [frame for direction, frame in captured if direction == "sse"]
    doc = (DOCS / "protocol.md").read_text()
    for field in ("retry: 2000", "event: status", "id: 1"):
        assert field in sse and field in doc
    documented_data = [json.loads(line[6:]) for line in doc.split("## Server-Sent Events")[1]
                       .splitlines() if line.startswith("data: ")]
    live_data = [json.loads(line[6:]) for line in sse.splitlines() if line.startswith("data: ")]
    assert [shape(d) for d in documented_data] == [shape(d) for d in live_data]
