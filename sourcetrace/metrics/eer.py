"""Equal error rate and the STOPA pooling rules, as pure functions on arrays.

EER is the ASVspoof / AASIST `compute_eer` that the STOPA reference uses, exactly:

1. concatenate target then non-target scores (labels 1 then 0);
2. sort by score with a stable sort, so among tied scores targets come first;
3. FRR_k = targets at or below position k / N_target, FAR_k = non-targets above k /
   N_nontarget, with FRR = 0, FAR = 1 prepended at threshold min(score) - 0.001;
4. i = the first index minimising |FRR - FAR|; EER = (FRR_i + FAR_i) / 2, threshold = the
   sorted score at i.

No tie merging, no interpolation. `compute_eer` is that definition written out, kept as the
oracle the tests compare with; `pooled_eers` gives the same numbers for all pooled EERs from
one sort, through `detection.eer` (blocks of tied scores), the one EER implementation the
stages use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .detection import ScoreBlocks, eer

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
    """Pooled EERs {"known"|"unknown": {label: EER}} of the labels given (ATK, and AcousticModel
    and VocoderModel where the corpus has them).

    `known[i]`: row i's ATK is a known attack (see `scenario_masks`). The scores are sorted
    once and every row set read as blocks of tied scores (`detection.eer`, the one EER
    implementation: `compute_eer`'s numbers exactly, targets first among ties)."""
    scores = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    order = np.argsort(scores)  # any order within ties: blocks do not see it
    sorted_scores = scores[order]
    sorted_labels = {name: np.asarray(y, dtype=bool)[order] for name, y in labels.items()}
    masks = scenario_masks(np.asarray(known, dtype=bool)[order], sorted_labels, unknown_filter)
    return {scenario: {name: eer_of(sorted_scores[mask], sorted_labels[name][mask], f"{scenario} scenario, {name}")
                       for name, mask in row_sets.items()} for scenario, row_sets in masks.items()}


def eer_of(sorted_scores: np.ndarray, sorted_labels: np.ndarray, what: str) -> EER:
    """The `EER` of ascending scores and their target flags; ValueError naming `what` when
    the rows lack targets or non-targets."""
    blocks = ScoreBlocks.from_sorted(sorted_scores, sorted_labels)
    n_target, n_nontarget = blocks.totals
    if not (n_target and n_nontarget):
        raise ValueError(f"{what}: EER needs target and non-target scores (got {n_target} targets, "
                         f"{n_nontarget} non-targets)")
    value, threshold = eer(blocks)
    return EER(value, threshold, n_target, n_nontarget)


def format_pooled_csv(results: dict[str, EER]) -> str:
    """The reference file format: header `,EER`, one row per label, percent to 2 decimals."""
    return ",EER\n" + "".join(f"{name},{results[name].percent!r}\n" for name in results)
