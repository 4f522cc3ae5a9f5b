"""A web worker of a scaled-out deployment: the usual app, its lines relayed from Redis."""

from logstream.core.lines import DEFAULT_MAX_LINE_BYTES
from logstream.scale.relay import DEFAULT_FEED_BYTES, RelayHub, RelayManager, ShipListener
from logstream.web.app import create_app


def create_worker_app(data_dir=None, *, message_queue, max_line_bytes=DEFAULT_MAX_LINE_BYTES,
                      max_feed_bytes=DEFAULT_FEED_BYTES, **app_options):
    """Create an app that runs no follower: its live lines come from `logstream ship`.

    Workers made this way share rooms through the Redis at ``message_queue``
    (a ``redis://`` URL) and serve history from disk; ``max_feed_bytes``
    bounds the live lines waiting for each deployment's relay thread. See
    docs/scaling.md.
    """
    def make_hub(data_dir):
        hub = RelayHub(data_dir, max_line_bytes=max_line_bytes, max_feed_bytes=max_feed_bytes)
        hub.client_manager = RelayManager(message_queue)
        return hub

    app = create_app(data_dir, max_line_bytes=max_line_bytes, make_hub=make_hub,
                     **app_options)
    state = app.extensions["logstream"]
    # Hear the shipper before the first client joins, not after.
    listener = ShipListener(message_queue, state.hub).start()
    state.shutdown_hooks.append(listener.stop)
    return app
