"""Python clients of a logstream server.

``logclient.LogClient`` follows deployments over python-socketio, in order,
resuming after reconnects; ``widgets`` builds the notebook panes on it;
``rawsocket`` speaks Socket.IO by hand over a bare WebSocket, to show the
frames. They may import ``logstream.core`` (ids, line formats) and
``logstream.support``; they talk to ``logstream.web`` only over the network.
"""
