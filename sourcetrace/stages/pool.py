"""Stage 5: pooled EERs of the known and unknown scenarios, by ATK, AM and VM, and more.

Reads stage 4's Arrow copy when stage 4's record shows it intact, else the evaluation CSV
(also one made elsewhere). Writes the reference files `pooled_eer_kn.csv`,
`pooled_eer_ukn.csv` and `pooled_eer_details.json` and prints the table; beside them the
wider evaluation (`metrics.csv`, DET figures and points, see `sourcetrace.evaluation`) and
closed-set attribution and unknown-source detection (`attribution.csv`,
`unknown_detection.csv` and their figures, see `sourcetrace.attribution`).
"""
from __future__ import annotations

import json
import logging

from .. import metrics
from ..attribution import attribution_trials, write_attribution
from ..errors import StageError
from ..evaluation import evaluate, write_evaluated
from ..pooling import pool_table, pooled_rows
from ..stage_result import StageResult
from ..store import write_text
from ..store.evaluation_table import read_evaluation_arrow, read_evaluation_csv

log = logging.getLogger("sourcetrace")


def _read(ctx):
    """Stage 4's Arrow copy when its record vouches for it, else the CSV (also one made elsewhere)."""
    from ..provenance import outputs_intact
    paths, record = ctx.paths, ctx.upstream.get(4)
    arrow = paths.evaluation_arrow
    if record and arrow.name in record["outputs"] and outputs_intact(paths, record):
        return arrow, read_evaluation_arrow(arrow)
    return paths.evaluation_csv, read_evaluation_csv(paths.evaluation_csv)


SHORT = {"ATK": "ATK", "AcousticModel": "AM", "VocoderModel": "VM"}


def absent_labels(labels) -> list[str]:
    """The pooled labels (of ATK, AcousticModel, VocoderModel) the trial protocols do not have."""
    return [name for name in metrics.LABELS if name not in labels]


def absent_note(absent: list[str]) -> str:
    columns = ", ".join(metrics.LABELS[name] for name in absent)
    return (f"note: no {', '.join(absent)} labels in this corpus (no {columns} column in the trial "
            f"protocols): {'its EER is' if len(absent) == 1 else 'their EERs are'} not computed")


def _pooled(evaluated, scenario: str, name: str) -> metrics.EER:
    """Table 4's EER of one scenario and label; ValueError when its rows lack targets or non-targets."""
    found = evaluated.pooled[scenario].get(name)
    if found is None:
        row = next(r for r in evaluated.table if (r["scenario"], r["label"], r["condition"]) == (scenario, name, "pooled"))
        raise ValueError(f"{scenario} scenario, {name}: EER needs target and non-target scores (got "
                         f"{row['n_target']} targets, {row['n_nontarget']} non-targets)")
    return found


def run(ctx) -> StageResult:
    source, table = _read(ctx)
    return StageResult(write_pooled(ctx.cfg, ctx.paths, source, table, ctx.output))


def write_pooled(cfg, paths, source, table, output, show: bool = True) -> list:
    """Every stage-5 output from the evaluation `table` (read from `source`); `output(final_path)`
    names where to write each (the runner's staging folder, or the comparison command's
    area). Prints the table (with `show`); returns the final paths."""
    try:
        table = pool_table(table, cfg["known_attacks"])
        rows = pooled_rows(table, cfg["known_attacks"], pooled=True)
        labels = {name: rows.labels[name] for name in metrics.LABELS if name in rows.labels}
        # one sort of the rows serves Table 4's pooled EERs and the wider evaluation
        evaluated = evaluate(rows, unknown_filter=cfg["unknown_filter"],
                             dcf_operating_points=cfg["dcf_operating_points"],
                             bootstrap_resamples=cfg["bootstrap_resamples"], bootstrap_seed=cfg["bootstrap_seed"])
        results = {scenario: {name: _pooled(evaluated, scenario, name) for name in labels}
                   for scenario in ("known", "unknown")}
    except ValueError as exc:
        raise StageError(f"{source}: {exc}") from None
    out = paths.eer_dir
    files = {name: out / name for name in ("pooled_eer_kn.csv", "pooled_eer_ukn.csv", "pooled_eer_details.json")}
    write_text(output(files["pooled_eer_kn.csv"]), metrics.format_pooled_csv(results["known"]))
    write_text(output(files["pooled_eer_ukn.csv"]), metrics.format_pooled_csv(results["unknown"]))
    absent = absent_labels(labels)
    if absent:
        log.warning("%s: %s", source, absent_note(absent))
    details = {scenario: {name: {"eer_percent": r.percent, "eer": r.eer, "threshold": r.threshold,
                                 "n_target": r.n_target, "n_nontarget": r.n_nontarget}
                          for name, r in res.items()} for scenario, res in results.items()}
    write_text(output(files["pooled_eer_details.json"]), json.dumps(
        {"system": paths.system, "known_attacks": list(cfg["known_attacks"]),
         "unknown_filter": cfg["unknown_filter"], "rows": int(len(rows.scores)),
         **({"absent_labels": absent} if absent else {}), **details}, indent=2) + "\n")
    folder = output(out / "metrics.csv").parent
    try:
        wider = write_evaluated(folder, evaluated, cfg["unknown_filter"], cfg["dcf_operating_points"])
        del rows
        trials = attribution_trials(table, cfg["known_attacks"])
        attributed = write_attribution(folder, trials)
    except ValueError as exc:
        raise StageError(f"{source}: {exc}") from None
    if trials.unavailable:
        log.warning("%s: no closed-set attribution or unknown-source detection (%s)", source, trials.unavailable)
    if trials.incomplete:
        log.warning("%d (utterance, condition) pair(s) left out of attribution and unknown-source detection: "
                    "not scored against every fingerprint of the condition", trials.incomplete)
    if show:
        print(f"{paths.system} pooled EER (%), unknown scenario filter: {cfg['unknown_filter']}")
        print(f"{'':10s}" + "".join(f"{SHORT[n]:>8s}" for n in labels))
        for scenario in ("known", "unknown"):
            print(f"{scenario:10s}" + "".join(f"{results[scenario][n].percent:8.2f}" for n in labels))
    return [*files.values(), *(out / p.name for p in wider + attributed)]
