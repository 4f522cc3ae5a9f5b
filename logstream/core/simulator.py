"""Simulate deployments: write a realistic, finite log one line at a time."""

import collections
import os
import random
import secrets
import string
import threading
from datetime import datetime, timezone

from logstream.core.deployments import new_log_path

ID_ALPHABET = string.ascii_lowercase + string.digits
SERVICES = ["shop-api", "billing", "search", "auth", "web-frontend", "inventory",
            "notifications", "reports"]
FAILURE_RATE = 0.25
# The lifecycle's phases, in order; every line is tagged with one.
PHASES = ["clone", "install", "build", "test", "deploy", "health", "done"]


def new_deployment_id(rng=secrets):
    """Return a short, URL-safe, random deployment id such as 'shop-api-k3x9q2'."""
    suffix = "".join(rng.choice(ID_ALPHABET) for _ in range(6))
    return f"{rng.choice(SERVICES)}-{suffix}"


def lifecycle(rng, service):
    """Yield (level, phase, message) for one deployment, start to finish."""
    commit = "".join(rng.choice("0123456789abcdef") for _ in range(7))
    fails_in = rng.choice(["install", "build", "test", "deploy", "health"]) \
        if rng.random() < FAILURE_RATE else None

    yield "INFO", "clone", f"Deployment of {service} started (commit {commit})"
    yield "INFO", "clone", f"Cloning into '{service}'..."
    for pct in (25, 50, 75, 100):
        yield "INFO", "clone", f"Receiving objects: {pct}% ({pct * 41 // 10}/{410})"
    yield "INFO", "clone", f"HEAD is now at {commit}"

    packages = ["flask", "requests", "sqlalchemy", "redis", "celery", "pydantic",
                "gunicorn", "boto3", "jinja2", "click", "urllib3", "certifi"]
    for name in rng.sample(packages, k=rng.randint(8, len(packages))):
        version = f"{rng.randint(1, 3)}.{rng.randint(0, 9)}"
        yield "INFO", "install", f"Collecting {name}>={version}"
        yield "INFO", "install", (f"  Downloading {name}-{version}.{rng.randint(0, 20)}-py3-none-any.whl "
                                  f"({rng.randint(20, 900)} kB)")
    if rng.random() < 0.5:
        yield "WARN", "install", "pip is looking at multiple versions of urllib3 to resolve conflicts"
    if fails_in == "install":
        yield "ERROR", "install", "ERROR: No matching distribution found for internal-sdk==4.2.0"
        yield from _failed(service, "install")
        return
    yield "INFO", "install", "Successfully installed dependencies"

    for step in range(1, 11):
        yield "INFO", "build", f"Step {step}/10 : {_docker_step(rng, step)}"
    if rng.random() < 0.4:
        yield "WARN", "build", "Image size 912MB exceeds the recommended 500MB"
    if fails_in == "build":
        yield "ERROR", "build", "The command '/bin/sh -c make assets' returned a non-zero code: 2"
        yield from _failed(service, "build")
        return
    yield "INFO", "build", f"Successfully tagged registry.local/{service}:{commit}"

    tests = rng.randint(100, 200)
    for i in range(1, tests + 1):
        slow = rng.random() < 0.05
        level = "WARN" if slow else "INFO"
        note = f" (slow: {rng.uniform(2, 9):.1f}s)" if slow else ""
        yield level, "test", f"tests/test_{_module(rng)}.py::test_case_{i} PASSED{note}"
    if fails_in == "test":
        yield "ERROR", "test", f"tests/test_{_module(rng)}.py::test_case_{tests + 1} FAILED"
        yield "ERROR", "test", "AssertionError: expected status 200, got 500"
        yield from _failed(service, "test")
        return
    yield "INFO", "test", f"{tests} passed in {rng.uniform(20, 90):.2f}s"

    replicas = rng.randint(2, 5)
    for r in range(1, replicas + 1):
        yield "INFO", "deploy", f"Starting replica {r}/{replicas} of {service}"
        yield "INFO", "deploy", f"Replica {r}/{replicas} is running"
    if fails_in == "deploy":
        yield "ERROR", "deploy", "Replica crashed: OOMKilled (limit 512Mi)"
        yield from _failed(service, "deploy")
        return

    for check in range(1, 11):
        if rng.random() < 0.1:
            yield "WARN", "health", f"Health check {check}/10: GET /healthz took {rng.randint(800, 2000)}ms"
        else:
            yield "INFO", "health", f"Health check {check}/10: GET /healthz 200 OK ({rng.randint(3, 40)}ms)"
    if fails_in == "health":
        yield "ERROR", "health", "Health check failed 3 times in a row: GET /healthz 503"
        yield from _failed(service, "health")
        return
    yield "INFO", "done", f"Deployment of {service} succeeded"


def _failed(service, phase):
    yield "ERROR", "done", f"Deployment of {service} failed during {phase}; rolling back"


def _docker_step(rng, step):
    steps = ["FROM python:3.12-slim", "WORKDIR /app", "COPY requirements.txt .",
             "RUN pip install -r requirements.txt", "COPY . .", "RUN make assets",
             "RUN python -m compileall .", "EXPOSE 8000", "USER app",
             'CMD ["gunicorn", "app:app"]']
    return steps[step - 1]


def _module(rng):
    return rng.choice(["api", "models", "auth", "billing", "cart", "search", "utils"])


def format_line(level, phase, message, now=None):
    """Return one log line: ISO timestamp, level, [phase], message."""
    now = now or datetime.now(timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    return f"{stamp} {level:<5} [{phase}] {message}\n"


class Simulator:
    """Run simulated deployments, each writing its log on its own thread."""

    def __init__(self, data_dir, line_interval=0.5, seed=None):
        self.data_dir = data_dir
        self.line_interval = line_interval
        self._rng = random.Random(seed) if seed is not None else secrets.SystemRandom()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._running = {}
        self._written = collections.deque()  # (id, path) of every log started, oldest first

    def start(self):
        """Create a new deployment's log and start writing it; return its id."""
        with self._lock:
            while True:
                deployment_id = new_deployment_id(self._rng)
                path = new_log_path(self.data_dir, deployment_id)
                try:
                    # 'x' refuses to reuse an existing file.
                    fp = open(path, "x", encoding="utf-8")
                    break
                except FileExistsError:
                    continue
            rng = random.Random(self._rng.random())
            service = deployment_id.rsplit("-", 1)[0]
            thread = threading.Thread(target=self._write, args=(fp, rng, service, deployment_id),
                                      name=f"simulator:{deployment_id}", daemon=True)
            self._running[deployment_id] = thread
            self._written.append((deployment_id, path))
        thread.start()
        return deployment_id

    def running(self):
        """Return the ids of deployments still being written."""
        with self._lock:
            return set(self._running)

    def prune(self, keep):
        """Delete the oldest finished logs this simulator wrote, keeping `keep` of them; return their ids."""
        removed = []
        with self._lock:
            finished = [item for item in self._written if item[0] not in self._running]
            excess = len(self._written) - keep
            for item in finished[:max(0, excess)]:
                self._written.remove(item)
                removed.append(item)
        for _, path in removed:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # someone deleted it already
        return [deployment_id for deployment_id, _ in removed]

    def stop(self, timeout=5.0):
        """Stop every writer and wait for them to finish."""
        self._stopping.set()
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout)

    def _write(self, fp, rng, service, deployment_id):
        try:
            with fp:
                for level, phase, message in lifecycle(rng, service):
                    # One write per line: a reader never sees half a line
                    # unless the line is bigger than the pipe buffer.
                    fp.write(format_line(level, phase, message))
                    fp.flush()
                    if self._stopping.wait(self.line_interval):
                        return
        finally:
            with self._lock:
                self._running.pop(deployment_id, None)
