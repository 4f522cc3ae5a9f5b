"""Wait on a condition instead of sleeping a guessed time."""

import time


def wait_until(predicate, timeout=10.0, interval=0.02, what="the condition"):
    """Return predicate()'s first true value; raise TimeoutError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"Waited {timeout} s for {what}, in vain.")
        time.sleep(interval)
