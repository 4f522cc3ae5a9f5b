"""A worker's relay feed: live lines wait within a byte budget; what it drops is read from disk."""

import threading

from logstream.scale.relay import LINE_OVERHEAD, RelayHub

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
