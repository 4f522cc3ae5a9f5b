"""Python clients of a logstream server.

``logclient.LogClient`` follows deployments over python-socketio, in order,
resuming after reconnects; ``pane.LogPane`` is the notebook log pane built on
it (with its front end, ``pane.js`` and ``pane.css``), ``dashboard.Dashboard``
puts several side by side, and ``widgets`` gathers both; ``panecost``
counts what a pane sends its page; ``rawsocket`` speaks
Socket.IO by hand over a bare WebSocket, to show the frames. They may import
``logstream.core`` (ids, line formats) and ``logstream.support``; they talk to
``logstream.web`` only over the network.
"""
