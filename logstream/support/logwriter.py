"""Write a log the way an application does: one line, one write."""

import threading
import time


def append(path, text):
    """Append text to a file in one write, as a logging process would."""
    with open(path, "a", encoding="utf-8", newline="") as fp:
        fp.write(text)


class LineWriter:
    """Append 'line N' to a file every interval seconds on a thread, like an app logging.

    ``written_at[n]`` is the time.time() at which line n was written, so a
    reader can tell how long each line took to reach it.
    """

    def __init__(self, path, interval=0.05, prefix="line"):
        self.path = path
        self.interval = interval
        self.prefix = prefix
        self.count = 0
        self.written_at = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="line-writer")
        open(path, "a").close()
        self._thread.start()

    def _run(self):
        while not self._stopping.wait(self.interval):
            number = self.count + 1
            append(self.path, f"{self.prefix} {number}\n")
            self.written_at[number] = time.time()
            self.count = number

    def stop(self):
        """Stop writing; return how many lines were written."""
        self._stopping.set()
        self._thread.join()
        return self.count

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
