"""min DCF, PAV, min Cllr and ROCCH-EER (`sourcetrace.metrics.detection`) against scikit-learn.

The hand-worked examples are in tests/test_evaluation_metrics.py; here each metric is
recomputed from an independent implementation on random score sets with and without ties
(scores drawn from a few values, so that targets and non-targets tie within and across
classes), and on the hand-worked examples A and B of that file:

- min DCF: the minimum over `sklearn.metrics.det_curve`'s (P_fa, P_miss) points;
- PAV: `sklearn.isotonic.IsotonicRegression` of the labels on the scores (it pools tied
  scores into one block before fitting, as `pav_blocks` does) gives each score's posterior;
- min Cllr: Cllr of those posteriors as LLRs (logit minus the prior log odds);
- ROCCH-EER: the lower convex hull of `sklearn.metrics.roc_curve`'s points in
  (P_fa, P_miss), built here with a monotone chain in integer counts, and where that
  piecewise linear curve crosses P_miss = P_fa.
"""
import math

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import det_curve, roc_curve

from sourcetrace.metrics.detection import ScoreBlocks, min_cllr, min_dcf, pav_blocks, rocch_eer

OPERATING_POINTS = [(0.01, 1, 1), (0.1, 1, 1), (0.5, 1, 1), (0.05, 10, 1), (0.3, 1, 5)]
A = ([1, 3], [0, 2, 3, 4])  # the hand-worked examples of tests/test_evaluation_metrics.py
B = ([3, 3], [1, 3])


def score_sets():
    """(targets, non-targets): the hand-worked examples, then random sets, tied and not."""
    yield A
    yield B
    rng = np.random.default_rng(23)
    for case in range(120):
        n_t, n_n = int(rng.integers(1, 40)), int(rng.integers(1, 60))
        if case % 3 == 0:  # continuous: no ties
            target, nontarget = rng.normal(1.0, 1.0, n_t), rng.normal(0.0, 1.0, n_n)
        else:  # a few distinct values: ties within and across the classes
            levels = int(rng.integers(2, 8))
            target = rng.integers(0, levels, n_t) / 2 + (case % 2) * rng.integers(0, 2, n_t)
            nontarget = rng.integers(0, levels, n_n) / 2
        yield target, nontarget


def labelled(target, nontarget):
    scores = np.concatenate([np.asarray(target, float), np.asarray(nontarget, float)])
    labels = np.concatenate([np.ones(len(target), int), np.zeros(len(nontarget), int)])
    return scores, labels


def oracle_min_dcf(target, nontarget, p_target, c_miss, c_fa):
    scores, labels = labelled(target, nontarget)
    p_fa, p_miss, _ = det_curve(labels, scores)
    dcf = c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa
    return dcf.min() / min(c_miss * p_target, c_fa * (1 - p_target))


def oracle_posteriors(target, nontarget):
    """Each score's PAV posterior P(target | score), from scikit-learn's isotonic fit."""
    scores, labels = labelled(target, nontarget)
    fit = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0).fit(scores, labels)
    return scores, labels, fit.predict(scores)


def oracle_min_cllr(target, nontarget):
    _, labels, posterior = oracle_posteriors(target, nontarget)
    n_t, n_n = len(target), len(nontarget)
    with np.errstate(divide="ignore"):
        llr = np.log(posterior) - np.log1p(-posterior) - math.log(n_t / n_n)
    # log2(1 + e^-llr) for targets, log2(1 + e^llr) for non-targets; an infinite LLR on the
    # right side costs 0 (a target never has posterior 0, a non-target never 1)
    miss = np.logaddexp(0, -llr[labels == 1]) / math.log(2)
    fa = np.logaddexp(0, llr[labels == 0]) / math.log(2)
    return (miss.mean() + fa.mean()) / 2


def lower_hull(points):
    """Lower convex hull (monotone chain) of integer points sorted by x then y."""
    hull = []
    for p in points:
        while len(hull) >= 2:
            (ax, ay), (bx, by) = hull[-2], hull[-1]
            if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) <= 0:  # b is not below a-p
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def oracle_rocch_eer(target, nontarget):
    scores, labels = labelled(target, nontarget)
    n_t, n_n = len(target), len(nontarget)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    # integer counts: x = false alarms, y = misses; both in units of 1 / (n_t n_n) below
    points = sorted({(int(round(f * n_n)), int(round((1 - t) * n_t))) for f, t in zip(fpr, tpr)})
    hull = lower_hull([(fa * n_t, miss * n_n) for fa, miss in points])  # common denominator n_t n_n
    for (x0, y0), (x1, y1) in zip(hull, hull[1:]):
        if y0 - x0 >= 0 >= y1 - x1:  # P_miss - P_fa changes sign on this segment
            if y0 - x0 == y1 - x1:  # on the diagonal all along (only when both are 0)
                return x0 / (n_t * n_n)
            u = (y0 - x0) / ((y0 - x0) - (y1 - x1))
            return (x0 + u * (x1 - x0)) / (n_t * n_n)
    raise AssertionError("the hull runs from P_fa = 0 to P_fa = 1 and must cross P_miss = P_fa")


@pytest.mark.parametrize("point", OPERATING_POINTS)
def test_min_dcf_is_the_minimum_over_sklearn_det_curve(point):
    for target, nontarget in score_sets():
        ours = min_dcf(ScoreBlocks.from_scores(target, nontarget), *point)
        assert ours == pytest.approx(oracle_min_dcf(target, nontarget, *point), rel=1e-12, abs=1e-12)


def test_min_dcf_by_hand_against_sklearn():
    # example A at p = 0.5: DCF / 0.5 = P_miss + P_fa = 1, .75, 1.25, 1, 1.25, 1 at boundaries
    # 0..5 (P_miss 0, 0, .5, .5, 1, 1; P_fa 1, .75, .75, .5, .25, 0): min .75 at boundary 1
    assert min_dcf(ScoreBlocks.from_scores(*A), 0.5, 1, 1) == 0.75 == oracle_min_dcf(*A, 0.5, 1, 1)


def test_pav_posteriors_equal_sklearn_isotonic_regression():
    for target, nontarget in score_sets():
        blocks = ScoreBlocks.from_scores(target, nontarget)
        pooled_t, pooled_n = pav_blocks(blocks)
        assert pooled_t.sum() == len(target) and pooled_n.sum() == len(nontarget)
        # each distinct score's pooled block: pooled blocks are runs of score blocks
        rows_below_block = blocks.targets_below + blocks.nontargets_below
        pooled_end = np.cumsum(pooled_t + pooled_n)
        which = np.searchsorted(pooled_end, rows_below_block[1:], side="left")
        ours = (pooled_t / (pooled_t + pooled_n))[which]  # posterior of each distinct score
        scores, _, posterior = oracle_posteriors(target, nontarget)
        by_score = dict(zip(scores.tolist(), posterior.tolist()))  # tied scores share one fitted value
        assert [by_score[s] for s in blocks.scores.tolist()] == pytest.approx(ours.tolist(), abs=1e-12)
        # the fit is non-decreasing and pooled blocks differ: a strictly increasing posterior
        assert np.all(np.diff(pooled_t / (pooled_t + pooled_n)) > 0)


def test_min_cllr_equals_cllr_of_sklearn_isotonic_posteriors():
    for target, nontarget in score_sets():
        ours = min_cllr(ScoreBlocks.from_scores(target, nontarget))
        assert ours == pytest.approx(oracle_min_cllr(target, nontarget), rel=1e-9, abs=1e-12)


def test_rocch_eer_equals_the_hull_of_sklearn_roc_curve():
    for target, nontarget in score_sets():
        ours = rocch_eer(ScoreBlocks.from_scores(target, nontarget))
        assert ours == pytest.approx(oracle_rocch_eer(target, nontarget), rel=1e-12, abs=1e-12)


def test_the_oracles_see_what_the_metrics_see():
    # the oracles are not vacuous: perfect separation and an inverted system at the ends
    perfect, inverted = ([2, 3], [0, 1]), ([0, 1], [2, 3])
    assert oracle_rocch_eer(*perfect) == 0 == rocch_eer(ScoreBlocks.from_scores(*perfect))
    assert oracle_rocch_eer(*inverted) == 0.5 == rocch_eer(ScoreBlocks.from_scores(*inverted))
    assert oracle_min_cllr(*perfect) == 0 == min_cllr(ScoreBlocks.from_scores(*perfect))
    assert oracle_min_cllr(*inverted) == pytest.approx(1.0) == min_cllr(ScoreBlocks.from_scores(*inverted))
