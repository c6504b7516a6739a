"""The one percentile: numpy's default method, on the 0-100 scale, nan when empty."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voiceterm.stats import percentile


@pytest.mark.parametrize("q", [0, 5, 25, 50, 90, 95, 99, 100])
def test_matches_numpy_linear(q: float) -> None:
    values = [float(v) for v in np.random.default_rng(26).exponential(0.7, size=37)]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_interpolates_between_ranks_and_ignores_order() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert percentile((x for x in [10.0, 0.0]), 95) == pytest.approx(9.5)
    assert percentile([7.0], 95) == 7.0


def test_empty_is_nan() -> None:
    assert math.isnan(percentile([], 95))


@pytest.mark.parametrize("q", [-1, 100.5])
def test_share_outside_the_scale_is_refused(q: float) -> None:
    with pytest.raises(ValueError, match="0-100"):
        percentile([1.0], q)
