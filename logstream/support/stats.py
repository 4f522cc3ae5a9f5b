"""Percentiles, defined once: the nearest-rank method."""

import math


def percentile(values, p):
    """Return the nearest-rank p-th percentile: the smallest value with at least p % of values at or below it."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("a percentile of no values is undefined")
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def percentiles(values, points=(50, 95, 99)):
    """Return {"p50": ..., "p95": ..., "p99": ..., "max": ...} of values (nearest rank), or None if empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    result = {f"p{p}": percentile(ordered, p) for p in points}
    result["max"] = ordered[-1]
    return result
