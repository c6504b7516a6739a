"""The percentile every benchmark reports (p50, p95, ...).

It is :func:`voiceterm.stats.percentile`, the very function the TUI's timeline summary
uses, so a p95 here is the same statistic as a p95 there and in every other report:
linear interpolation between the closest ranks (numpy's default), ``q`` on the 0-100
scale, ``nan`` for no values. voiceterm may not import from ``benchmarks``, so the one
implementation lives in voiceterm and is named here for the benchmarks.
"""

from __future__ import annotations

from voiceterm.stats import percentile

__all__ = ["percentile"]
