"""Optional shared-token access control for every route, stream and connection."""

import hmac
import logging

from flask import current_app, jsonify, make_response, request

log = logging.getLogger(__name__)

COOKIE = "logstream_token"
OPEN_PATHS = ("/healthz",)


def required_token():
    """Return the token this app requires, or None when access is open."""
    return current_app.config.get("LOGSTREAM_TOKEN")


def presented_token(auth=None):
    """Return the token a request carries: Socket.IO auth, bearer header, query or cookie.

    A Socket.IO auth payload with a token that is not a string carries no
    token at all: it is refused, not passed over for a cookie.
    """
    if isinstance(auth, dict) and "token" in auth:
        return auth["token"] if isinstance(auth["token"], str) else None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):]
    return request.args.get("token") or request.cookies.get(COOKIE)


def token_ok(auth=None):
    """Return True when no token is required or the request carries the right one.

    Fails closed: whatever goes wrong while checking means "refused".
    """
    try:
        required = required_token()
        if not required:
            return True
        presented = presented_token(auth)
        if not isinstance(presented, str):
            return False
        # surrogatepass: an unpaired surrogate (valid JSON, invalid UTF-8) is
        # just a wrong guess. compare_digest: the time taken does not reveal
        # how much of a guess was right.
        return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                                   required.encode("utf-8", "surrogatepass"))
    except Exception:  # noqa: BLE001 - any failure to check is a refusal
        log.exception("refusing a request whose token could not be checked")
        return False


def connection_ok(app, environ, auth=None):
    """token_ok for a Socket.IO connection of app, whose handshake request is environ.

    The request is looked at only when app requires a token. Fails closed.
    """
    try:
        if not app.config.get("LOGSTREAM_TOKEN"):
            return True
        with app.request_context(environ):
            return token_ok(auth)
    except Exception:  # noqa: BLE001 - any failure to check is a refusal
        log.exception("refusing a connection whose token could not be checked")
        return False


def check_request():
    """Refuse an HTTP request without the token (a before_request hook)."""
    if request.path in OPEN_PATHS or request.path.startswith("/socket.io"):
        return None  # Socket.IO checks the token in its connect handler
    if token_ok():
        return None
    message = ("This logstream server needs a token: open the page as "
               "/?token=<token>, or send 'Authorization: Bearer <token>'.")
    return make_response(jsonify(error="unauthorized", message=message), 401)


def remember_token(response):
    """Keep a token given in the URL in a cookie, so links and streams work without it."""
    if required_token() and request.args.get("token") and token_ok() \
            and request.cookies.get(COOKIE) != request.args["token"]:
        response.set_cookie(COOKIE, request.args["token"], httponly=True, samesite="Strict")
    return response


def init_app(app, token):
    """Require token on app's routes when token is set."""
    app.config["LOGSTREAM_TOKEN"] = token or None
    app.before_request(check_request)
    app.after_request(remember_token)
