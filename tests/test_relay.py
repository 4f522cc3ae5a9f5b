"""A worker's relay: its Redis listener, and feeds whose live lines wait within a byte budget."""

import os
import shutil
import threading

import pytest

from logstream.scale.relay import (LINE_OVERHEAD, SHIP_CHANNEL, RelayHub, ShipListener,
                                   ship_message)
from logstream.support.host import free_port
from logstream.scale.topology import redis_process

from conftest import Logs, append, wait_until


class BlockingOutlet:
    """Receive what the hub publishes; hold the feed's thread until released."""

    def __init__(self):
        self.lines = []
        self.release = threading.Event()
        self.entered = threading.Event()

    def publish(self, deployment_id, lines):
        self.entered.set()
        self.release.wait(30)
        self.lines += [number for number, _ in lines]

    def status(self, deployment_id, payload):
        pass


def test_a_slow_feed_keeps_at_most_its_byte_budget_and_reads_the_rest_from_disk(tmp_path):
    logs = Logs(tmp_path)
    deployment_id, path = logs.make(10)
    budget = 50 * (len("line 100") + LINE_OVERHEAD)
    hub = RelayHub(tmp_path, max_feed_bytes=budget)
    outlet = BlockingOutlet()
    hub.outlets.append(outlet)
    history = []
    attached = threading.Event()

    def on_attach(batches, first, next_line):
        history.extend(number for batch in batches for number, _ in batch)
        attached.set()

    hub.subscribe(deployment_id, "client", on_attach, since=0)
    try:
        assert attached.wait(10)
        assert history == list(range(1, 11))
        feed = hub._sources[deployment_id]
        # The shipper publishes 1000 lines, 10 per read, while the rooms' sender is stuck.
        for first in range(11, 1011, 10):
            batch = [(n, f"line {n}") for n in range(first, first + 10)]
            append(path, "".join(f"{text}\n" for _, text in batch))
            hub.deliver(deployment_id, "lines", batch)
            if first == 11:
                wait_until(outlet.entered.is_set, message="the feed to start sending")
            assert feed.queued_bytes <= budget
        assert feed.dropped > 0, "a stuck feed should have dropped lines over its budget"
        # The shipper's periodic note of how far it has read.
        hub.deliver(deployment_id, "position", 1010)
        outlet.release.set()
        wait_until(lambda: outlet.lines[-1:] == [1010], message="the feed to catch up from disk")
        assert outlet.lines == list(range(11, 1011))
        assert feed.queued_bytes == 0
    finally:
        outlet.release.set()
        hub.stop()


class Deliveries:
    """Record what a ShipListener hands on, as a RelayHub would receive it."""

    def __init__(self):
        self.items = []

    def deliver(self, deployment_id, kind, payload):
        self.items.append((deployment_id, kind, payload))


def test_the_listener_hears_the_shipper_again_after_redis_restarts(tmp_path):
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    import redis

    server = redis_process(free_port(), tmp_path).start(timeout=20)
    url = server.url
    client = redis.Redis.from_url(url)
    deliveries = Deliveries()
    listener = ShipListener(url, deliveries).start()
    try:
        client.publish(SHIP_CHANNEL, ship_message("app", "lines", [[1, "one"]]))
        client.publish(SHIP_CHANNEL, "not the shipper's")
        wait_until(lambda: deliveries.items, message="the first message")
        server.kill()
        server.start(timeout=20)

        def heard():
            # Published until the listener has resubscribed: earlier ones are lost.
            client.publish(SHIP_CHANNEL, ship_message("app", "position", 2))
            return ("app", "position", 2) in deliveries.items

        wait_until(heard, timeout=20, interval=0.2, message="the listener to resubscribe")
        assert deliveries.items[0] == ("app", "lines", [(1, "one")])
    finally:
        listener.stop()
        client.close()
        server.stop()
