"""Bootstrap of the reference EER over fingerprints, without re-sorting per resample.

Resampling fingerprints with replacement and keeping all their rows gives a multiset in
which fingerprint f's rows appear w_f times. Its EER (`compute_eer` of the resampled target
and non-target lists) depends only on the order of the scores, which resampling does not
change: so the rows are sorted once and each resample is a weighted walk over that order.
The walk's crossing is located on a coarse grid of block boundaries (one matrix product for
all resamples) and then resolved exactly inside one grid cell (`crossing_eer`).
"""
from __future__ import annotations

import numpy as np

from .detection import crossing_eer

GRID_ROWS = 4096  # rows per grid cell: the refinement's work per resample


def fingerprint_weights(n_fingerprints: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_fingerprints) multiplicities: each row draws `n_fingerprints`
    fingerprints uniformly with replacement (`numpy.random.default_rng(seed)`)."""
    draws = np.random.default_rng(seed).integers(0, n_fingerprints, size=(resamples, n_fingerprints))
    weights = np.zeros((resamples, n_fingerprints), dtype=np.int64)
    np.add.at(weights, (np.repeat(np.arange(resamples), n_fingerprints), draws.ravel()), 1)
    return weights


def bootstrap_eers(sorted_labels: np.ndarray, sorted_fingerprints: np.ndarray, starts: np.ndarray,
                   weights: np.ndarray) -> np.ndarray:
    """Reference EER (fraction) of each resample; NaN where it has no target or no non-target.

    `sorted_labels` (bool) and `sorted_fingerprints` (codes 0..F-1) are the rows in stable
    ascending score order, `starts` the first row of every run of tied scores
    (`block_starts`), `weights` (R, F) the fingerprint multiplicities of each resample.
    """
    if weights.shape[0] == 0:
        return np.zeros(0)
    n = sorted_labels.size
    n_fp = weights.shape[1]
    # grid boundaries at block starts, about GRID_ROWS apart, from 0 to n
    at = np.searchsorted(starts, np.arange(0, n, GRID_ROWS))
    grid = np.unique(np.concatenate([[0], starts[at[at < starts.size]], [n]]))
    cell = np.repeat(np.arange(grid.size - 1, dtype=np.int32), np.diff(grid))
    key = cell * np.int32(n_fp) + sorted_fingerprints.astype(np.int32)
    size = (grid.size - 1) * n_fp
    per_cell_t = np.bincount(key[sorted_labels], minlength=size).reshape(-1, n_fp)
    per_cell_n = np.bincount(key, minlength=size).reshape(-1, n_fp) - per_cell_t
    del cell, key
    zero = np.zeros((1, n_fp))
    # weighted counts below each grid boundary, all resamples at once (exact: < 2^53)
    below_t = np.rint(np.concatenate([zero, np.cumsum(per_cell_t, axis=0)]) @ weights.T).astype(np.int64)
    below_n = np.rint(np.concatenate([zero, np.cumsum(per_cell_n, axis=0)]) @ weights.T).astype(np.int64)
    total_t, total_n = below_t[-1], below_n[-1]
    crossed = below_t * total_n >= (total_n - below_n) * total_t  # FRR >= FAR at the boundary
    eers = np.full(weights.shape[0], np.nan)
    for r in np.flatnonzero((total_t > 0) & (total_n > 0)):
        g = int(np.argmax(crossed[:, r]))  # FRR = 0 < FAR = 1 at boundary 0
        lo, hi = grid[g - 1], grid[g]
        local = starts[np.searchsorted(starts, lo):np.searchsorted(starts, hi)] - lo
        row_weight = weights[r][sorted_fingerprints[lo:hi]]
        labels = sorted_labels[lo:hi]
        upto_t = below_t[g - 1, r] + np.cumsum(np.add.reduceat(row_weight * labels, local))
        upto_n = below_n[g - 1, r] + np.cumsum(np.add.reduceat(row_weight * ~labels, local))
        eers[r] = crossing_eer(upto_t, upto_n, (int(total_t[r]), int(total_n[r])),
                               (int(below_t[g - 1, r]), int(below_n[g - 1, r])))[0]
    return eers


def percentile_interval(eers: np.ndarray, level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval (numpy's default linear interpolation) of the finite
    values; None if there are none."""
    finite = eers[np.isfinite(eers)]
    if finite.size == 0:
        return None
    low, high = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)
