"""Equal error rate and the STOPA pooling rules, as pure functions on arrays.

EER is the ASVspoof / AASIST `compute_eer` that the STOPA reference uses, exactly:

1. concatenate target then non-target scores (labels 1 then 0);
2. sort by score with a stable sort, so among tied scores targets come first;
3. FRR_k = targets at or below position k / N_target, FAR_k = non-targets above k /
   N_nontarget, with FRR = 0, FAR = 1 prepended at threshold min(score) - 0.001;
4. i = the first index minimising |FRR - FAR|; EER = (FRR_i + FAR_i) / 2, threshold = the
   sorted score at i.

No tie merging, no interpolation. `compute_eer` is that definition written out;
`eer_for_labels` computes the same numbers for several labelings of one score set with a
single sort (tie groups are rearranged targets-first per labeling), which is what stage 5
uses at STOPA scale.
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
    return _eer_from_sorted(scores[order], labels[order], target.size, nontarget.size)


def _eer_from_sorted(sorted_scores: np.ndarray, sorted_labels: np.ndarray, n_target: int,
                     n_nontarget: int) -> tuple[float, float]:
    targets_below = np.cumsum(sorted_labels)
    nontargets_above = n_nontarget - (np.arange(1, sorted_labels.size + 1) - targets_below)
    frr = np.concatenate([[0.0], targets_below / n_target])
    far = np.concatenate([[1.0], nontargets_above / n_nontarget])
    thresholds = np.concatenate([[sorted_scores[0] - 0.001], sorted_scores])
    i = int(np.argmin(np.abs(frr - far)))
    return float(np.mean((frr[i], far[i]))), float(thresholds[i])


def eer_for_labels(scores: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, EER]:
    """EER of one score set under several boolean labelings, one sort for all.

    Equal, number for number, to `compute_eer(scores[y], scores[~y])` for each labeling y.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    # tie groups of the sorted scores: [starts[g], starts[g + 1])
    starts = np.flatnonzero(np.concatenate([[True], sorted_scores[1:] != sorted_scores[:-1]]))
    sizes = np.diff(np.append(starts, scores.size))
    offset_in_group = np.arange(scores.size) - np.repeat(starts, sizes)
    results = {}
    for name, y in labels.items():
        y = np.asarray(y, dtype=bool)
        n_target = int(y.sum())
        _check(scores[y], scores[~y])
        targets_in_group = np.add.reduceat(y[order].astype(np.int64), starts)
        # the stable sort of [targets, non-targets] puts a group's targets first
        sorted_labels = (offset_in_group < np.repeat(targets_in_group, sizes)).astype(np.float64)
        eer, threshold = _eer_from_sorted(sorted_scores, sorted_labels, n_target, scores.size - n_target)
        results[name] = EER(eer, threshold, n_target, scores.size - n_target)
    return results


def scenario_masks(attacks: np.ndarray, labels: dict[str, np.ndarray], known_attacks: list[str],
                   unknown_filter: str = "reference") -> dict[str, dict[str, np.ndarray]]:
    """Row sets of the two scenarios, per label: {"known": {label: mask}, "unknown": {...}}.

    Known: rows whose ATK is a known attack. Unknown, `reference` (the STOPA scripts): rows
    whose ATK is not known or whose IsTargetATK is true, the same rows for every label.
    Unknown, `per_label` (later work of the same group): ATK not known or *that* label true.
    """
    known = np.isin(attacks, known_attacks)
    masks = {"known": {name: known for name in labels}}
    if unknown_filter == "reference":
        rows = ~known | labels["ATK"]
        masks["unknown"] = {name: rows for name in labels}
    elif unknown_filter == "per_label":
        masks["unknown"] = {name: ~known | y for name, y in labels.items()}
    else:
        raise ValueError(f"unknown_filter must be 'reference' or 'per_label', not {unknown_filter!r}")
    return masks


def pooled_eers(scores: np.ndarray, attacks: np.ndarray, labels: dict[str, np.ndarray],
                known_attacks: list[str], unknown_filter: str = "reference") -> dict[str, dict[str, EER]]:
    """Pooled EERs {"known"|"unknown": {"ATK"|"AcousticModel"|"VocoderModel": EER}}."""
    results: dict[str, dict[str, EER]] = {}
    for scenario, masks in scenario_masks(attacks, labels, known_attacks, unknown_filter).items():
        results[scenario] = {}
        # labels sharing a row set share one sort
        by_rows: dict[int, list[str]] = {}
        for name, mask in masks.items():
            by_rows.setdefault(id(mask), []).append(name)
        for names in by_rows.values():
            mask = masks[names[0]]
            try:
                found = eer_for_labels(scores[mask], {n: labels[n][mask] for n in names})
            except ValueError as exc:
                raise ValueError(f"{scenario} scenario, {', '.join(names)}: {exc}") from None
            results[scenario].update(found)
        results[scenario] = {name: results[scenario][name] for name in labels}
    return results


def format_pooled_csv(results: dict[str, EER]) -> str:
    """The reference file format: header `,EER`, one row per label, percent to 2 decimals."""
    return ",EER\n" + "".join(f"{name},{results[name].percent!r}\n" for name in results)
