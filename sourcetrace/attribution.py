"""Stage 5's closed-set attribution and unknown-source detection.

For every enrollment condition (fingerprints `<ATK>-<co|nc>-<N>` of the known attacks
sharing `co|nc` and `N`) and every trial utterance scored against **every** fingerprint of
that condition (a *trial* below: one (utterance, condition) pair):

- attribution, known-attack trials only: the predicted attack is the fingerprint with the
  highest score (ties: the first fingerprint name in sorted order); the predicted AM and VM
  are that attack's (from the rows' `AcousticModel` / `VocoderModel`, which must name one AM
  and one VM per attack). Top-1 accuracy and macro-F1 per label -> `attribution.csv`
  (`condition,enroll_size,label,n_trials,accuracy,macro_f1`; fractions).
- unknown-source detection: detection score = the highest score over the condition's
  fingerprints; positives known-attack trials, negatives unknown-attack ones. AUROC
  (fraction), FPR at TPR >= 95 % and the reference EER with its threshold (both percent)
  -> `unknown_detection.csv` (`condition,enroll_size,n_known,n_unknown,auroc,fpr_at_tpr95,
  eer,eer_threshold`).

Both files start with the row `pooled,pooled` (every trial of every condition together),
then one row (per label) per condition in `metrics.groups` order. Definitions of the metrics:
`sourcetrace.metrics.attribution`. Utterance-condition pairs scored against only some of the
condition's fingerprints (rows left out upstream) are left out and counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .metrics.attribution import accuracy, auroc, detection_eer, fpr_at_tpr, macro_f1
from .metrics.groups import FINGERPRINT_NAME, condition_groups
from .pooling import fingerprint_codes, known_rows
from .store import write_text
from .store.evaluation_table import LABEL_NAMES, scores_of

ATTRIBUTION_COLUMNS = ["condition", "enroll_size", "label", "n_trials", "accuracy", "macro_f1"]
DETECTION_COLUMNS = ["condition", "enroll_size", "n_known", "n_unknown", "auroc", "fpr_at_tpr95", "eer",
                     "eer_threshold"]
TPR_PERCENT = 95


@dataclass(frozen=True)
class Trials:
    """One entry per (utterance, condition) pair scored against every fingerprint of the condition.

    `group`: index into `groups` ((condition, enroll_size) each); `is_known`: the utterance's
    attack is known; `detection`: its highest score in the condition; `true` / `predicted`:
    per label (`ATK`, and `AcousticModel`, `VocoderModel` when the rows name them) the true
    and the predicted label as codes into `names[label]`; `incomplete`: pairs left out.
    """
    groups: list[tuple[str, str]]
    group: np.ndarray
    is_known: np.ndarray
    detection: np.ndarray
    true: dict[str, np.ndarray]
    predicted: dict[str, np.ndarray]
    names: dict[str, list]
    incomplete: int
    unavailable: str | None = None  # why there are no trials at all, when the rows cannot give any


def _codes(column) -> tuple[np.ndarray, list]:
    encoded = column.unify_dictionaries() if isinstance(column, pa.ChunkedArray) else column
    encoded = encoded.combine_chunks() if isinstance(encoded, pa.ChunkedArray) else encoded
    if not pa.types.is_dictionary(encoded.type):
        encoded = encoded.dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.to_pylist()


def _utterances(table: pa.Table) -> np.ndarray:
    """A code per row naming its utterance: stage 4's `Utterance` column, else (ATK, FileName)."""
    if "Utterance" in table.column_names:
        return table.column("Utterance").to_numpy().astype(np.int64)
    keys = pc.binary_join_element_wise(pc.cast(table.column("ATK"), pa.string()),
                                       pc.cast(table.column("FileName"), pa.string()), "\t")
    return _codes(keys)[0]


def _label_of_attack(table: pa.Table, attack_codes: np.ndarray, attacks: list, column: str) -> dict:
    """{attack: its one AM (or VM) name}; ValueError when an attack's rows name several."""
    codes, names = _codes(table.column(column))
    pairs = np.flatnonzero(np.bincount(attack_codes * len(names) + codes, minlength=len(attacks) * len(names)))
    found: dict = {}
    for pair in pairs:
        found.setdefault(attacks[pair // len(names)], []).append(names[pair % len(names)])
    several = {a: v for a, v in found.items() if len(v) > 1}
    if several:
        a = sorted(several)[0]
        raise ValueError(f"attack {a} has several {column} values ({', '.join(sorted(several[a]))}); "
                         "attribution needs one per attack")
    return {a: v[0] for a, v in found.items()}


def attribution_trials(table: pa.Table, known_attacks: list[str]) -> Trials:
    """The trials of `table`: stage 4's rows of the known attacks' fingerprints (`pool_table`)."""
    fp_codes, fp_names = fingerprint_codes(table)
    present = np.bincount(fp_codes, minlength=len(fp_names)) > 0
    groups = [(c, n, np.array(sorted((k for k in codes if present[k]), key=lambda k: fp_names[k]), dtype=np.int64))
              for c, n, codes in condition_groups(fp_names)]
    groups = [g for g in groups if len(g[2])]
    if not groups or not {"Utterance", "FileName"} & set(table.column_names):
        return Trials([], np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0), {"ATK": np.zeros(0, np.int64)},
                      {"ATK": np.zeros(0, np.int64)}, {"ATK": []}, 0,
                      "no fingerprint named <ATK>-<co|nc>-<N>" if not groups else "no FileName column")
    attack_codes, attacks = _codes(table.column("ATK"))
    utterance = _utterances(table)
    scores = table.column(scores_of(table)).to_numpy().astype(np.float64)
    is_known_row = known_rows(table, known_attacks)
    labels = {"ATK": {a: a for a in attacks}}
    for column in LABEL_NAMES:
        if column in table.column_names:
            labels[column] = _label_of_attack(table, attack_codes, attacks, column)
    n_utt = int(utterance.max()) + 1 if len(utterance) else 0
    attack_of_utt = np.full(n_utt, -1, dtype=np.int64)
    attack_of_utt[utterance] = attack_codes
    known_of_utt = np.zeros(n_utt, dtype=bool)
    known_of_utt[utterance] = is_known_row
    # every fingerprint's attack as a code of the rows' ATK dictionary (its AM and VM come from those rows)
    fp_attack = np.full(len(fp_names), -1, dtype=np.int64)
    for _, _, codes in groups:
        for c in codes:
            attack = FINGERPRINT_NAME.match(fp_names[c])["attack"]
            if attack not in attacks:
                raise ValueError(f"no trial row of attack {attack} (fingerprint {fp_names[c]}) names its labels")
            fp_attack[c] = attacks.index(attack)
    parts: dict[str, list] = {"group": [], "is_known": [], "detection": [], "true": [], "predicted": []}
    incomplete = 0
    for g, (_, _, codes) in enumerate(groups):
        position = np.full(len(fp_names), -1, dtype=np.int64)
        position[codes] = np.arange(len(codes))
        rows = np.flatnonzero(position[fp_codes] >= 0)
        matrix = np.full((n_utt, len(codes)), np.nan)
        matrix[utterance[rows], position[fp_codes[rows]]] = scores[rows]
        count = np.count_nonzero(~np.isnan(matrix), axis=1)
        complete = np.flatnonzero(count == len(codes))
        incomplete += int(np.count_nonzero((count > 0) & (count < len(codes))))
        matrix = matrix[complete]
        best = np.argmax(matrix, axis=1)  # the first maximum: fingerprints in sorted name order
        parts["group"].append(np.full(len(complete), g, dtype=np.int64))
        parts["is_known"].append(known_of_utt[complete])
        parts["detection"].append(matrix[np.arange(len(complete)), best])
        parts["true"].append(attack_of_utt[complete])
        parts["predicted"].append(fp_attack[codes][best])
    joined = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in parts.items()}
    true, predicted, names = {}, {}, {}
    for label, of_attack in labels.items():
        names[label] = sorted(set(of_attack.values()))
        # -1 for a dictionary entry without rows (filtered out): never a true or predicted attack
        code_of_attack = np.array([names[label].index(of_attack[a]) if a in of_attack else -1 for a in attacks],
                                  dtype=np.int64)
        true[label] = code_of_attack[joined["true"]]
        predicted[label] = code_of_attack[joined["predicted"]]
    return Trials([(c, n) for c, n, _ in groups], joined["group"], joined["is_known"].astype(bool),
                  joined["detection"].astype(np.float64), true, predicted, names, incomplete)


def _selections(trials: Trials):
    """(condition, enroll_size, trial mask): pooled first, then each condition."""
    yield "pooled", "pooled", np.ones(len(trials.group), dtype=bool)
    for g, (condition, size) in enumerate(trials.groups):
        yield condition, size, trials.group == g


def attribution_tables(trials: Trials) -> tuple[list[dict], list[dict]]:
    """Rows of attribution.csv and of unknown_detection.csv (dicts by column; absent cells empty)."""
    attribution, detection = [], []
    for condition, size, mask in _selections(trials):
        known = mask & trials.is_known
        for label in trials.true:
            row = {"condition": condition, "enroll_size": size, "label": label, "n_trials": int(known.sum())}
            if known.any():
                y, p = trials.true[label][known], trials.predicted[label][known]
                row.update(accuracy=accuracy(y, p), macro_f1=macro_f1(y, p))
            attribution.append(row)
        positive, negative = trials.detection[known], trials.detection[mask & ~trials.is_known]
        row = {"condition": condition, "enroll_size": size, "n_known": len(positive), "n_unknown": len(negative)}
        if len(positive) and len(negative):
            eer, threshold = detection_eer(positive, negative)
            row.update(auroc=auroc(positive, negative), fpr_at_tpr95=100 * fpr_at_tpr(positive, negative, TPR_PERCENT)[0],
                       eer=100 * eer, eer_threshold=threshold)
        detection.append(row)
    return attribution, detection


def format_csv(columns: list[str], rows: list[dict]) -> str:
    """Header and rows; floats as Python writes them (shortest exact form), absent cells empty."""
    return "".join(",".join("" if row.get(c) is None else str(row[c]) for c in columns) + "\n"
                   for row in [dict(zip(columns, columns)), *rows])


def write_attribution(out_dir: Path, trials: Trials) -> list[Path]:
    """Write `attribution.csv`, `unknown_detection.csv` and the two figures into `out_dir`
    (each atomically); returns their paths."""
    from .figures import plot_confusion, plot_detection_scores
    out_dir = Path(out_dir)
    attribution, detection = attribution_tables(trials)
    paths = [out_dir / "attribution.csv", out_dir / "unknown_detection.csv", out_dir / "attribution_confusion.png",
             out_dir / "unknown_detection.png"]
    write_text(paths[0], format_csv(ATTRIBUTION_COLUMNS, attribution))
    write_text(paths[1], format_csv(DETECTION_COLUMNS, detection))
    known = trials.is_known
    plot_confusion(paths[2], "closed-set attribution of known-attack trials, pooled (ATK)",
                   trials.true["ATK"][known], trials.predicted["ATK"][known], trials.names["ATK"])
    plot_detection_scores(paths[3], "unknown-source detection, pooled: highest score per trial",
                          trials.detection[known], trials.detection[~known], detection[0])
    return paths
