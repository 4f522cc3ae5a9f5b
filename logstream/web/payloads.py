"""The payloads of the Socket.IO events, built as dicts or pre-encoded once per room."""

import json

from logstream.web.websocket import RawJSON

# What json.dumps uses for strings by default, so the text below is byte for
# byte what json.dumps(..., separators=(",", ":")) would give.
_quote = json.encoder.encode_basestring_ascii


def line_room(deployment_id):
    """Return the room whose members get one new_log event per line."""
    return deployment_id


def batch_room(deployment_id):
    """Return the room whose members get one log_batch event per read."""
    # '#' can't occur in an id, so this never collides with a line room.
    return deployment_id + "#batch"


def line_event(deployment_id, number, text, historical=False):
    """Return the payload of a new_log event."""
    payload = {"deployment_id": deployment_id, "line": number, "message": text}
    if historical:
        payload["is_historical"] = True
    return payload


def batch_event(deployment_id, lines, historical=False):
    """Return the payload of a log_batch event."""
    payload = {"deployment_id": deployment_id,
               "lines": [{"line": n, "message": text} for n, text in lines]}
    if historical:
        payload["is_historical"] = True
    return payload


def lagging_status(deployment_id, last_line, skipped):
    """Return the status that tells a client it fell behind and how to catch up."""
    return {"type": "lagging", "deployment_id": deployment_id, "last_line": last_line,
            "skipped": skipped,
            "message": f"Too many lines were waiting for you, so streaming stopped after "
                       f"line {last_line}; send start_streaming with since set to the last "
                       f"line you have to catch up."}


def line_json(deployment_id, number, text, historical=False):
    """Return the new_log payload already encoded, as line_event would encode."""
    tail = ',"is_historical":true' if historical else ""
    return RawJSON(f'{{"deployment_id":{_quote(deployment_id)},"line":{number},'
                   f'"message":{_quote(text)}{tail}}}')


def batch_json(deployment_id, lines, historical=False):
    """Return the log_batch payload already encoded, as batch_event would encode.

    Encoding the lines here, once per read, is several times faster than
    letting Socket.IO walk and encode a list of dicts.
    """
    items = ",".join([f'{{"line":{n},"message":{_quote(text)}}}' for n, text in lines])
    tail = ',"is_historical":true' if historical else ""
    return RawJSON(f'{{"deployment_id":{_quote(deployment_id)},"lines":[{items}]{tail}}}')
