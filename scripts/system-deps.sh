#!/bin/sh
# Install the system programs the tests drive for real: Debian's Chromium
# (for Playwright), redis-server (scale-out tests), logrotate (rotation
# tests), npm (to fetch the browser's Socket.IO client at install time),
# JupyterHub's configurable-http-proxy and frontail, the Node log viewer the
# fan-out benchmark compares against (both from npm). Does nothing when all
# are here.
set -eu
CHP="configurable-http-proxy@5"
FRONTAIL="frontail@4.9.2"
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || missing="$missing logrotate"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v configurable-http-proxy >/dev/null 2>&1 || need_npm="$CHP"
command -v frontail >/dev/null 2>&1 || need_npm="${need_npm:-} $FRONTAIL"
[ -z "$missing" ] && [ -z "${need_npm:-}" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "Missing:$missing ${need_npm:-}. Install them (e.g. sudo apt-get install$missing;" \
         "sudo npm install -g ${need_npm:-}) and run again." >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ -n "$missing" ]; then
    echo "Installing:$missing" >&2
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing fonts-dejavu-core >/dev/null
fi
if [ -n "${need_npm:-}" ]; then
    echo "Installing:${need_npm}" >&2
    # shellcheck disable=SC2086
    npm install -g --silent $need_npm >/dev/null
fi
