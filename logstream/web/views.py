"""HTTP routes: the deployment list, the viewer page, the JSON API and health."""

import logging
import threading
from datetime import datetime, timezone
from urllib.parse import urlsplit

from flask import (Blueprint, abort, current_app, jsonify, make_response,
                   redirect, render_template, request, url_for)

from logstream.core.deployments import InvalidDeploymentId, UnknownDeployment
from logstream.web.urls import relative_url_for
from logstream.web.validation import RequestError, deployment_id_from

log = logging.getLogger(__name__)

bp = Blueprint("views", __name__)
# Held while checking the number of simulations and starting one.
_starting = threading.Lock()


def state():
    """Return this app's logstream state (data dir, hub, simulator)."""
    return current_app.extensions["logstream"]


def wants_json():
    """Return True when the client prefers JSON to HTML."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > \
        request.accept_mimetypes["text/html"]


def error_response(status, code, message):
    """Return an HTTP error whose body is a sentence a person understands."""
    if wants_json() or request.path.startswith("/api/"):
        return make_response(jsonify(error=code, message=message), status)
    return make_response(render_template("error.html", status=status, message=message),
                         status)


@bp.errorhandler(RequestError)
def request_error(error):
    return error_response(400, error.code, error.message)


def deployment_or_404(deployment_id):
    """Return the log path for deployment_id, or abort with 400/404."""
    deployment_id_from(deployment_id)  # 400 with a sentence when malformed
    try:
        return state().sources.resolve(deployment_id)
    except (InvalidDeploymentId, UnknownDeployment):
        abort(error_response(404, "unknown_deployment",
                             f"There is no deployment called {deployment_id!r}."))


def deployments():
    """Return the description of every deployment."""
    st = state()
    return st.sources.describe(st.line_counts)


@bp.app_template_filter("isotime")
def isotime(timestamp):
    """Format a Unix timestamp as ISO 8601 in UTC."""
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")


@bp.get("/")
def index():
    return render_template("index.html", deployments=deployments(),
                           simulates=state().sources.simulates)


def same_origin():
    """Return True unless the browser says the request comes from another site.

    Clients that are not browsers (curl, httpx) send neither header. The
    port counts: a page on another port of this host is another origin,
    though the cookie would go with its request.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


@bp.post("/deployments")
def new_deployment():
    st = state()
    if not same_origin():
        return error_response(403, "cross_origin",
                              "New deployments can only be started from this server's own "
                              "pages (same origin).")
    if not st.sources.simulates:
        return error_response(409, "not_simulating",
                              "This server follows the files it was given; it doesn't "
                              "start simulated deployments.")
    if not st.clients.allow_deployment():
        return error_response(429, "rate_limited",
                              "Too many new deployments; slow down and try again in a second.")
    with _starting:
        if len(st.simulator.running()) >= st.limits.max_simulations:
            log.warning("new deployment refused: %d simulations are running "
                        "(Limits.max_simulations)", st.limits.max_simulations)
            return error_response(429, "too_many_deployments",
                                  f"{st.limits.max_simulations} simulated deployments are "
                                  "running already; wait for one to finish.")
        deployment_id = st.simulator.start()
    st.simulator.prune(st.limits.max_simulation_files)
    url = url_for("views.deployment", deployment_id=deployment_id)
    if wants_json():
        response = jsonify(deployment_id=deployment_id, url=url)
        response.status_code = 201
        response.headers["Location"] = url
        return response
    # Relative, so the browser stays under whatever prefix a proxy serves us at.
    return redirect(relative_url_for("views.deployment", deployment_id=deployment_id),
                    code=303)


@bp.get("/deployments/<deployment_id>")
def deployment(deployment_id):
    deployment_or_404(deployment_id)
    # No token in the page: the cookie set by auth carries it, out of the
    # scripts' reach.
    return render_template("deployment.html", deployment_id=deployment_id)


@bp.get("/api/deployments")
def api_deployments():
    return jsonify([{key: d[key] for key in ("id", "path", "lines", "bytes", "live", "modified")}
                    for d in deployments()])


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")
