#!/bin/sh
# Install the system programs the tests drive for real: Debian's Chromium
# (for Playwright), redis-server (scale-out tests) and npm (to fetch the
# browser's Socket.IO client at install time). Does nothing when all are here.
set -eu
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "Missing:$missing. Install them (e.g. sudo apt-get install$missing) and run again." >&2
    exit 1
fi
echo "Installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing fonts-dejavu-core >/dev/null
