"""Background tasks start as bare greenlets on green threads, and as OS threads elsewhere."""

import json
import subprocess
import sys
import threading

from logstream.support.green import is_green, thread_class

GREEN = """
import json, threading
from gevent import monkey
monkey.patch_all()
import gevent
from logstream.support.green import is_green, thread_class

cls = thread_class()
seen = []
task = cls(target=lambda a, b=0: seen.append(a + b), args=(1,), kwargs={"b": 2}, daemon=True)
# What simple-websocket does to the reader it is given.
task.name = task.name.replace("(_thread)", "(simple_websocket.Base._thread)") + "-reader"
alive_before = task.is_alive()
task.start()
task.join(5)
threads_seen = threading.active_count()
print(json.dumps({"green": is_green(), "greenlet": isinstance(task, gevent.Greenlet),
                  "ran": seen, "alive": [alive_before, task.is_alive()],
                  "name": task.name, "threads": threads_seen}))
"""


def test_on_green_threads_tasks_are_greenlets_with_the_thread_interface_engineio_uses():
    done = subprocess.run([sys.executable, "-c", GREEN], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["green"] and result["greenlet"]
    assert result["ran"] == [3]
    assert result["name"].endswith("-reader")
    # A greenlet is alive once started; it counts as no thread of the process.
    assert result["alive"] == [False, False] and result["threads"] == 1


def test_elsewhere_tasks_are_os_threads():
    assert not is_green()
    assert thread_class() is threading.Thread
