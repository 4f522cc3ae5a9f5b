"""Send a follower's lines and statuses into its deployment's Socket.IO rooms, taking out clients that lag."""

import logging
import time
from collections import Counter

from logstream.web.fanout import RoomFanout
from logstream.web.payloads import batch_json, batch_room, lagging_status, line_json, line_room

log = logging.getLogger(__name__)

# How long the publishing task pauses after each publish on green threads.
# gevent's sleep(0) runs other ready tasks but polls no socket; a timer, even
# this short, lets the sockets' events in (a ping during a 20 MB burst to ten
# viewers: answered in at most 67 ms instead of 700).
GREEN_YIELD_SECONDS = 0.0005
# ... and every this many lines of a publish sent one event a line.
GREEN_YIELD_LINES = 500


class SocketOutlet:
    """Emit a follower's lines into its deployment's rooms, encoded once per room."""

    def __init__(self, socketio, max_backlog_bytes, on_lagging, on_failed=None, fanout=None):
        self.fanout = fanout or RoomFanout(socketio, None, direct=False)
        self.max_backlog_bytes = max_backlog_bytes
        self.on_lagging = on_lagging
        self.on_failed = on_failed
        # How many clients want each kind of event, so no packet is encoded
        # for an empty room.
        self.line_members = Counter()
        self.batch_members = Counter()

    def backlog(self, sid):
        """Return how many bytes are queued for a client and not yet sent."""
        return self.fanout.backlog(sid)

    def lagging(self, sid, deployment_id, lines):
        """Take a client whose backlog is full out of the deployment's rooms and tell it."""
        log.warning("client %s is lagging: over %d bytes wait to be sent to it "
                    "(Limits.max_backlog_bytes)", sid, self.max_backlog_bytes)
        self.on_lagging(sid, deployment_id,
                        lagging_status(deployment_id, lines[0][0] - 1, len(lines)))

    def send(self, event, payload, room, deployment_id, lines, check=True):
        """Emit to the room's members, first taking out those whose backlog is full (with check)."""
        self.fanout.emit(event, payload, room, self.max_backlog_bytes,
                         (lambda sid: self.lagging(sid, deployment_id, lines)) if check else None)

    def publish(self, deployment_id, lines):
        if self.batch_members[deployment_id]:
            self.send("log_batch", batch_json(deployment_id, lines), batch_room(deployment_id),
                      deployment_id, lines)
        if self.line_members[deployment_id]:
            room = line_room(deployment_id)
            for index, (number, text) in enumerate(lines):
                # Backlogs are checked once a publish, as for a batch.
                self.send("new_log", line_json(deployment_id, number, text), room,
                          deployment_id, lines, check=index == 0)
                if self.fanout.direct and index % GREEN_YIELD_LINES == GREEN_YIELD_LINES - 1:
                    time.sleep(GREEN_YIELD_SECONDS)
        if self.fanout.direct:
            # On green threads nothing else runs until this task waits, and
            # direct writes never wait: a burst would hold back every ping,
            # join and page until it is all sent. Let them in between reads.
            time.sleep(GREEN_YIELD_SECONDS)

    def status(self, deployment_id, payload):
        payload = dict(payload, deployment_id=deployment_id)
        for room in (line_room(deployment_id), batch_room(deployment_id)):
            self.fanout.emit("status", payload, room)

    def failed(self, deployment_id, keys, payload):
        """Tell a failed source's subscribers (Socket.IO sids among keys) and let them go."""
        if self.on_failed is not None:
            self.on_failed(deployment_id, keys, dict(payload, deployment_id=deployment_id))
