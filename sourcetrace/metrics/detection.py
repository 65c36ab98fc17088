"""EER, min DCF, min Cllr and ROCCH-EER from *score blocks*, exact and in one pass each.

A `ScoreBlocks` is the distinct scores in ascending order with the counts of target and
non-target scores below each (tied scores form one block). Every metric here depends on the
scores only through their order, so a block view of once-sorted scores serves every label,
row set and metric, and 30 million scores need a handful of vectorised passes.

Thresholds t run over every distinct score and beyond the largest. At threshold t,
P_miss(t) = share of targets scoring below t, P_fa(t) = share of non-targets scoring at or
above t; block boundary k (k = 0..B, before block k) is the threshold `scores[k]` (k = B:
beyond the largest), so P_miss = 0, P_fa = 1 at k = 0 and P_miss = 1, P_fa = 0 at k = B.

scikit-learn is not used (nor a dependency): `roc_curve(drop_intermediate=False)` gives
these points but sorts again for each of the ~110 row sets of stage 5, where one sort serves
them all here; `IsotonicRegression` pools ties as here but fits in floating point, and
neither gives min Cllr, ROCCH-EER or the reference EER's tie order. The PAV below is exact
integer arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class ScoreBlocks:
    """Distinct scores (ascending, float64) and the targets / non-targets below each block
    boundary k = 0..B (int64 arrays of length B + 1, starting at 0)."""
    scores: np.ndarray
    targets_below: np.ndarray
    nontargets_below: np.ndarray

    @property
    def totals(self) -> tuple[int, int]:
        return int(self.targets_below[-1]), int(self.nontargets_below[-1])

    @property
    def n_target(self) -> np.ndarray:
        return np.diff(self.targets_below)

    @property
    def n_nontarget(self) -> np.ndarray:
        return np.diff(self.nontargets_below)

    @cached_property
    def det(self) -> tuple[np.ndarray, np.ndarray]:
        """`det_points` of these blocks, computed once (every DCF point and the DET curve use it)."""
        return det_points(self)

    @cached_property
    def pav(self) -> tuple[np.ndarray, np.ndarray]:
        """`pav_blocks` of these blocks, computed once (min Cllr and ROCCH-EER share it)."""
        return pav_blocks(self)

    @classmethod
    def from_sorted(cls, sorted_scores: np.ndarray, sorted_labels: np.ndarray,
                    starts: np.ndarray | None = None) -> ScoreBlocks:
        """Blocks of ascending scores and their labels; `starts` = `block_starts(sorted_scores)`."""
        if starts is None:
            starts = block_starts(sorted_scores)
        rows_below = np.append(starts, sorted_scores.size)
        targets_upto = np.concatenate([[0], np.cumsum(sorted_labels, dtype=np.int64)])
        targets_below = targets_upto[rows_below]
        return cls(sorted_scores[starts], targets_below, rows_below - targets_below)

    @classmethod
    def from_scores(cls, target_scores, nontarget_scores) -> ScoreBlocks:
        """Blocks of two score lists; both must be non-empty and finite."""
        target = np.asarray(target_scores, dtype=np.float64).ravel()
        nontarget = np.asarray(nontarget_scores, dtype=np.float64).ravel()
        if target.size == 0 or nontarget.size == 0:
            raise ValueError(f"needs target and non-target scores (got {target.size} targets, "
                             f"{nontarget.size} non-targets)")
        scores = np.concatenate([target, nontarget])
        if not np.isfinite(scores).all():
            raise ValueError("scores must be finite")
        order = np.argsort(scores, kind="stable")
        labels = np.concatenate([np.ones(target.size, bool), np.zeros(nontarget.size, bool)])
        return cls.from_sorted(scores[order], labels[order])


def block_starts(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the first score of every run of equal scores in an ascending array."""
    if sorted_scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1]]))


def det_points(blocks: ScoreBlocks) -> tuple[np.ndarray, np.ndarray]:
    """(P_miss, P_fa) at every block boundary k = 0..B (see module docstring)."""
    n_target, n_nontarget = blocks.totals
    return blocks.targets_below / n_target, (n_nontarget - blocks.nontargets_below) / n_nontarget


def crossing_eer(targets_upto: np.ndarray, nontargets_upto: np.ndarray, totals: tuple[int, int],
                 start: tuple[int, int] = (0, 0)) -> tuple[float, int]:
    """The reference EER (`compute_eer`) of scores in blocks, with multiplicities allowed.

    The reference walks the stably sorted scores position by position, targets first among
    tied scores; FRR - FAR strictly increases along that walk, so its first minimum of
    |FRR - FAR| is at the first position c with FRR >= FAR or at the one before it. c is
    found with exact integer arithmetic (first the block, then the position within the
    block's run of targets or of non-targets); FRR and FAR at both candidates are then the
    reference's float64 values.

    `targets_upto[b]`, `nontargets_upto[b]`: targets / non-targets at or before block b
    (non-decreasing integers, e.g. bootstrap-weighted counts), counting a prefix `start` =
    (targets, non-targets) before the first block at which FRR < FAR; `totals` =
    (N_target, N_nontarget) of the whole walk. Returns (eer, index of the block holding the
    chosen position; -1 if it lies before the first block, i.e. the prepended point FRR = 0,
    FAR = 1 when `start` is (0, 0)).
    """
    total_t, total_n = totals
    # FRR >= FAR  <=>  targets * N_n >= (N_n - nontargets) * N_t, increasing along the walk
    b = int(np.searchsorted(targets_upto * total_n + nontargets_upto * total_t, total_n * total_t))
    block_t = int(targets_upto[b]) - (int(targets_upto[b - 1]) if b else start[0])
    run_start_n = int(nontargets_upto[b - 1]) if b else start[1]
    run_start_t = int(targets_upto[b]) - block_t
    if int(targets_upto[b]) * total_n >= (total_n - run_start_n) * total_t:  # within the targets
        j = max(1, -(-(total_n - run_start_n) * total_t // total_n) - run_start_t)
        crossing, before = (run_start_t + j, run_start_n), (run_start_t + j - 1, run_start_n)
        before_in_block = j > 1
    else:  # within the non-targets: FAR falls at fixed FRR
        t = int(targets_upto[b])
        j = max(1, -(-((total_n - run_start_n) * total_t - t * total_n) // total_t))
        crossing, before = (t, run_start_n + j), (t, run_start_n + j - 1)
        before_in_block = j > 1 or block_t > 0
    frr = np.array([before[0], crossing[0]]) / total_t
    far = (total_n - np.array([before[1], crossing[1]])) / total_n
    i = int(np.argmin(np.abs(frr - far)))  # the first of equal minima: `before`
    eer = float(np.mean((frr[i], far[i])))
    if i == 1 or before_in_block:
        return eer, b
    if b == 0:
        return eer, -1
    # `before` is the last position of the last non-empty block before b
    rows_upto = targets_upto[:b] + nontargets_upto[:b]
    if rows_upto[-1] == start[0] + start[1]:
        return eer, -1
    return eer, int(np.searchsorted(rows_upto, rows_upto[-1]))


def eer(blocks: ScoreBlocks) -> tuple[float, float]:
    """The reference EER and threshold (as `compute_eer`: no interpolation, targets first
    among ties, threshold = the score at the chosen position, min score - 0.001 for the
    prepended point FRR = 0, FAR = 1)."""
    value, block = crossing_eer(blocks.targets_below[1:], blocks.nontargets_below[1:], blocks.totals)
    return value, float(blocks.scores[block] if block >= 0 else blocks.scores[0] - 0.001)


def min_dcf(blocks: ScoreBlocks, p_target: float, c_miss: float, c_fa: float) -> float:
    """min over thresholds t of (c_miss p P_miss(t) + c_fa (1-p) P_fa(t)) / min(c_miss p, c_fa (1-p)),
    t over every distinct score and beyond the largest (ties never split)."""
    p_miss, p_fa = blocks.det
    dcf = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target)))


def pav_blocks(blocks: ScoreBlocks) -> tuple[np.ndarray, np.ndarray]:
    """Pool-adjacent-violators on the labels sorted by score, tied scores as one block.

    Returns (targets, non-targets) of each pooled block, ascending. The PAV fit is the slope
    of the greatest convex minorant of the cumulative sum diagram (W_k, S_k) = (rows, targets
    below boundary k); its vertices are found by removing, round after round, every point
    that is not strictly below the segment joining its current neighbours (such a point is
    never a vertex), with integer cross products, so the result is exact. Collinear runs
    are pooled too; that changes no calibrated score. Blocks must be non-empty.
    """
    w = blocks.targets_below + blocks.nontargets_below
    s = blocks.targets_below
    # first round from the blocks themselves (no gathers): boundary k between blocks k-1 and
    # k is strictly convex iff block k's target share is larger: t[k-1] n[k] < t[k] n[k-1]
    t, n = blocks.n_target, blocks.n_nontarget
    corner = np.flatnonzero(t[:-1] * n[1:] < t[1:] * n[:-1]) + 1
    keep = np.concatenate([[0], corner, [w.size - 1]])
    while keep.size > 2:
        a, b, c = keep[:-2], keep[1:-1], keep[2:]
        convex = (w[b] - w[a]) * (s[c] - s[a]) - (s[b] - s[a]) * (w[c] - w[a]) > 0
        if convex.all():
            break
        keep = np.concatenate([keep[:1], b[convex], keep[-1:]])
    pooled_t = np.diff(s[keep])
    return pooled_t, np.diff(w[keep]) - pooled_t


def min_cllr(blocks: ScoreBlocks) -> float:
    """Cllr (bits) after the optimal monotonic calibration (PAV, `pav_blocks`).

    A pooled block with t targets and n non-targets has posterior t / (t + n) and LLR
    log(t / n) - log(N_target / N_nontarget); Cllr = (mean over targets of log2(1 + e^-llr)
    + mean over non-targets of log2(1 + e^llr)) / 2. The blocks at the ends with LLR -inf
    (no targets) or +inf (no non-targets) cost 0, as in BOSARIS and PYLLR.
    """
    n_target, n_nontarget = blocks.totals
    t, n = (x.astype(np.float64) for x in blocks.pav)
    with np.errstate(divide="ignore", invalid="ignore"):
        # e^-llr = (n / N_nontarget) / (t / N_target)
        miss_cost = np.where(t > 0, t * np.log2(1 + (n * n_target) / (t * n_nontarget)), 0.0)
        fa_cost = np.where(n > 0, n * np.log2(1 + (t * n_nontarget) / (n * n_target)), 0.0)
    return float((miss_cost.sum() / n_target + fa_cost.sum() / n_nontarget) / 2)


def rocch_eer(blocks: ScoreBlocks) -> float:
    """EER of the ROC convex hull (BOSARIS `rocch2eer`): the hull's vertices are the PAV
    block boundaries; for each hull segment that is neither horizontal nor vertical, the
    point where its line meets P_miss = P_fa; the EER is the largest of these (0 if none),
    which by convexity is where the hull itself crosses P_miss = P_fa."""
    n_target, n_nontarget = blocks.totals
    t, n = blocks.pav
    p_miss = np.concatenate([[0], np.cumsum(t)]) / n_target
    p_fa = (n_nontarget - np.concatenate([[0], np.cumsum(n)])) / n_nontarget
    x0, y0, dx, dy = p_fa[:-1], p_miss[:-1], np.diff(p_fa), np.diff(p_miss)
    sloped = (dx != 0) & (dy != 0)
    # the line (x0 + u dx, y0 + u dy) meets x = y at u = (y0 - x0) / (dx - dy)
    x0, y0, dx, dy = x0[sloped], y0[sloped], dx[sloped], dy[sloped]
    crossings = x0 + (y0 - x0) / (dx - dy) * dx
    return float(crossings.max(initial=0.0))
