"""The one percentile the timeline summary and every benchmark report.

A p95 from one report must be the same statistic as a p95 from another, so there is
exactly one implementation; ``benchmarks.stats`` re-exports it for the benchmarks
(voiceterm imports nothing from ``benchmarks``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    """The ``q``-th percentile of ``values``, ``q`` on the 0-100 scale (95 for p95).

    Method: linear interpolation between the closest ranks, numpy's default
    (``numpy.percentile(values, q, method="linear")``, Hyndman and Fan's type 7): the
    sorted values sit at positions ``0 .. n-1``, ``q`` maps to position
    ``(n - 1) * q / 100``, and a position between two values takes the straight line
    between them. So p50 is the median, p0 the minimum and p100 the maximum, and the
    result moves smoothly with the data instead of jumping from one sample to the next
    as a nearest-rank percentile does.

    Empty ``values`` give ``nan`` (a report shows a figure nothing measured as n/a
    rather than stopping); callers that want ``None`` check for emptiness first.
    Raises ``ValueError`` for ``q`` outside 0-100 (a share such as 0.95 must be
    written as 95).
    """
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q must be within 0-100, not {q}")
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (position - low))
