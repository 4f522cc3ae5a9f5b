"""A naive streaming design, kept only as the benchmark's baseline.

It tails with readline and a 100 ms sleep when nothing is new, and emits
one ``new_log`` per line to the deployment's room: the design most tutorials
show. Two of its usual defects are left out so it can be measured at all: one
tailer per deployment (not one per start_streaming, which would send every
client each line once per client) and tailers stop with the process.
Everything else (the same Flask-SocketIO threading mode on Werkzeug's
threaded server, no line numbers, no history) is as simple as it gets.
Run it with ``python -m logstream.tools.baseline_app --port N --data-dir D``.
"""

import argparse
import os
import threading
import time

from flask import Flask
from flask_socketio import SocketIO, emit, join_room
from werkzeug.serving import make_server

POLL_SECONDS = 0.1


def create_naive_app(data_dir):
    """Create the naive app: join a room, tail the file, emit per line."""
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="threading", logger=False, engineio_logger=False)
    tailers = {}
    lock = threading.Lock()

    def log_tailer(deployment_id):
        with open(os.path.join(data_dir, f"{deployment_id}.log")) as fp:
            fp.seek(0, 2)  # go to end of file
            while True:
                line = fp.readline()
                if line:
                    socketio.emit("new_log", {"message": line.strip()}, room=deployment_id)
                else:
                    time.sleep(POLL_SECONDS)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @socketio.on("start_streaming")
    def start_streaming(data):
        deployment_id = data["deployment_id"]
        join_room(deployment_id)
        with lock:
            if deployment_id not in tailers:
                tailers[deployment_id] = threading.Thread(
                    target=log_tailer, args=(deployment_id,), daemon=True)
                tailers[deployment_id].start()

    @socketio.on("ping")
    def ping(data=None):
        pong = {"server_time": time.time()}
        emit("pong", pong)
        return pong

    return app


def main(argv=None):
    """Serve the naive app until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args(argv)
    httpd = make_server(args.host, args.port, create_naive_app(args.data_dir), threaded=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
