"""Reach the viewer through jupyter-server-proxy: a launcher tile, and links that work from a notebook.

On JupyterHub, Binder or any remote JupyterLab the browser reaches only the
Jupyter server, never ``127.0.0.1:PORT`` on the machine the kernel runs on;
jupyter-server-proxy forwards ``<base_url>proxy/PORT/`` to that port (and
``<base_url>logstream/`` to a server it starts on demand).
"""

import importlib.util
import json
import os
import secrets
import sys
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
ICON = STATIC_DIR / "logstream-icon.svg"
# A source checkout (Binder's, an editable install) keeps the sample logs here.
CHECKOUT_SAMPLES = Path(__file__).resolve().parents[2] / "data" / "logs"


def launcher_data_dir():
    """Return the folder of logs the launcher's server follows."""
    if os.environ.get("LOGSTREAM_DATA_DIR"):
        return os.environ["LOGSTREAM_DATA_DIR"]
    if CHECKOUT_SAMPLES.is_dir():
        return str(CHECKOUT_SAMPLES)
    return "data/logs"  # relative to the Jupyter server's folder


def setup_logstream():
    """Return jupyter-server-proxy's settings for a launcher tile that serves the logs on demand."""
    # The proxy adds this token to every request it forwards, so the browser
    # never needs it, while other users of a shared machine, who can reach
    # 127.0.0.1:PORT directly, are refused.
    token = secrets.token_urlsafe(24)
    return {
        "command": [sys.executable, "-m", "logstream", "serve", "--port", "{port}",
                    "--data-dir", launcher_data_dir()],
        # Any Host: the proxy forwards the Jupyter server's own name, which
        # can be anything; the token is what keeps other pages out.
        "environment": {"LOGSTREAM_TOKEN": token, "LOGSTREAM_ALLOWED_HOSTS": "*"},
        "request_headers_override": {"Authorization": f"Bearer {token}"},
        "timeout": 30,
        "launcher_entry": {"title": "Log stream", "icon_path": str(ICON)},
        "new_browser_tab": True,
    }


def jupyter_base_url(environ=None, parent_pid=None, runtime_dir=None):
    """Return the base URL of the Jupyter server this kernel runs under, or None outside one."""
    environ = os.environ if environ is None else environ
    if environ.get("JUPYTERHUB_SERVICE_PREFIX"):
        return environ["JUPYTERHUB_SERVICE_PREFIX"]
    # A Jupyter server writes jpserver-<pid>.json and starts its kernels as
    # children; JPY_SESSION_NAME says a server (not a console) started this one.
    if not environ.get("JPY_SESSION_NAME"):
        return None
    if runtime_dir is None:
        try:
            from jupyter_core.paths import jupyter_runtime_dir
        except ImportError:
            return None
        runtime_dir = jupyter_runtime_dir()
    info = Path(runtime_dir) / f"jpserver-{parent_pid or os.getppid()}.json"
    try:
        return json.loads(info.read_text()).get("base_url") or "/"
    except (OSError, ValueError):
        return "/"  # a server, though not one that says where it is mounted


def proxy_installed():
    """Return True when jupyter-server-proxy is importable here."""
    return importlib.util.find_spec("jupyter_server_proxy") is not None


def viewer_url(port, direct_url, environ=None, parent_pid=None, runtime_dir=None):
    """Return the address of a server on port as the notebook's browser can reach it.

    Through the Jupyter server's proxy (``<base_url>proxy/PORT/``, a path on
    the notebook's own origin) when the kernel runs under one that has
    jupyter-server-proxy; otherwise direct_url, for a browser on this machine.
    """
    base_url = jupyter_base_url(environ, parent_pid, runtime_dir)
    if base_url is None or not proxy_installed():
        return direct_url.rstrip("/") + "/"
    return f"{base_url.rstrip('/')}/proxy/{port}/"
