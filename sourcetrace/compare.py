"""Compare score back-ends on one system's stage 1-3 outputs, without re-extracting.

    python -m sourcetrace.compare --config config/demo.conf --backends cosine,centered,asnorm,knn

For each back-end, stage 4's scoring and stage 5's evaluation run on the system's current
stage 1-3 outputs (they must be current for the config, as for stage 4; `--allow-stale`
uses them anyway) and write into `<output_dir>/<system>_compare/<backend>/`, under the
usual file names; the system's own stage 4 and 5 outputs and records are never touched.
Prints one table (the six pooled EERs, closed-set attribution accuracy for ATK / AM / VM,
unknown-source detection AUROC and FPR at 95 % TPR, all of the pooled rows) and writes it
as `<output_dir>/<system>_compare/comparison.csv`. A failure is one line `error: ...`, exit
status 2.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from .cli import guarded, setup_logging
from .config import BACKENDS, load_config
from .errors import StageError
from .registry import STAGES
from .runner import check_upstream
from .store import Paths, write_text

COLUMNS = ["backend", "known_ATK", "known_AM", "known_VM", "unknown_ATK", "unknown_AM", "unknown_VM",
           "accuracy_ATK", "accuracy_AM", "accuracy_VM", "auroc", "fpr_at_tpr95", "seconds"]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def run_backend(cfg: dict, paths: Paths, area: Path) -> dict:
    """Stages 4 and 5 of `cfg["backend"]` into `area`; the comparison row (EERs in percent)."""
    from .stages.pool import write_pooled
    from .stages.score import write_scores
    from .store.evaluation_table import read_evaluation_arrow

    def output(final: Path) -> Path:
        path = area / Path(final).relative_to(paths.output_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    start = time.perf_counter()
    write_scores(cfg, paths, output)
    arrow = output(paths.evaluation_arrow)
    write_pooled(cfg, paths, arrow, read_evaluation_arrow(arrow), output, show=False)
    seconds = time.perf_counter() - start
    folder = output(paths.eer_dir / "metrics.csv").parent
    eers = {(r["scenario"], r["label"]): float(r["eer"]) for r in _rows(folder / "metrics.csv")
            if r["condition"] == "pooled"}
    accuracy = {r["label"]: float(r["accuracy"]) for r in _rows(folder / "attribution.csv")
                if r["condition"] == "pooled" and r["accuracy"]}
    detection = _rows(folder / "unknown_detection.csv")[0]
    row = {"backend": cfg["backend"], "seconds": seconds}
    for scenario in ("known", "unknown"):
        for label, short in (("ATK", "ATK"), ("AcousticModel", "AM"), ("VocoderModel", "VM")):
            row[f"{scenario}_{short}"] = eers.get((scenario, label))  # None: a label the corpus lacks
    for label, short in (("ATK", "ATK"), ("AcousticModel", "AM"), ("VocoderModel", "VM")):
        row[f"accuracy_{short}"] = 100 * accuracy[label] if label in accuracy else None
    row["auroc"] = float(detection["auroc"]) if detection["auroc"] else None
    row["fpr_at_tpr95"] = float(detection["fpr_at_tpr95"]) if detection["fpr_at_tpr95"] else None
    return row


def format_table(rows: list[dict], system: str) -> str:
    """The comparison as text: EERs and accuracies in percent (2 decimals), AUROC (3 decimals)."""
    def cell(value, digits=2):
        return "-" if value is None else f"{value:.{digits}f}"

    groups = ("known EER", "unknown EER", "accuracy")
    lines = [f"{system}, pooled rows: EER (%), closed-set attribution accuracy (%), unknown-source detection",
             f"{'':10s}" + "".join(f"{g:>21s}  " for g in groups) + f"{'AUROC':>7s}{'FPR95':>7s}{'time':>7s}",
             f"{'backend':10s}" + "".join(f"{h:>7s}" for h in ("ATK", "AM", "VM")) + "  "
             + "".join(f"{h:>7s}" for h in ("ATK", "AM", "VM")) + "  "
             + "".join(f"{h:>7s}" for h in ("ATK", "AM", "VM")) + "  " + f"{'':7s}{'%':>7s}{'s':>7s}"]
    for r in rows:
        lines.append(f"{r['backend']:10s}" + "".join(f"{cell(r[c]):>7s}" for c in COLUMNS[1:4]) + "  "
                     + "".join(f"{cell(r[c]):>7s}" for c in COLUMNS[4:7]) + "  "
                     + "".join(f"{cell(r[c]):>7s}" for c in COLUMNS[7:10]) + "  "
                     + f"{cell(r['auroc'], 3):>7s}{cell(r['fpr_at_tpr95']):>7s}{r['seconds']:7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sourcetrace.compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/AASIST.conf", help="the system's JSON config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value (repeatable), as for the stages")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help=f"comma-separated back-ends to compare (default {','.join(BACKENDS)})")
    parser.add_argument("--allow-stale", action="store_true", help="use stage 1-3 outputs even when out of date")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    args = parser.parse_args(argv)
    setup_logging(args.quiet)
    done = {}

    def action():
        backends = [b.strip() for b in args.backends.split(",") if b.strip()]
        wrong = [b for b in backends if b not in BACKENDS]
        if wrong or not backends:
            raise StageError(f"--backends {args.backends!r}: each must be one of {', '.join(BACKENDS)}")
        cfg = load_config(args.config, args.overrides)
        paths = Paths.of(cfg)
        for backend in dict.fromkeys(b if b == "cosine" else "knn" for b in backends):  # the stages each reads
            check_upstream(STAGES[4], dict(cfg, backend=backend), args.allow_stale)
        root = paths.output_dir / f"{paths.system}_compare"
        rows = [run_backend(dict(cfg, backend=b), paths, root / b) for b in backends]
        text = "".join(",".join("" if r.get(c) is None else str(r[c]) for c in COLUMNS) + "\n"
                       for r in [dict(zip(COLUMNS, COLUMNS)), *rows])
        write_text(root / "comparison.csv", text)
        done.update(table=format_table(rows, paths.system), root=root)

    status = guarded("python -m sourcetrace.compare", action)
    if status == 0:
        print(done["table"])
        print(f"outputs: {done['root']}")
    return status


if __name__ == "__main__":
    sys.exit(main())
