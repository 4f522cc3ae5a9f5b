"""Answer only to the host names this server is known by, which defeats DNS rebinding."""

import ipaddress
import json
import logging
import socket

log = logging.getLogger(__name__)

# A page on any site can make its own name resolve to 127.0.0.1 (DNS
# rebinding) and then read a server on this machine as same-origin; its
# requests still carry that name in Host, so only known names are answered.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "localhost.localdomain", "ip6-localhost")


def host_name(host_header):
    """Return the name part of a Host header, lower case, without its port or brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def names_for_bind(address):
    """Return the names a server bound to address answers to besides loopback ones."""
    if not address:
        return set()
    try:
        wildcard = ipaddress.ip_address(address).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        # Bound to every interface: its own names are expected too.
        return {socket.gethostname().lower(), socket.getfqdn().lower()}
    return {host_name(address)}


class HostCheck:
    """WSGI middleware that refuses requests whose Host header is not allowed.

    It wraps the whole app, Engine.IO included, so every route, stream and
    WebSocket handshake is covered. ``"*"`` among the names allows any.
    """

    def __init__(self, app, allowed=()):
        self.app = app
        self.allowed = set(LOOPBACK_NAMES)
        self.allow(*allowed)

    def allow(self, *names):
        """Add host names (with or without a port) to the allowlist."""
        self.allowed.update(host_name(name) if name != "*" else "*" for name in names if name)

    def __call__(self, environ, start_response):
        name = host_name(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))
        if "*" in self.allowed or name in self.allowed:
            return self.app(environ, start_response)
        log.warning("refused a request for host %r: not among the allowed hosts "
                    "(add it with --allowed-host)", name)
        body = json.dumps({
            "error": "unknown_host",
            "message": f"This logstream server does not answer to the host name {name!r}; "
                       "start it with --allowed-host NAME (or allowed_hosts=[...]) to "
                       "allow a name."}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/json"),
                                           ("Content-Length", str(len(body)))])
        return [body]
