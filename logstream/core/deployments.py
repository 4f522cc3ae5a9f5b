"""Name, find and describe deployment log files inside the data directory."""

import os
import re
import time
from pathlib import Path

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
    # the data directory counts as a deployment.
    if path.is_symlink() or not path.is_file():
        raise UnknownDeployment(deployment_id)
    return path


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
    """Count complete lines per file, reading only the bytes added since last time."""

    def __init__(self):
        self._seen = {}

    def count(self, path, stat):
        """Return the number of complete lines in the file described by stat."""
        ino, size, lines = self._seen.get(path, (None, 0, 0))
        if ino != stat.st_ino or size > stat.st_size:
            size, lines = 0, 0  # rotated or truncated: count again
        if size < stat.st_size:
            with open(path, "rb") as fp:
                fp.seek(size)
                while chunk := fp.read(min(1 << 20, stat.st_size - size)):
                    lines += chunk.count(b"\n")
                    size += len(chunk)
                    if size >= stat.st_size:
                        break
        self._seen[path] = (stat.st_ino, size, lines)
        return lines
