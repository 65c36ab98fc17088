"""Stage 5 beyond the reference files: `metrics.csv`, DET figures and their points.

For each scenario (known, unknown), label and group of fingerprints (all of them pooled, then
each enrollment condition and size), the reference EER with its threshold, ROCCH-EER, min
Cllr and min DCF at each operating point; for the pooled rows also a bootstrap confidence
interval of the EER and a DET curve. The rows are sorted by score once; every row set is a
subsequence of that order (see `metrics.detection`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import metrics
from .figures import plot_det
from .metrics.bootstrap import bootstrap_eers, fingerprint_weights, percentile_interval
from .metrics.detection import ScoreBlocks, block_starts, decimate, eer, min_cllr, min_dcf, rocch_eer
from .metrics.groups import condition_groups
from .store import write_text

# output label -> trial protocol column; all but ATK only when the trial files have them
LABEL_COLUMNS = {**metrics.LABELS, "AmArchit": "IsTargetAmArchit", "VmArchit": "IsTargetVmArchit"}
SCENARIOS = ("known", "unknown")
COLUMNS = ["scenario", "label", "condition", "enroll_size", "n_target", "n_nontarget", "eer",
           "eer_threshold", "eer_ci_low", "eer_ci_high", "rocch_eer", "min_cllr"]


@dataclass(frozen=True)
class EvaluationRows:
    """The pooled trial rows of stage 5, one entry per row.

    `scores` float64; `is_known` whether the row's ATK is a known attack; `labels` target
    flags per output label (key `ATK`, and those of `AcousticModel`, `VocoderModel`, `AmArchit`,
    `VmArchit` the trial files have); `fingerprint` integer codes into `fingerprint_names`.
    """
    scores: np.ndarray
    is_known: np.ndarray
    labels: dict[str, np.ndarray]
    fingerprint: np.ndarray
    fingerprint_names: list[str]

    def __post_init__(self):
        n = len(self.scores)
        missing = [name for name in ("ATK",) if name not in self.labels]
        unknown = [name for name in self.labels if name not in LABEL_COLUMNS]
        if missing or unknown:
            raise ValueError(f"labels must be among {', '.join(LABEL_COLUMNS)} (ATK required); "
                             f"missing {missing}, unexpected {unknown}")
        arrays = {"is_known": self.is_known, "fingerprint": self.fingerprint,
                  **{f"labels[{k}]": v for k, v in self.labels.items()}}
        wrong = [f"{name} ({len(a)})" for name, a in arrays.items() if len(a) != n]
        if wrong:
            raise ValueError(f"every array needs one entry per score ({n}): {', '.join(wrong)}")
        if n and (self.fingerprint.min() < 0 or self.fingerprint.max() >= len(self.fingerprint_names)):
            raise ValueError("fingerprint codes must index fingerprint_names")
        if not np.isfinite(self.scores).all():
            raise ValueError("scores must be finite")


def check_options(dcf_operating_points, bootstrap_resamples, bootstrap_seed) -> list[tuple[float, float, float]]:
    """Validated operating points as (p_target, c_miss, c_fa); ValueError naming the bad value."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    points = []
    for point in dcf_operating_points:
        if not (isinstance(point, (list, tuple)) and len(point) == 3 and all(number(x) for x in point)
                and 0 < point[0] < 1 and point[1] > 0 and point[2] > 0):
            raise ValueError(f"dcf_operating_points: {point!r} is not [p_target, c_miss, c_fa] "
                             "with 0 < p_target < 1 and positive costs")
        points.append(tuple(float(x) for x in point))
    if len(set(map(dcf_column, points))) != len(points):
        raise ValueError(f"dcf_operating_points: repeated point in {dcf_operating_points!r}")
    if not (isinstance(bootstrap_resamples, int) and not isinstance(bootstrap_resamples, bool)
            and bootstrap_resamples >= 0):
        raise ValueError(f"bootstrap_resamples must be an integer >= 0 (0: no intervals), not {bootstrap_resamples!r}")
    if not (isinstance(bootstrap_seed, int) and not isinstance(bootstrap_seed, bool) and bootstrap_seed >= 0):
        raise ValueError(f"bootstrap_seed must be an integer >= 0, not {bootstrap_seed!r}")
    return points


def dcf_column(point: tuple[float, float, float]) -> str:
    """Column name of an operating point, e.g. `min_dcf_0.01_1_1`."""
    return "min_dcf_" + "_".join(f"{x:g}" for x in point)


def _cells(blocks: ScoreBlocks, points) -> tuple[dict, metrics.EER | None]:
    """Counts, and every metric when the rows have targets and non-targets; and their EER."""
    n_target, n_nontarget = blocks.totals
    cells = {"n_target": n_target, "n_nontarget": n_nontarget}
    if not (n_target and n_nontarget):
        return cells, None
    value, threshold = eer(blocks)
    cells.update({"eer": 100 * value, "eer_threshold": threshold, "rocch_eer": 100 * rocch_eer(blocks),
                  "min_cllr": min_cllr(blocks), **{dcf_column(p): min_dcf(blocks, *p) for p in points}})
    return cells, metrics.EER(value, threshold, n_target, n_nontarget)


class Evaluation(NamedTuple):
    """`table`: metrics.csv rows (dicts by column; absent cells empty); `curves`: per scenario
    (label, p_miss, p_fa, eer) of the pooled rows, decimated to at most 2000 points;
    `pooled`: per scenario and label the pooled `EER` (Table 4's numbers), absent where the
    pooled rows lack targets or non-targets."""
    table: list[dict]
    curves: dict[str, list]
    pooled: dict[str, dict[str, metrics.EER]]


def _bootstrap_weights(fingerprint: np.ndarray, n_fp: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_fp) multiplicities; every fingerprint with rows is drawn, the same
    draws serving every scenario and label."""
    present = np.flatnonzero(np.bincount(fingerprint, minlength=n_fp) > 0)
    weights = np.zeros((resamples, n_fp), dtype=np.int64)
    if resamples and present.size:
        weights[:, present] = fingerprint_weights(present.size, resamples, seed)
    return weights


def _condition_rows(fingerprint: np.ndarray, names: list[str]) -> list[tuple[str, str, np.ndarray]]:
    """(condition, size, positions of the group's rows in ascending order) per condition group
    that has rows, from one stable sort of the rows' group numbers."""
    conditions = condition_groups(names)
    group_of = np.full(len(names), len(conditions), dtype=np.int16)
    for g, (_, _, codes) in enumerate(conditions):
        group_of[codes] = g
    group_of_row = group_of[fingerprint]
    by_group = np.argsort(group_of_row, kind="stable").astype(np.int32)
    bounds = np.searchsorted(group_of_row[by_group], np.arange(len(conditions) + 1))
    return [(c, n, by_group[lo:hi]) for (c, n, _), lo, hi in zip(conditions, bounds[:-1], bounds[1:]) if hi > lo]


def evaluate(rows: EvaluationRows, *, unknown_filter: str, dcf_operating_points, bootstrap_resamples: int,
             bootstrap_seed: int) -> Evaluation:
    """Every metric of every scenario, label and condition group, from one sort of the rows."""
    points = check_options(dcf_operating_points, bootstrap_resamples, bootstrap_seed)
    names = [name for name in LABEL_COLUMNS if name in rows.labels]
    # Every metric depends on a row set only through its blocks of tied scores, never on the
    # order within a block, so the fastest (unstable) sort serves: one for everything.
    order = np.argsort(rows.scores)
    scores = np.asarray(rows.scores, dtype=np.float64)[order]
    fingerprint = rows.fingerprint[order].astype(np.int32)
    labels = {name: np.asarray(rows.labels[name], dtype=bool)[order] for name in names}
    masks = metrics.scenario_masks(np.asarray(rows.is_known, dtype=bool)[order], labels, unknown_filter)
    del order
    weights = _bootstrap_weights(fingerprint, len(rows.fingerprint_names), bootstrap_resamples, bootstrap_seed)
    groups = [("pooled", "pooled", None)] + _condition_rows(fingerprint, rows.fingerprint_names)
    found: dict[tuple, dict] = {}
    curves: dict[str, list] = {scenario: [] for scenario in SCENARIOS}
    pooled: dict[str, dict[str, metrics.EER]] = {scenario: {} for scenario in SCENARIOS}
    for scenario in SCENARIOS:
        by_rows: dict[int, list[str]] = {}  # labels sharing a row set share its selections
        for name in names:
            by_rows.setdefault(id(masks[scenario][name]), []).append(name)
        for shared in by_rows.values():
            mask = masks[scenario][shared[0]]
            for g, (condition, size, group_rows) in enumerate(groups):
                selected = np.flatnonzero(mask) if group_rows is None else group_rows[mask[group_rows]]
                group_scores = scores[selected]
                starts = block_starts(group_scores)
                for name in shared:
                    y = labels[name][selected]
                    blocks = ScoreBlocks.from_sorted(group_scores, y, starts)
                    cells, found_eer = _cells(blocks, points)
                    row = {"scenario": scenario, "label": name, "condition": condition, "enroll_size": size, **cells}
                    if group_rows is None and found_eer:  # pooled: Table 4's EER, interval and DET curve
                        pooled[scenario][name] = found_eer
                        interval = percentile_interval(bootstrap_eers(y, fingerprint[selected], starts, weights))
                        if interval:
                            row["eer_ci_low"], row["eer_ci_high"] = (100 * x for x in interval)
                        p_miss, p_fa = blocks.det
                        kept = decimate(p_miss, p_fa)
                        curves[scenario].append((name, p_miss[kept], p_fa[kept], row["eer"] / 100))
                    found[(scenario, name, g)] = row
    table = [found[(s, name, g)] for s in SCENARIOS for name in names for g in range(len(groups))]
    return Evaluation(table, curves, pooled)


def format_metrics_csv(table: list[dict], points) -> str:
    """Header and rows in column order; floats as Python writes them (shortest exact form)."""
    columns = COLUMNS + [dcf_column(tuple(float(x) for x in p)) for p in points]
    return "".join(",".join("" if row.get(c) is None else str(row[c]) for c in columns) + "\n"
                   for row in [dict(zip(columns, columns)), *table])


def write_evaluation(out_dir: Path, rows: EvaluationRows, *, unknown_filter: str,
                     dcf_operating_points: list[list[float]], bootstrap_resamples: int,
                     bootstrap_seed: int) -> list[Path]:
    """Write `metrics.csv`, `det_known.png`, `det_unknown.png` and `det_points.csv` into
    `out_dir`, each atomically; returns their paths. See `evaluate` and README "Evaluation
    beyond Table 4". ValueError for bad options or inconsistent rows."""
    result = evaluate(rows, unknown_filter=unknown_filter, dcf_operating_points=dcf_operating_points,
                      bootstrap_resamples=bootstrap_resamples, bootstrap_seed=bootstrap_seed)
    return write_evaluated(out_dir, result, unknown_filter, dcf_operating_points)


def write_evaluated(out_dir: Path, result: Evaluation, unknown_filter: str,
                    dcf_operating_points: list[list[float]]) -> list[Path]:
    """The files of `write_evaluation` from an `evaluate` result."""
    out_dir = Path(out_dir)
    table, curves = result.table, result.curves
    paths = [out_dir / "metrics.csv", out_dir / "det_known.png", out_dir / "det_unknown.png",
             out_dir / "det_points.csv"]
    write_text(paths[0], format_metrics_csv(table, dcf_operating_points))
    for scenario, path in zip(SCENARIOS, paths[1:3]):
        title = "known attacks, pooled" if scenario == "known" else f"unknown attacks, pooled ({unknown_filter} filter)"
        plot_det(path, title, curves[scenario])
    lines = ["scenario,label,p_miss,p_fa\n"]
    for scenario in SCENARIOS:
        for name, p_miss, p_fa, _ in curves[scenario]:
            lines.extend(f"{scenario},{name},{m!r},{f!r}\n" for m, f in zip(p_miss.tolist(), p_fa.tolist()))
    write_text(paths[3], "".join(lines))
    return paths
