"""Share one follower per deployment among all of its subscribers."""

import logging
import threading

from logstream.core.deployments import log_path
from logstream.core.follower import Follower

log = logging.getLogger(__name__)

# How long a new subscriber waits for the deployment's previous source to
# finish its last publish before starting a fresh one.
RETIRE_TIMEOUT = 5.0


class StreamHub:
    """Start a deployment's follower for its first subscriber and stop it after its last.

    Every kind of subscriber (a Socket.IO client, an SSE response) goes
    through here, so a file has one follower whatever the mix of clients.
    Outlets are objects with ``publish(deployment_id, lines)`` and
    ``status(deployment_id, payload)``, and optionally
    ``failed(deployment_id, keys, payload)`` to hear that a source failed
    (``keys`` are its subscribers, already dropped); they are called on the
    thread that publishes, once per read.
    """

    def __init__(self, data_dir, **follower_options):
        self.data_dir = data_dir
        self.follower_options = follower_options
        self.outlets = []
        self._lock = threading.Lock()
        self._sources = {}  # deployment_id -> its Follower (or relay Feed)
        self._subscribers = {}
        self._retiring = {}  # deployment_id -> a stopped source still finishing

    def subscribe(self, deployment_id, key, on_attach, since=None, tail=50):
        """Add a subscriber; on_attach(history, first_line, next_line) runs
        between two of the source's reads, before live lines reach it (on
        this thread or the source's).

        Raises InvalidDeploymentId or UnknownDeployment before anything starts.
        """
        path = self.resolve(deployment_id)
        while True:
            with self._lock:
                retiring = self._retiring.get(deployment_id)
                if retiring is None:
                    source = self._sources.get(deployment_id)
                    if source is None:
                        source = self._sources[deployment_id] = self._start_source(
                            deployment_id, path)
                        self._subscribers[deployment_id] = set()
                    self._subscribers[deployment_id].add(key)
                    # A follower may serve the subscriber on this thread:
                    # outside the lock, which on_attach's callees may need.
                    serve = getattr(source, "serve_attached", None)
                    if serve is None:
                        source.attach(key, on_attach, since=since, tail=tail)
                    else:
                        source.attach(key, on_attach, since=since, tail=tail, serve=False)
                    break
            # Outside the lock: the old source may need it to finish its last
            # publish. A fresh one starts only after, so no line goes twice.
            if not _wait_stopped(retiring, RETIRE_TIMEOUT):
                log.error("the previous source of %s did not stop in time", deployment_id)
            with self._lock:
                if self._retiring.get(deployment_id) is retiring:
                    del self._retiring[deployment_id]
        if serve is not None:
            serve()

    def resolve(self, deployment_id):
        """Return the log path of deployment_id; an app may set another resolver."""
        return log_path(self.data_dir, deployment_id)

    def _start_source(self, deployment_id, path):
        """Start what delivers a deployment's lines: here, a Follower of its file."""
        follower = Follower(
            path,
            on_lines=lambda lines: self._publish(deployment_id, lines),
            on_status=lambda payload: self._status(deployment_id, payload),
            on_failure=lambda exc: self._failed(deployment_id, follower, exc),
            name=f"follower:{deployment_id}",
            **self.follower_options,
        )
        return follower.start()

    def unsubscribe(self, deployment_id, key):
        """Remove a subscriber; stop the follower when it was the last one."""
        with self._lock:
            keys = self._subscribers.get(deployment_id)
            if keys is None or key not in keys:
                return False
            keys.discard(key)
            source = self._sources[deployment_id]
            source.detach(key)
            if keys:
                return True
            del self._sources[deployment_id]
            del self._subscribers[deployment_id]
            self._retiring[deployment_id] = source
        # Stopped outside the lock: its last publish may be what called us
        # (a lagging client leaving), and it may need the lock to finish. A
        # new subscriber waits for it (see subscribe), so two sources never
        # publish the same file.
        source.stop()
        with self._lock:
            if self._retiring.get(deployment_id) is source:
                del self._retiring[deployment_id]
        return True

    def followed(self):
        """Return the ids of the deployments being followed right now."""
        with self._lock:
            return set(self._sources)

    def subscriber_count(self, deployment_id):
        """Return how many subscribers a deployment has."""
        with self._lock:
            return len(self._subscribers.get(deployment_id, ()))

    def stop(self):
        """Stop every follower (the server is shutting down)."""
        with self._lock:
            sources = list(self._sources.values())
            self._sources.clear()
            self._subscribers.clear()
        for source in sources:
            source.stop(0)  # all at once: one round trip each would add up
        for source in sources:
            _wait_stopped(source, RETIRE_TIMEOUT)

    def _failed(self, deployment_id, source, exc):
        """Drop a source that failed, tell its subscribers, and let the next one start afresh."""
        with self._lock:
            if self._sources.get(deployment_id) is not source:
                return
            del self._sources[deployment_id]
            keys = self._subscribers.pop(deployment_id, set())
        payload = {"error": "source_failed",
                   "message": f"Following {deployment_id!r} failed on the server "
                              f"({type(exc).__name__}; it was logged); start streaming "
                              f"again to follow it afresh."}
        for outlet in self.outlets:
            failed = getattr(outlet, "failed", None)
            if failed is not None:
                failed(deployment_id, keys, payload)

    def _publish(self, deployment_id, lines):
        for outlet in self.outlets:
            outlet.publish(deployment_id, lines)

    def _status(self, deployment_id, payload):
        for outlet in self.outlets:
            outlet.status(deployment_id, payload)


def _wait_stopped(source, timeout):
    """Wait until a stopped source has finished publishing; sources without a wait are done."""
    wait = getattr(source, "wait_stopped", None)
    return True if wait is None else wait(timeout)
