"""Count the bytes every transport really sends, by forwarding its TCP connections."""

import socket
import threading


class ByteCounter:
    """Forward TCP connections to a server and count the bytes that cross them.

    Clients connect to the counter instead of the server, so every byte of
    every connection a transport opens (handshakes, HTTP headers, frames,
    polls) is counted as it passes, whatever the client library.
    """

    def __init__(self, host, port):
        self.upstream = (host, port)
        self.up = self.down = self.connections = 0
        self._lock = threading.Lock()
        self._sockets = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, name="byte-counter", daemon=True).start()

    def counts(self):
        """Return (bytes client→server, bytes server→client, connections) so far."""
        with self._lock:
            return self.up, self.down, self.connections

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                # Without this the counter would add Nagle's delay to small frames.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._sockets.update((client, server))
            pair = {"open": 2}
            for src, dst, up in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, up, pair, client, server),
                                 name="byte-counter-pump", daemon=True).start()

    def _pump(self, src, dst, up, pair, client, server):
        try:
            while data := src.recv(65536):
                with self._lock:  # counted before it is passed on, so never late
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            for sock in (client, server):
                shut_down(sock)
        with self._lock:
            pair["open"] -= 1
            done = pair["open"] == 0
            if done:
                self._sockets.difference_update((client, server))
        if done:
            client.close()
            server.close()

    def close(self):
        """Stop accepting and cut every forwarded connection."""
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            shut_down(sock)


def shut_down(sock):
    """Shut a socket down both ways; one already closed is fine."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


