"""Percentiles and summaries of latency samples."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of already sorted values, by linear interpolation."""
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def summarize_ms(samples_s: Sequence[float]) -> dict[str, Any]:
    """Count, mean and percentiles in milliseconds of samples given in seconds."""
    values = sorted(s * 1000.0 for s in samples_s)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean_ms": statistics.fmean(values),
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "max_ms": values[-1],
        "min_ms": values[0],
    }


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (NaN when there are none): the figure of repeated runs."""
    usable = [v for v in values if not math.isnan(v)]
    return statistics.median(usable) if usable else math.nan
