"""The notebook widgets in one place: the log pane, the dashboard and what they show."""

from logstream.clients.dashboard import Dashboard
from logstream.clients.describe import PHASES, describe_line, format_duration
from logstream.clients.pane import LogPane

__all__ = ["PHASES", "Dashboard", "LogPane", "describe_line", "format_duration"]
