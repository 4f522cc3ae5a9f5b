"""Share one follower per deployment among all of its subscribers."""

import threading

from logstream.core.deployments import log_path
from logstream.core.follower import Follower


class StreamHub:
    """Start a deployment's follower for its first subscriber and stop it after its last.

    Every kind of subscriber (a Socket.IO client, an SSE response) goes
    through here, so a file has one follower whatever the mix of clients.
    Outlets are objects with ``publish(deployment_id, lines)`` and
    ``status(deployment_id, payload)``; they are called on the follower's
    thread, once per read.
    """

    def __init__(self, data_dir, **follower_options):
        self.data_dir = data_dir
        self.follower_options = follower_options
        self.outlets = []
        self._lock = threading.Lock()
        self._sources = {}  # deployment_id -> its Follower (or relay Feed)
        self._subscribers = {}

    def subscribe(self, deployment_id, key, on_attach, since=None, tail=50):
        """Add a subscriber; on_attach(history, first_line, next_line) runs on
        the follower's thread before live lines reach it.

        Raises InvalidDeploymentId or UnknownDeployment before anything starts.
        """
        path = self.resolve(deployment_id)
        with self._lock:
            source = self._sources.get(deployment_id)
            if source is None:
                source = self._sources[deployment_id] = self._start_source(deployment_id, path)
                self._subscribers[deployment_id] = set()
            self._subscribers[deployment_id].add(key)
            source.attach(key, on_attach, since=since, tail=tail)

    def resolve(self, deployment_id):
        """Return the log path of deployment_id; an app may set another resolver."""
        return log_path(self.data_dir, deployment_id)

    def _start_source(self, deployment_id, path):
        """Start what delivers a deployment's lines: here, a Follower of its file."""
        return Follower(
            path,
            on_lines=lambda lines: self._publish(deployment_id, lines),
            on_status=lambda payload: self._status(deployment_id, payload),
            name=f"follower:{deployment_id}",
            **self.follower_options,
        ).start()

    def unsubscribe(self, deployment_id, key):
        """Remove a subscriber; stop the follower when it was the last one."""
        with self._lock:
            keys = self._subscribers.get(deployment_id)
            if keys is None or key not in keys:
                return False
            keys.discard(key)
            source = self._sources[deployment_id]
            source.detach(key)
            if not keys:
                # Stopped while holding the lock, so a new subscriber can
                # never meet an old follower that is still publishing.
                del self._sources[deployment_id]
                del self._subscribers[deployment_id]
                source.stop()
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
            source.stop()

    def _publish(self, deployment_id, lines):
        for outlet in self.outlets:
            outlet.publish(deployment_id, lines)

    def _status(self, deployment_id, payload):
        for outlet in self.outlets:
            outlet.status(deployment_id, payload)
