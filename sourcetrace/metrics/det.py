"""DET curves: the points to draw, at most a fixed number per curve."""
from __future__ import annotations

import numpy as np

MAX_POINTS = 2000
CANDIDATES = 200_000  # longer curves are first thinned to every k-th point (k = n // this)
_EDGE = 1e-6  # probabilities are clipped here only to measure distances between points


def decimate(p_miss: np.ndarray, p_fa: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices (ascending, first and last included) of at most `max_points` points of a curve.

    All points are kept when there are few enough. Otherwise the points are taken at equal
    steps of length along the curve as it is drawn on normal-deviate axes (measured with
    the logit, proportional to the normal deviate within a few percent), so the steep tails
    and the EER region keep their shape whatever the number of scores.
    """
    n = p_miss.size
    if n <= max_points:
        return np.arange(n)
    if max_points < 2:
        raise ValueError("max_points must be at least 2")

    def logit(p):
        p = np.clip(p, _EDGE, 1 - _EDGE)
        return np.log(p) - np.log1p(-p)

    candidates = np.arange(n) if n <= CANDIDATES else np.append(np.arange(0, n - 1, n // CANDIDATES), n - 1)
    steps = np.hypot(np.diff(logit(p_miss[candidates])), np.diff(logit(p_fa[candidates])))
    length = np.concatenate([[0.0], np.cumsum(steps)])
    at = np.searchsorted(length, np.linspace(0.0, length[-1], max_points)[:-1])
    return np.unique(np.concatenate([candidates[at], [n - 1]]))
