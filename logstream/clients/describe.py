"""Describe what the notebook panes show: simulator phases, durations and server URLs."""

import re

# The simulator tags each line with its phase, in this order (simulator.lifecycle).
PHASES = ("clone", "install", "build", "test", "deploy", "health", "done")
SIMULATED_LINE = re.compile(r"^\S+\s+(?P<level>[A-Z]+)\s+\[(?P<phase>[a-z]+)\]\s(?P<message>.*)$")


def url_of(server_or_url):
    """Return the base URL of a server handle or URL string, refusing anything else."""
    url = getattr(server_or_url, "url", server_or_url)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"Expected a logstream server handle or an http(s) URL, "
                         f"not {server_or_url!r}.")
    return url.rstrip("/")


def describe_line(text):
    """Return (level, phase) of a simulator line, or (None, None) for any other line."""
    match = SIMULATED_LINE.match(text)
    if match and match["phase"] in PHASES:
        return match["level"], match["phase"]
    return None, None


def outcome_of(text):
    """Return 'succeeded' or 'failed' for a simulator's last line (phase done)."""
    return "succeeded" if text.rstrip().endswith("succeeded") else "failed"


def format_duration(seconds):
    """Return a duration such as '42 s', '3 min 05 s' or '1 h 02 min'."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def lines_text(count):
    """Return '1 line' or 'N lines', with thousands separated."""
    return f"{count:,} line" + ("" if count == 1 else "s")
