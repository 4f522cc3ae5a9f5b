"""Optional shared-token access control for every route, stream and connection."""

import hmac

from flask import current_app, jsonify, make_response, request

COOKIE = "logstream_token"
OPEN_PATHS = ("/healthz",)


def required_token():
    """Return the token this app requires, or None when access is open."""
    return current_app.config.get("LOGSTREAM_TOKEN")


def presented_token(auth=None):
    """Return the token a request carries: Socket.IO auth, bearer header, query or cookie."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return auth["token"]
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):]
    return request.args.get("token") or request.cookies.get(COOKIE)


def token_ok(auth=None):
    """Return True when no token is required or the request carries the right one."""
    required = required_token()
    if not required:
        return True
    presented = presented_token(auth)
    # compare_digest: the time taken does not reveal how much of a guess was right.
    return isinstance(presented, str) and hmac.compare_digest(
        presented.encode(), required.encode())


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
