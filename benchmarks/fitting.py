"""A ridge logistic regression for the scripts that fit small decisions.

The end-of-turn schedule, the words' probe and the wake check are each a handful
of weights fitted on a few thousand rows, so Newton's method on standardised
features converges in a few steps and needs nothing beyond numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def fit_logistic(
    x: FloatArray, y: FloatArray, *, ridge: float, weight: FloatArray | None = None
) -> tuple[FloatArray, float]:
    """Weights and bias, in the features' own units, of P(y) = sigmoid(x @ w + b).

    The ridge applies to the standardised weights (not the bias), so one value
    suits features of any scale; ``weight`` weighs each row (all 1 by default).
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    design = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    rows = np.ones(len(x)) if weight is None else weight
    beta = np.zeros(design.shape[1])
    penalty = ridge * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0
    for _ in range(100):
        p = 1 / (1 + np.exp(-np.clip(design @ beta, -60, 60)))
        gradient = design.T @ (rows * (p - y)) + penalty @ beta
        hessian = design.T @ (design * (rows * p * (1 - p))[:, None]) + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-9:
            break
    weights = beta[:-1] / scale
    return weights, float(beta[-1] - np.sum(weights * mean))
