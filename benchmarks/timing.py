"""Percentiles and rates, summarised the same way for every measurement."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["latency_summary", "percentile", "rate"]


def percentile(values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile of ``values``, interpolating between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    if low == high:
        return ordered[low]
    weight = position - low
    return ordered[low] * (1 - weight) + ordered[high] * weight


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Count, p50, p99, mean and max of durations, in milliseconds."""
    return {
        "count": len(seconds),
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 3),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 3),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 3),
        "max_ms": round(max(seconds) * 1000, 3),
    }


def rate(count: int, seconds: float) -> float:
    """Items per second, rounded for the report."""
    return round(count / seconds, 1) if seconds > 0 else 0.0
