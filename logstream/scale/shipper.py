"""Follow every log in the data directory and publish its lines to the web workers through Redis."""

import logging
import os
import threading
from pathlib import Path

import click

from logstream.core.deployments import LOG_SUFFIX, is_valid_id
from logstream.core.follower import Follower
from logstream.core.lines import DEFAULT_MAX_LINE_BYTES
from logstream.scale.relay import SHIP_CHANNEL, ship_message

log = logging.getLogger(__name__)

SCAN_INTERVAL = 0.5


class Shipper:
    """Run one follower per ``*.log`` file and publish each read once on the Redis channel.

    Every read and every follower status becomes one message on
    ``SHIP_CHANNEL``; the web workers (logstream/scale/relay.py) fan them out
    to their own clients. The data directory is scanned every
    ``scan_interval`` seconds for new files.
    """

    def __init__(self, data_dir, message_queue, *, scan_interval=SCAN_INTERVAL,
                 max_line_bytes=DEFAULT_MAX_LINE_BYTES, use_inotify=True):
        import redis

        self.data_dir = Path(data_dir)
        self.scan_interval = scan_interval
        self.follower_options = {"max_line_bytes": max_line_bytes, "use_inotify": use_inotify}
        self.redis = redis.Redis.from_url(message_queue)
        self.followers = {}
        self.shipped = {}  # deployment id -> last line published or noted
        self.published = 0  # lines published, for the benchmark and the log
        self._stopping = threading.Event()

    def scan(self):
        """Start a follower for every deployment log that has none yet."""
        for entry in os.scandir(self.data_dir):
            name = entry.name
            if not name.endswith(LOG_SUFFIX) or entry.is_symlink() or not entry.is_file():
                continue
            deployment_id = name[: -len(LOG_SUFFIX)]
            if deployment_id in self.followers or not is_valid_id(deployment_id):
                continue
            self.followers[deployment_id] = Follower(
                entry.path,
                on_lines=lambda lines, d=deployment_id: self.publish(d, lines),
                on_status=lambda payload, d=deployment_id: self.status(d, payload),
                # Forgotten, so the next scan follows the file afresh.
                on_failure=lambda exc, d=deployment_id: self.followers.pop(d, None),
                name=f"ship:{deployment_id}", **self.follower_options).start()
            log.info("shipping %s", deployment_id)

    def send(self, deployment_id, kind, payload):
        """Publish one message; while Redis is down it is lost, and workers read the disk."""
        import redis

        try:
            self.redis.publish(SHIP_CHANNEL, ship_message(deployment_id, kind, payload))
        except redis.RedisError as error:
            log.warning("could not publish to Redis (%s)", error)

    def publish(self, deployment_id, lines):
        self.send(deployment_id, "lines", lines)
        self.shipped[deployment_id] = lines[-1][0]
        self.published += len(lines)

    def status(self, deployment_id, payload):
        self.send(deployment_id, "status", payload)
        self.shipped[deployment_id] = payload["next_line"] - 1

    def note_positions(self):
        """Tell the workers how far each file has been read, where lines went unpublished.

        A follower counts the lines already in a file as read without
        publishing them: a file found after it was written to, or every file
        after the shipper restarts. Workers fill such gaps from disk.
        """
        for deployment_id, follower in list(self.followers.items()):
            lines = follower.lines
            if lines and lines != self.shipped.get(deployment_id):
                self.shipped[deployment_id] = lines
                self.send(deployment_id, "position", lines)

    def run(self):
        """Scan and ship until stop() is called."""
        while not self._stopping.is_set():
            self.scan()
            self.note_positions()
            self._stopping.wait(self.scan_interval)

    def start(self):
        """Run in a background thread; return self."""
        self.scan()
        threading.Thread(target=self.run, name="shipper", daemon=True).start()
        return self

    def stop(self):
        """Stop scanning and every follower."""
        self._stopping.set()
        for follower in self.followers.values():
            follower.stop()
        self.followers.clear()
        self.redis.close()


@click.command()
@click.option("--data-dir", default="data/logs", show_default=True,
              type=click.Path(file_okay=False), envvar="LOGSTREAM_DATA_DIR",
              help="Folder of <deployment>.log files (the same one the workers serve).")
@click.option("--message-queue", required=True, metavar="URL",
              help="The Redis the workers use: redis://HOST:PORT/DB.")
@click.option("--max-line-bytes", default=DEFAULT_MAX_LINE_BYTES, show_default=True,
              type=click.IntRange(min=64), help="Longer lines are cut, with a visible marker.")
@click.option("--poll", is_flag=True, help="Poll files instead of using inotify.")
@click.option("--scan-interval", default=SCAN_INTERVAL, show_default=True,
              type=click.FloatRange(min=0.01), help="Seconds between looks for new log files.")
def ship(data_dir, message_queue, max_line_bytes, poll, scan_interval):
    """Follow every log in the data directory and publish its lines to the web workers."""
    from logstream.scale.relay import check_message_queue

    problem = check_message_queue(message_queue)
    if problem:
        raise click.UsageError(problem)
    if not Path(data_dir).is_dir():
        raise click.UsageError(f"There is no folder {data_dir!r} to ship logs from.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    shipper = Shipper(data_dir, message_queue, scan_interval=scan_interval,
                      max_line_bytes=max_line_bytes, use_inotify=not poll)
    click.echo(f"logstream shipping {data_dir} to {message_queue}  (Ctrl+C to stop)")
    try:
        shipper.scan()
        shipper.run()
    except KeyboardInterrupt:
        pass
    finally:
        shipper.stop()
