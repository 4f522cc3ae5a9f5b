"""Facts about the machine the measuring tools run on: free ports, CPUs, load."""

import os
import platform
import socket


def free_port(host="127.0.0.1"):
    """Return a TCP port that was free on host a moment ago."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def machine():
    """Describe the machine that numbers come from: CPUs, CPU model, Python, load."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as fp:
            model = next((line.split(":", 1)[1].strip() for line in fp
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "load_average": [round(x, 2) for x in os.getloadavg()]}
