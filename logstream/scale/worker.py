"""A web worker of a scaled-out deployment: the usual app, its lines relayed from Redis."""

from logstream.core.lines import DEFAULT_MAX_LINE_BYTES
from logstream.scale.relay import RelayHub, RelayManager
from logstream.web.app import create_app


def create_worker_app(data_dir=None, *, message_queue, max_line_bytes=DEFAULT_MAX_LINE_BYTES,
                      **app_options):
    """Create an app that runs no follower: its live lines come from `logstream ship`.

    Workers made this way share rooms through the Redis at ``message_queue``
    (a ``redis://`` URL) and serve history from disk; see docs/scaling.md.
    """
    def make_hub(data_dir):
        hub = RelayHub(data_dir, max_line_bytes=max_line_bytes)
        hub.client_manager = RelayManager(message_queue, hub)
        return hub

    app = create_app(data_dir, max_line_bytes=max_line_bytes, make_hub=make_hub,
                     **app_options)
    # Hear the shipper before the first client joins, not after.
    app.extensions["logstream"].hub.client_manager.start_listening()
    return app
