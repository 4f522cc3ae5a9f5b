"""Build links relative to the current page, so every page works under any path prefix.

A proxy such as jupyter-server-proxy serves the app at ``/proxy/PORT/`` (on
JupyterHub ``/user/NAME/proxy/PORT/``) and strips that prefix before the
request arrives, so the app cannot know it. A link written relative to the
page (``../static/viewer.js`` on ``/deployments/<id>``) resolves in the
browser against the page's own address, prefix included, behind any proxy
and without one. Only the root page, which a proxy may serve without its
trailing slash, also takes a hint from the proxy (``root_base_href``).
"""

import re

from flask import request, url_for

# A plain absolute path: no scheme, no host ("//host"), no query, no quotes.
PLAIN_PATH = re.compile(r"(?:/[\w.~%!$&*+,;=:@-]+)+")


def relative_path(target, current):
    """Return target (a path from the app's root) as a reference relative to the page at current."""
    depth = current.count("/") - 1
    # A page at /a/b sits in folder /a/: one "../" per folder climbs back to the root.
    relative = "../" * depth + target.lstrip("/")
    return relative or "./"


def relative_url_for(endpoint, **values):
    """Return url_for(endpoint, **values) relative to the page being requested."""
    target = url_for(endpoint, **values)
    # url_for prepends the WSGI mount point (SCRIPT_NAME); request.path excludes it.
    root = request.script_root
    if root and target.startswith(root):
        target = target[len(root):]
    return relative_path(target, request.path)


def root_base_href():
    """Return the prefix to use as <base href> on the root page, or None.

    jupyter-server-proxy forwards ``/proxy/PORT`` (no trailing slash) to ``/``
    too, where links relative to the page would lose the port; it says
    where it mounts the app in ``X-Forwarded-Prefix``. Only the root page
    uses it, and only a plain path: the value only ever affects the page
    sent back to whoever sent the header.
    """
    prefix = request.headers.get("X-Forwarded-Prefix", "").rstrip("/")
    if request.path != "/" or not PLAIN_PATH.fullmatch(prefix):
        return None
    return prefix + "/"


def init_app(app):
    """Offer relative_url_for and root_base_href to every template."""
    app.add_template_global(relative_url_for)
    app.add_template_global(root_base_href)
