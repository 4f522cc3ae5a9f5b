"""Answer a WebSocket opening handshake from the WSGI environ: the 101 for a well-formed request, a sentence for a refused one.

Sans-I/O: these functions take the environ the HTTP server has already
parsed and return bytes and headers; ``internals.QuickServer`` writes them.
simple-websocket would rebuild the request's text from the environ and have
wsproto parse it again with h11, then format the answer: a tenth of a
viewer's join. The answers are the ones wsproto gives
(tests/test_handshake.py compares them for the offers browsers and clients
make).
"""

import json

from wsproto.extensions import PerMessageDeflate
from wsproto.utilities import generate_accept_token, split_comma_header

WEBSOCKET_VERSION = "13"


def agree_deflate(offers):
    """Return (a PerMessageDeflate, the Sec-WebSocket-Extensions value agreed or None) for the client's offers.

    As wsproto's server handshake agrees: each permessage-deflate offer is
    put to the extension in turn, and the last one it accepts is the answer.
    """
    extension = PerMessageDeflate()
    agreed = None
    for offer in offers:
        if offer.split(";", 1)[0].strip() != extension.name:
            continue
        params = extension.accept(offer)
        if params is True or params == "":
            agreed = extension.name
        elif isinstance(params, str):
            agreed = f"{extension.name}; {params}"
    return extension, agreed


def agreed_window_bits(extensions):
    """Return the window (bits) of the server's deflated messages among the extensions agreed on, or None."""
    for extension in extensions:
        if isinstance(extension, PerMessageDeflate) and extension.enabled():
            # The client may have asked for a smaller window; zlib's raw
            # deflate needs at least 9 bits.
            return max(9, min(15, int(extension.server_max_window_bits)))
    return None


def quick_handshake(environ):
    """Return (the 101 response, the extensions) accepting a well-formed WebSocket request, or None.

    Anything but a well-formed request (a missing key, a wrong version, a
    subprotocol, a header that isn't ASCII) is None: wsproto answers it as
    before, rejections included.
    """
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY")
    if (not key or environ.get("REQUEST_METHOD") != "GET"
            or environ.get("HTTP_SEC_WEBSOCKET_VERSION") != WEBSOCKET_VERSION
            or environ.get("HTTP_UPGRADE", "").lower() != "websocket"
            or not environ.get("HTTP_HOST") or "HTTP_SEC_WEBSOCKET_PROTOCOL" in environ):
        return None
    try:
        key = key.encode("ascii")
        tokens = split_comma_header(environ.get("HTTP_CONNECTION", "").encode("ascii"))
        offers = environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS")
        offers = split_comma_header(offers.encode("ascii")) if offers is not None else []
    except UnicodeError:
        return None
    if not any(token.lower() == "upgrade" for token in tokens):
        return None
    extension, agreed = agree_deflate(offers)
    head = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + generate_accept_token(key))
    if agreed:
        head += b"\r\nSec-WebSocket-Extensions: " + agreed.encode("ascii")
    return head + b"\r\n\r\n", [extension]


def refused_handshake(environ, error):
    """Return (status, headers, body) answering a WebSocket request wsproto refused, with a sentence."""
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version is not None and version != WEBSOCKET_VERSION:
        status, code = "426 Upgrade Required", "websocket_version"
        message = (f"This server speaks WebSocket version {WEBSOCKET_VERSION} (RFC 6455); "
                   f"the request asked for version {version[:20]!r}.")
        headers = [("Sec-WebSocket-Version", WEBSOCKET_VERSION)]
    else:
        status, code, headers = "400 Bad Request", "bad_websocket_handshake", []
        message = f"This is not a WebSocket handshake the server can accept: {error}."
    body = json.dumps({"error": code, "message": message}).encode()
    return status, headers + [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))], body
