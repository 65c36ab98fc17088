"""Equal error rate and the STOPA pooling rules, as pure functions on arrays.

EER is the ASVspoof / AASIST `compute_eer` that the STOPA reference uses, exactly:

1. concatenate target then non-target scores (labels 1 then 0);
2. sort by score with a stable sort, so among tied scores targets come first;
3. FRR_k = targets at or below position k / N_target, FAR_k = non-targets above k /
   N_nontarget, with FRR = 0, FAR = 1 prepended at threshold min(score) - 0.001;
4. i = the first index minimising |FRR - FAR|; EER = (FRR_i + FAR_i) / 2, threshold = the
   sorted score at i.

No tie merging, no interpolation. `compute_eer` is that definition written out;
`pooled_eers` computes the same numbers for all six pooled EERs with a single sort (tie
groups are rearranged targets-first per labeling), which is what stage 5 uses at STOPA
scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# output row name -> trial protocol column that defines a target
LABELS = {"ATK": "IsTargetATK", "AcousticModel": "IsTargetAcousticModel",
          "VocoderModel": "IsTargetVocoderModel"}


@dataclass(frozen=True)
class EER:
    eer: float  # fraction, not percent
    threshold: float
    n_target: int
    n_nontarget: int

    @property
    def percent(self) -> float:
        """EER in percent rounded to two decimals, as the reference writes it."""
        return float(np.round(self.eer * 100, 2))


def _check(target: np.ndarray, nontarget: np.ndarray) -> None:
    if target.size == 0 or nontarget.size == 0:
        raise ValueError(f"EER needs target and non-target scores (got {target.size} targets, "
                         f"{nontarget.size} non-targets)")
    if not (np.isfinite(target).all() and np.isfinite(nontarget).all()):
        raise ValueError("scores must be finite")


def compute_eer(target_scores, nontarget_scores) -> tuple[float, float]:
    """The reference EER (see module docstring): returns (eer, threshold)."""
    target = np.asarray(target_scores, dtype=np.float64).ravel()
    nontarget = np.asarray(nontarget_scores, dtype=np.float64).ravel()
    _check(target, nontarget)
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(target.size), np.zeros(nontarget.size)])
    order = np.argsort(scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    targets_below = np.cumsum(sorted_labels)
    nontargets_above = nontarget.size - (np.arange(1, scores.size + 1) - targets_below)
    frr = np.concatenate([[0.0], targets_below / target.size])
    far = np.concatenate([[1.0], nontargets_above / nontarget.size])
    thresholds = np.concatenate([[sorted_scores[0] - 0.001], sorted_scores])
    i = int(np.argmin(np.abs(frr - far)))
    return float(np.mean((frr[i], far[i]))), float(thresholds[i])


BLOCK = 1 << 22  # positions evaluated at a time


def _eer_from_sorted(sorted_scores: np.ndarray, sorted_labels: np.ndarray, n_target: int,
                     n_nontarget: int) -> tuple[float, float]:
    """Steps 3-4 of the definition on already sorted scores and labels.

    Evaluated in blocks so that 30 million scores need little memory; every FRR and FAR is
    the same float64 division as in the reference, and the first minimum is kept.
    """
    best, best_i, best_frr, best_far = 1.0, 0, 0.0, 1.0  # the prepended point FRR = 0, FAR = 1
    targets_before = 0
    for start in range(0, sorted_labels.size, BLOCK):
        targets_below = targets_before + np.cumsum(sorted_labels[start:start + BLOCK], dtype=np.int64)
        positions = np.arange(start + 1, start + 1 + targets_below.size, dtype=np.int64)
        frr = targets_below / n_target
        far = (n_nontarget - (positions - targets_below)) / n_nontarget
        diff = np.abs(frr - far)
        k = int(np.argmin(diff))
        if diff[k] < best:
            best, best_i, best_frr, best_far = diff[k], start + k + 1, frr[k], far[k]
        targets_before = int(targets_below[-1])
    threshold = sorted_scores[best_i - 1] if best_i else sorted_scores[0] - 0.001
    return float(np.mean((best_frr, best_far))), float(threshold)


def _eers_of_sorted(sorted_scores: np.ndarray, sorted_labels: dict[str, np.ndarray]) -> dict[str, EER]:
    """EERs of stably score-sorted rows under several labelings (tie groups put targets first)."""
    n = sorted_scores.size
    starts = np.flatnonzero(np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1]]))
    ties = len(starts) < n
    if ties:
        sizes = np.diff(np.append(starts, n))
        offset_in_group = np.arange(n, dtype=np.int64) - np.repeat(starts, sizes)
    results = {}
    for name, y in sorted_labels.items():
        y = np.asarray(y, dtype=bool)
        n_target = int(np.count_nonzero(y))
        if n_target == 0 or n_target == n:
            raise ValueError(f"EER needs target and non-target scores (got {n_target} targets, "
                             f"{n - n_target} non-targets)")
        if ties:  # the stable sort of [targets, non-targets] puts a group's targets first
            y = offset_in_group < np.repeat(np.add.reduceat(y, starts, dtype=np.int64), sizes)
        eer, threshold = _eer_from_sorted(sorted_scores, y, n_target, n - n_target)
        results[name] = EER(eer, threshold, n_target, n - n_target)
    return results


def scenario_masks(known: np.ndarray, labels: dict[str, np.ndarray],
                   unknown_filter: str = "reference") -> dict[str, dict[str, np.ndarray]]:
    """Row sets of the two scenarios, per label: {"known": {label: mask}, "unknown": {...}}.

    `known[i]` tells whether row i's ATK is a known attack. Known scenario: those rows.
    Unknown, `reference` (the STOPA scripts): rows whose ATK is not known or whose
    IsTargetATK is true, the same rows for every label. Unknown, `per_label` (later work of
    the same group): ATK not known or *that* label true.
    """
    known = np.asarray(known, dtype=bool)
    masks = {"known": {name: known for name in labels}}
    if unknown_filter == "reference":
        rows = ~known | labels["ATK"]
        masks["unknown"] = {name: rows for name in labels}
    elif unknown_filter == "per_label":
        masks["unknown"] = {name: ~known | y for name, y in labels.items()}
    else:
        raise ValueError(f"unknown_filter must be 'reference' or 'per_label', not {unknown_filter!r}")
    return masks


def pooled_eers(scores: np.ndarray, known: np.ndarray, labels: dict[str, np.ndarray],
                unknown_filter: str = "reference") -> dict[str, dict[str, EER]]:
    """Pooled EERs {"known"|"unknown": {"ATK"|"AcousticModel"|"VocoderModel": EER}}.

    `known[i]`: row i's ATK is a known attack (see `scenario_masks`). The scores are sorted
    once; each row set takes its rows from that order, which keeps them stably sorted.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    order = np.argsort(scores, kind="stable")
    results: dict[str, dict[str, EER]] = {}
    for scenario, masks in scenario_masks(known, labels, unknown_filter).items():
        found: dict[str, EER] = {}
        by_rows: dict[int, list[str]] = {}  # labels sharing a row set share the work
        for name, mask in masks.items():
            by_rows.setdefault(id(mask), []).append(name)
        for names in by_rows.values():
            rows = order[masks[names[0]][order]]
            try:
                found.update(_eers_of_sorted(scores[rows], {n: labels[n][rows] for n in names}))
            except ValueError as exc:
                raise ValueError(f"{scenario} scenario, {', '.join(names)}: {exc}") from None
        results[scenario] = {name: found[name] for name in labels}
    return results


def format_pooled_csv(results: dict[str, EER]) -> str:
    """The reference file format: header `,EER`, one row per label, percent to 2 decimals."""
    return ",EER\n" + "".join(f"{name},{results[name].percent!r}\n" for name in results)
