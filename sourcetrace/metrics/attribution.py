"""Closed-set attribution and unknown-source detection metrics, pure functions on arrays.

Attribution (labels of any hashable kind, one per trial utterance):

- `accuracy` = share of utterances whose predicted label equals the true one;
- `macro_f1` = the mean over classes of F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), the classes
  being the union of the true and the predicted labels (scikit-learn's `f1_score(...,
  average="macro")`; a class never predicted nor true cannot occur, one never predicted has
  F1 0).

Detection (positives: utterances of known sources, negatives: unknown ones; higher score =
more likely known; a utterance is called known when its score is >= the threshold):

- `auroc` = P(score of a random positive > score of a random negative) + 1/2 P(equal)
  (the Mann-Whitney statistic; ties count one half), from exact integer counts;
- `fpr_at_tpr` = the share of negatives >= t at the largest threshold t that keeps
  TPR(t) >= the given percentage: t is the k-th highest positive score, k = ceil(pct / 100 n_pos)
  (computed in integers);
- the detection EER is the reference `compute_eer` with positives as targets.
"""
from __future__ import annotations

import numpy as np

from .detection import ScoreBlocks, eer


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"one predicted label per true label (got {y_true.shape} and {y_pred.shape})")
    if not y_true.size:
        raise ValueError("no utterances to attribute")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """Share of correct predictions (top-1 accuracy)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.count_nonzero(y_true == y_pred) / y_true.size)


def macro_f1(y_true, y_pred) -> float:
    """Mean F1 over the union of the true and predicted classes (see module docstring)."""
    y_true, y_pred = _pair(y_true, y_pred)
    classes, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    t, p = codes[:y_true.size], codes[y_true.size:]
    n = classes.size
    tp = np.bincount(t[t == p], minlength=n)
    true_count, predicted_count = np.bincount(t, minlength=n), np.bincount(p, minlength=n)
    # 2 TP + FP + FN = (TP + FN) + (TP + FP); never 0 for a class in the union
    return float(np.mean(2 * tp / (true_count + predicted_count)))


def _scores(positive, negative) -> tuple[np.ndarray, np.ndarray]:
    positive = np.asarray(positive, dtype=np.float64).ravel()
    negative = np.asarray(negative, dtype=np.float64).ravel()
    if not positive.size or not negative.size:
        raise ValueError(f"detection needs positive and negative scores (got {positive.size} positives, "
                         f"{negative.size} negatives)")
    if not (np.isfinite(positive).all() and np.isfinite(negative).all()):
        raise ValueError("scores must be finite")
    return positive, negative


def auroc(positive, negative) -> float:
    """Area under the ROC curve, ties counting one half (module docstring)."""
    positive, negative = _scores(positive, negative)
    scores = np.concatenate([positive, negative])
    is_positive = np.concatenate([np.ones(positive.size, bool), np.zeros(negative.size, bool)])
    order = np.argsort(scores, kind="stable")
    scores, is_positive = scores[order], is_positive[order]
    starts = np.flatnonzero(np.concatenate([[True], scores[1:] != scores[:-1]]))
    pos = np.add.reduceat(is_positive.astype(np.int64), starts)
    neg = np.diff(np.append(starts, scores.size)) - pos
    below = np.cumsum(neg) - neg  # negatives strictly below each block of tied scores
    twice_wins = int(np.sum(pos * (2 * below + neg)))  # 2 x (wins + ties / 2), exact integers
    return twice_wins / (2 * positive.size * negative.size)


def fpr_at_tpr(positive, negative, tpr_percent: int = 95) -> tuple[float, float]:
    """(FPR, threshold) at the largest threshold keeping TPR >= `tpr_percent` % (module docstring)."""
    positive, negative = _scores(positive, negative)
    if not (isinstance(tpr_percent, int) and 0 < tpr_percent <= 100):
        raise ValueError(f"tpr_percent must be an integer in 1..100, not {tpr_percent!r}")
    k = -(-tpr_percent * positive.size // 100)  # ceil(pct / 100 n_pos), exact
    threshold = float(np.sort(positive)[positive.size - k])
    return float(np.count_nonzero(negative >= threshold) / negative.size), threshold


def detection_eer(positive, negative) -> tuple[float, float]:
    """(EER fraction, threshold) as the reference `compute_eer` defines them, positives as
    targets (computed by `detection.eer`, the one EER implementation)."""
    positive, negative = _scores(positive, negative)
    return eer(ScoreBlocks.from_scores(positive, negative))
