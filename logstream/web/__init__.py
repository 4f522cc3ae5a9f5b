"""The web layer: the Flask app, its Socket.IO events, the SSE stream and pages.

``app.create_app`` builds the app on top of a ``core`` hub; ``events``,
``sse`` and ``views`` speak the wire contract of docs/protocol.md;
``validation``, ``limits`` and ``auth`` guard it; ``websocket`` is the fast
send path, ``handshake`` its opening, ``wsconn`` the reading of a
connection's frames and ``sendqueue`` each client's counted backlog;
``server`` runs it (``start_server`` in a notebook, ``serve_forever`` for the
CLI); ``urls`` keeps links relative so pages work under a proxy's prefix,
and ``jupyter_proxy`` reaches them through jupyter-server-proxy.
It may import ``logstream.core`` and ``logstream.support``, never clients,
scale-out or tools.
"""
