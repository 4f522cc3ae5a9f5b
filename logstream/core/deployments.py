"""Name, find and describe deployment log files inside the data directory."""

import os
import re
import stat
import time
from pathlib import Path

from logstream.core.lineindex import INDEXES

# A strict allowlist rather than a denylist: an id that matches can never
# name a path outside the data directory, so bad ids are refused before any
# filesystem call is made.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LOG_SUFFIX = ".log"

# A deployment counts as live while its file changed this recently.
LIVE_WINDOW_SECONDS = 10.0


class InvalidDeploymentId(ValueError):
    """Raised when a deployment id does not match ID_PATTERN."""


class UnknownDeployment(LookupError):
    """Raised when no log file exists for a valid deployment id."""


def is_valid_id(deployment_id):
    """Return True when deployment_id is a string that matches ID_PATTERN."""
    return (
        isinstance(deployment_id, str)
        and ID_PATTERN.fullmatch(deployment_id) is not None
        and ".." not in deployment_id
    )


def log_path(data_dir, deployment_id):
    """Return the path of an existing deployment's log, refusing anything unsafe."""
    if not is_valid_id(deployment_id):
        raise InvalidDeploymentId(deployment_id)
    path = Path(data_dir) / (deployment_id + LOG_SUFFIX)
    # Symlinks could point anywhere: only a regular file that really lives in
    # the data directory counts as a deployment. lstat() doesn't follow a
    # link, so one call says both "not a link" and "a regular file".
    try:
        if stat.S_ISREG(os.lstat(path).st_mode):
            return path
    except (OSError, ValueError):
        pass  # missing, unreadable, or a name the OS refuses
    raise UnknownDeployment(deployment_id)


def new_log_path(data_dir, deployment_id):
    """Return the path for a new deployment's log without touching the disk."""
    if not is_valid_id(deployment_id):
        raise InvalidDeploymentId(deployment_id)
    return Path(data_dir) / (deployment_id + LOG_SUFFIX)


def list_deployments(data_dir, live_ids=(), line_counts=None):
    """Describe every deployment in data_dir, newest activity first."""
    line_counts = line_counts or LineCounts()
    now = time.time()
    found = []
    try:
        entries = list(os.scandir(data_dir))
    except FileNotFoundError:
        return []
    for entry in entries:
        name = entry.name
        if not name.endswith(LOG_SUFFIX):
            continue
        deployment_id = name[: -len(LOG_SUFFIX)]
        if not is_valid_id(deployment_id):
            continue
        if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
            continue
        stat = entry.stat(follow_symlinks=False)
        found.append(
            {
                "id": deployment_id,
                "lines": line_counts.count(entry.path, stat),
                "bytes": stat.st_size,
                "modified": stat.st_mtime,
                "live": deployment_id in live_ids
                or now - stat.st_mtime < LIVE_WINDOW_SECONDS,
            }
        )
    found.sort(key=lambda d: (-d["modified"], d["id"]))
    return found


class LineCounts:
    """Count complete lines per file; a file unchanged since the last listing is not opened."""

    def __init__(self):
        self._seen = {}

    def count(self, path, stat):
        """Return the number of complete lines in the file described by stat."""
        known = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == known:
            return seen[1]
        try:
            # The shared index reads only what was added since it last saw the file.
            lines = INDEXES.count(path)
        except OSError:
            return seen[1] if seen is not None else 0
        self._seen[path] = (known, lines)
        return lines
