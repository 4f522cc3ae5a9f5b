"""Map deployment ids to the log files a server may open, and describe them.

Two kinds of source answer the same two questions (``resolve(id)`` and
``describe(line_counts)``): ``DataDirSources``, a folder of ``<id>.log``
files, and ``FollowedSet``, the files, folders and standard input named on
the command line. An id is only ever looked up in a table built from what was
named, never joined onto a path, so no id can reach a file outside it.
"""

import hashlib
import os
import re
import stat as stat_module
import threading
import time
from pathlib import Path

from logstream.core.deployments import (LIVE_WINDOW_SECONDS, LOG_SUFFIX, InvalidDeploymentId,
                                        LineCounts, UnknownDeployment, is_valid_id,
                                        list_deployments, log_path)

# Files followed at most, across every named folder: a walk stops there, so
# pointing the server at / can't make a listing take minutes or eat memory.
MAX_FILES = 10_000
# A listing walks the named folders again at most this often.
RESCAN_SECONDS = 1.0
# An unknown id makes the folders be walked again at most this often.
MISS_RESCAN_SECONDS = 0.25
SLUG_CHARS = 48
HASH_CHARS = 8
STDIN_PATH = "-"


def path_id(label, path):
    """Return the id of the file at path, shown as label: a readable slug plus a short hash.

    The slug is label without a final ``.log``, every run of characters
    other than letters, digits and ``_`` turned into one ``-``, cut to 48
    characters; the hash is the first 8 hex digits of SHA-256 over the
    absolute path, so ``a/b.log`` and ``a-b.log`` never share an id and an
    id stays the same from one run to the next.
    """
    stem = label[: -len(LOG_SUFFIX)] if label.endswith(LOG_SUFFIX) else label
    slug = re.sub(r"[^A-Za-z0-9_]+", "-", stem)[:SLUG_CHARS].strip("-_") or "log"
    digest = hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:HASH_CHARS]
    return f"{slug}-{digest}"


def name_id(name):
    """Return the id for a named stream such as standard input (``--name build`` → ``build``)."""
    slug = re.sub(r"[^A-Za-z0-9_.]+", "-", name).strip("-_.")
    slug = re.sub(r"\.{2,}", ".", slug)[:64]
    if not is_valid_id(slug):
        raise ValueError(f"{name!r} can't name a stream: use letters, digits, '.', '_' or '-'.")
    return slug


class DataDirSources:
    """The files ``<id>.log`` directly inside one folder (the server's default)."""

    simulates = True

    def __init__(self, data_dir, running=lambda: ()):
        self.data_dir = Path(data_dir)
        self.running = running

    def resolve(self, deployment_id):
        """Return the log path of deployment_id, refusing anything unsafe."""
        return log_path(self.data_dir, deployment_id)

    def describe(self, line_counts):
        """Describe every deployment, newest activity first."""
        found = list_deployments(self.data_dir, live_ids=self.running(),
                                 line_counts=line_counts)
        for entry in found:
            entry["path"] = str(self.data_dir / (entry["id"] + LOG_SUFFIX))
        return found

    def close(self):
        """Release nothing: the folder belongs to the user."""


class FollowedSet:
    """The files named on the command line, every ``*.log`` under the named folders,
    and standard input (kept in a spool file), each under a stable id.

    Symlinks are followed only when named; inside a folder they are skipped.
    Folders are walked again when listed, so files created later appear.
    """

    simulates = False

    def __init__(self, paths, stdin=None):
        self._files = {}     # id -> (shown path, path to open), named files
        self._folders = []   # (shown path, real path) of each named folder
        self._found = {}     # id -> (shown path, path to open), found in folders
        self._stdin = {}     # id -> StdinSpool
        self._lock = threading.Lock()
        self._scanned_at = float("-inf")
        self.truncated = False  # the walk stopped at MAX_FILES
        for given in paths:
            self._add(os.fspath(given))
        if stdin is not None:
            deployment_id = name_id(stdin.name)
            if deployment_id in self._files:
                raise ValueError(f"{stdin.name!r} is already the id of a named file.")
            self._stdin[deployment_id] = stdin
        self.rescan()

    def _add(self, given):
        shown = os.path.abspath(given)
        # Named on the command line: a symlink is followed, once, here.
        real = os.path.realpath(given)
        if os.path.isdir(real):
            self._folders.append((shown, real))
        elif os.path.isfile(real):
            label = os.path.basename(shown)
            self._files[path_id(label, shown)] = (shown, real)
        elif os.path.exists(real):
            raise ValueError(f"{given} is neither a regular file nor a folder.")
        else:
            raise ValueError(f"{given}: no such file or folder.")

    def rescan(self, min_age=0.0):
        """Walk the named folders again, unless that was done less than min_age seconds ago."""
        with self._lock:
            if time.monotonic() - self._scanned_at < min_age:
                return
            found = {}
            budget = MAX_FILES - len(self._files)
            for shown, real in self._folders:
                budget = self._walk(shown, real, found, budget)
            self.truncated = budget <= 0
            self._found = found
            self._scanned_at = time.monotonic()

    def _walk(self, shown_top, real_top, found, budget):
        """Add every regular *.log file under real_top to found; return the budget left."""
        label_top = os.path.basename(shown_top.rstrip(os.sep)) or "root"
        stack = [""]
        while stack and budget > 0:
            relative = stack.pop()
            try:
                entries = sorted(os.scandir(os.path.join(real_top, relative)),
                                 key=lambda e: e.name)
            except OSError:
                continue  # unreadable or vanished: skip it, keep the rest
            for entry in entries:
                inner = os.path.join(relative, entry.name)
                if entry.is_symlink():
                    continue  # never leave the named folder through a link
                if entry.is_dir(follow_symlinks=False):
                    stack.append(inner)
                elif entry.name.endswith(LOG_SUFFIX) and entry.is_file(follow_symlinks=False):
                    shown = os.path.join(shown_top, inner)
                    found[path_id(os.path.join(label_top, inner), shown)] = (
                        shown, os.path.join(real_top, inner))
                    budget -= 1
                    if budget <= 0:
                        break
        return budget

    def resolve(self, deployment_id):
        """Return the path to open for deployment_id; raise when it isn't followed."""
        if not is_valid_id(deployment_id):
            raise InvalidDeploymentId(deployment_id)
        for attempt in (0, 1):
            with self._lock:
                if deployment_id in self._stdin:
                    return Path(self._stdin[deployment_id].path)
                entry = self._files.get(deployment_id) or self._found.get(deployment_id)
            if entry is not None:
                return Path(entry[1])
            if attempt == 0 and self._folders:
                self.rescan(min_age=MISS_RESCAN_SECONDS)  # perhaps a file created just now
        raise UnknownDeployment(deployment_id)

    def describe(self, line_counts=None):
        """Describe every followed file and stream, newest activity first."""
        line_counts = line_counts or LineCounts()
        self.rescan(min_age=RESCAN_SECONDS)
        with self._lock:
            files = [*self._files.items(), *self._found.items()]
            streams = list(self._stdin.items())
        now = time.time()
        described = []
        for deployment_id, (shown, real) in files:
            try:
                stat = os.stat(real, follow_symlinks=False)
            except OSError:
                continue  # deleted for now; it comes back if it is created again
            if not stat_module.S_ISREG(stat.st_mode):
                continue
            described.append(self._entry(deployment_id, shown, real, stat, line_counts,
                                         live=now - stat.st_mtime < LIVE_WINDOW_SECONDS))
        for deployment_id, spool in streams:
            try:
                stat = os.stat(spool.path)
            except OSError:
                continue
            described.append(self._entry(deployment_id, STDIN_PATH, spool.path, stat,
                                         line_counts, live=not spool.finished))
        described.sort(key=lambda d: (-d["modified"], d["id"]))
        return described

    @staticmethod
    def _entry(deployment_id, shown, real, stat, line_counts, live):
        return {"id": deployment_id, "path": shown, "lines": line_counts.count(real, stat),
                "bytes": stat.st_size, "modified": stat.st_mtime, "live": live}

    def close(self):
        """Stop reading standard input and delete its spool."""
        for spool in self._stdin.values():
            spool.close()
