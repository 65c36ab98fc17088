"""Print the pooled EER table (Table 4's layout) and write one Markdown report of the systems.

    python -m sourcetrace.report OUTPUT_DIR SYSTEM [SYSTEM ...] [--paper] [--out PATH]

Reads stage 5's outputs in OUTPUT_DIR/<SYSTEM>_EERs_pooled/, after checking their record:
stage 5 must have a record, its outputs must be as it wrote them, and every upstream record
must still be the one it read (transitively); else the report refuses naming the cause
(`--allow-stale` prints anyway, under a warning line in the table and the report). The
report (default OUTPUT_DIR/report.md; a folder given to --out gets report.md inside):
Table 4 (with the paper's numbers under --paper), the EER of every enrollment condition and
size, the detection metrics of the pooled rows with the EER's bootstrap confidence
interval, and the DET figures (linked relative to the report); then, when stage 5 wrote
them, closed-set attribution and unknown-source detection with their figures. A missing
system or file is one line `error: <path>: ...` on stderr, exit status 2.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from .errors import StageError
from .registry import STAGES
from .store import Paths, write_text

# Table 4 of the STOPA paper (pooled EER %), the authors' published CSVs
PAPER = {
    "ResNet-34_STOPA": {"known": (47.61, 47.61, 47.81), "unknown": (49.55, 50.32, 49.14)},
    "AASIST_CM": {"known": (39.15, 39.15, 39.68), "unknown": (35.34, 38.69, 37.10)},
    "AASIST_STOPA": {"known": (47.05, 47.05, 45.25), "unknown": (47.75, 49.37, 48.68)},
}
ROWS = ("ATK", "AcousticModel", "VocoderModel")
SHORT = {"ATK": "ATK", "AcousticModel": "AM", "VocoderModel": "VM", "AmArchit": "AM arch.", "VmArchit": "VM arch."}
STAGE5 = f"run {STAGES[5].hint} for this system first"


def system_dir(output_dir: Path, system: str) -> Path:
    folder = Paths(Path(output_dir), system).eer_dir
    if not folder.is_dir():
        raise StageError(f"{folder}: not found (no system {system!r} in {output_dir}); {STAGE5}")
    return folder


def provenance_problems(output_dir: Path, systems: list[str]) -> dict[str, str]:
    """Why each system's stage 5 outputs cannot be vouched for (systems absent when they can)."""
    from .provenance import chain_problem
    problems = {}
    for system in systems:
        system_dir(output_dir, system)
        problem = chain_problem(Paths(Path(output_dir), system), 5)
        if problem:
            problems[system] = problem
    return problems


def read_pooled(path: Path) -> tuple[float | None, ...]:
    """ATK, AM, VM EERs (%) of a reference pooled EER file; None for a label the corpus does not
    have (stage 5 writes the rows of the labels its trial protocols have; ATK always)."""
    try:
        with open(path, newline="") as handle:
            values = {row[0]: float(row[1]) for row in list(csv.reader(handle))[1:]}
        if "ATK" not in values or set(values) - set(ROWS):
            raise KeyError
        return tuple(values.get(name) for name in ROWS)
    except FileNotFoundError:
        raise StageError(f"{path}: not found; {STAGE5}") from None
    except (KeyError, IndexError, ValueError):
        raise StageError(f"{path}: not a pooled EER file (header ',EER', rows {', '.join(ROWS)}; "
                         f"ATK required)") from None


def pooled_row(output_dir: Path, system: str) -> tuple[float | None, ...]:
    """A system's stage 5 pooled EERs (%): known ATK, AM, VM, then unknown ATK, AM, VM."""
    folder = system_dir(output_dir, system)
    return read_pooled(folder / "pooled_eer_kn.csv") + read_pooled(folder / "pooled_eer_ukn.csv")


def _present(pooled: list[tuple]) -> list[int]:
    """Positions (in ATK, AM, VM order) of the labels that at least one system has."""
    return [i for i in range(len(ROWS)) if any(p[i] is not None for p in pooled)]


def absent_note(pooled: list[tuple]) -> str | None:
    """One line naming the labels some system's corpus does not have, or None when all are there."""
    missing = [i for i in range(len(ROWS)) if any(p[i] is None for p in pooled)]
    if not missing:
        return None
    names = ", ".join(ROWS[i] for i in missing)
    columns = ", ".join(f"IsTarget{ROWS[i]}" for i in missing)
    everywhere = all(p[i] is None for p in pooled for i in missing)
    return (f"note: no {names} labels (no {columns} column in the trial protocols), so no EER"
            + ("" if everywhere else "; '–' where a system lacks it"))


def _cell(value: float | None, spec: str) -> str:
    return "–" if value is None else f"{value:{spec}}"


def read_metrics(path: Path) -> list[dict[str, str]]:
    """The rows of a `metrics.csv` (see `sourcetrace.evaluation`), cells as strings."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        raise StageError(f"{path}: not found; {STAGE5}") from None
    needed = {"scenario", "label", "condition", "enroll_size", "eer", "eer_ci_low", "eer_ci_high", "rocch_eer", "min_cllr"}
    if not rows or not needed <= set(rows[0]):
        raise StageError(f"{path}: not a metrics.csv of stage 5 (needs columns {', '.join(sorted(needed))})")
    return rows


def table(output_dir: Path, systems: list[str], paper: bool = False) -> str:
    """The pooled EER text table: one line per system (and its paper line with `paper`); only the
    labels some system has, with a note naming the others."""
    pooled = {system: pooled_row(output_dir, system) for system in systems}
    present = _present([p[:3] for p in pooled.values()] + [p[3:] for p in pooled.values()])
    names = [("ATK", "AM", "VM")[i] for i in present]
    heads = [f"known {n}" if k == 0 else n for k, n in enumerate(names)] + \
            [f"unknown {n}" if k == 0 else n for k, n in enumerate(names)]
    widths = [10 if k == 0 else 13 if k == len(names) else 7 for k in range(len(heads))]
    lines = [f"{'pooled EER (%)':24s}" + "".join(f"{h:>{w}s}" for h, w in zip(heads, widths))]
    cells = present + [3 + i for i in present]

    def row(label: str, values: tuple, sign: str = "") -> str:
        return f"{label:24s}" + "".join(f"{_cell(values[c], sign + '.2f'):>{w}s}" for c, w in zip(cells, widths))

    for system in systems:
        lines.append(row(system, pooled[system]))
        if paper and system in PAPER:
            lines.append(row("  paper (STOPA)", PAPER[system]["known"] + PAPER[system]["unknown"]))
            lines.append(row("  ours - paper", sum(difference(pooled[system], system), ()), sign="+"))
    note = absent_note([p[:3] for p in pooled.values()] + [p[3:] for p in pooled.values()])
    return "\n".join(lines + ([note] if note else []))


def difference(ours: tuple, system: str) -> tuple[tuple, tuple]:
    """Ours minus the paper's Table 4, per cell (known ATK/AM/VM, unknown ATK/AM/VM)."""
    delta = tuple(None if a is None else round(a - b, 2)
                  for a, b in zip(ours, PAPER[system]["known"] + PAPER[system]["unknown"]))
    return delta[:3], delta[3:]


def _number(cell: str, digits: int = 2) -> str:
    return f"{float(cell):.{digits}f}" if cell else "–"


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in rows), ""]


def markdown(output_dir: Path, systems: list[str], paper: bool, report_path: Path,
             stale: dict[str, str] | None = None) -> str:
    """The report's text; image links are relative to `report_path`'s folder. `stale`: the
    systems shown although their provenance does not hold, and why (a warning each)."""
    out = [f"# Source tracing evaluation: {', '.join(systems)}", "",
           *(f"> **Warning (--allow-stale): {system}'s numbers are not vouched for by their records: {why}.**\n"
             for system, why in (stale or {}).items()),
           "EERs in percent as the STOPA reference computes them (no interpolation, tied targets "
           "first); definitions in the README, section \"Evaluation beyond Table 4\".", "",
           "## Pooled EER (Table 4)", ""]
    pooled, metrics = {}, {}
    for system in systems:
        pooled[system] = pooled_row(output_dir, system)
        metrics[system] = read_metrics(system_dir(output_dir, system) / "metrics.csv")
    halves = [p[:3] for p in pooled.values()] + [p[3:] for p in pooled.values()]
    present = _present(halves)
    cells = present + [3 + i for i in present]
    header = ["system", *(f"{s} {('ATK', 'AM', 'VM')[i]}" for s in ("known", "unknown") for i in present)]
    rows = []
    for system in systems:
        rows.append([system, *(_cell(pooled[system][c], ".2f") for c in cells)])
        if paper and system in PAPER:
            paper_values = PAPER[system]["known"] + PAPER[system]["unknown"]
            rows.append([f"{system}, paper", *(f"{paper_values[c]:.2f}" for c in cells)])
            delta = sum(difference(pooled[system], system), ())
            rows.append([f"{system}, ours - paper", *(_cell(delta[c], "+.2f") for c in cells)])
    out += _markdown_table(header, rows)
    note = absent_note(halves)
    if note:
        out += [note[0].upper() + note[1:], ""]
    for system in systems:
        folder = system_dir(output_dir, system)
        out += _system_sections(system, folder, metrics[system], report_path)
    return "\n".join(out)


def _system_sections(system: str, folder: Path, rows: list[dict[str, str]], report_path: Path) -> list[str]:
    labels = list(dict.fromkeys(r["label"] for r in rows))
    details = folder / "pooled_eer_details.json"
    unknown_filter = json.loads(details.read_text()).get("unknown_filter", "?") if details.is_file() else "?"
    out = [f"## {system}", "", f"Unknown-scenario rows: `{unknown_filter}` filter.", "",
           "### EER (%) per enrollment condition and size", ""]
    cell = {(r["scenario"], r["label"], r["condition"], r["enroll_size"]): r for r in rows}
    groups = list(dict.fromkeys((r["condition"], r["enroll_size"]) for r in rows))
    header = ["condition", "size"] + [f"{s} {SHORT.get(name, name)}" for s in ("known", "unknown") for name in labels]
    body = [[c, n, *(_number(cell[(s, name, c, n)]["eer"]) for s in ("known", "unknown") for name in labels)]
            for c, n in groups]
    out += _markdown_table(header, body)
    ranked = sorted((float(cell[("known", "ATK", c, n)]["eer"]), c, n) for c, n in groups[1:]
                    if cell[("known", "ATK", c, n)]["eer"])
    if ranked:
        out += [f"Known-attack ATK tracing is best with `{ranked[0][1]}` / `{ranked[0][2]}` "
                f"({ranked[0][0]:.2f} %) and worst with `{ranked[-1][1]}` / `{ranked[-1][2]}` ({ranked[-1][0]:.2f} %).", ""]
    dcf = [c for c in rows[0] if c.startswith("min_dcf_")]
    header = ["scenario", "label", "EER % [95 % CI]", "ROCCH-EER %", "min Cllr (bits)"] + [
        "minDCF(" + c[len("min_dcf_"):].replace("_", ", ") + ")" for c in dcf]
    body = []
    for r in (r for r in rows if r["condition"] == "pooled"):
        interval = f" [{_number(r['eer_ci_low'])}, {_number(r['eer_ci_high'])}]" if r["eer_ci_low"] else ""
        body.append([r["scenario"], SHORT.get(r["label"], r["label"]), _number(r["eer"]) + interval,
                     _number(r["rocch_eer"]), _number(r["min_cllr"], 3), *(_number(r[c], 3) for c in dcf)])
    out += ["### Detection metrics, pooled rows", ""] + _markdown_table(header, body)
    out += ["### DET curves, pooled rows", ""]
    for scenario in ("known", "unknown"):
        link = Path(os.path.relpath(folder / f"det_{scenario}.png", report_path.parent)).as_posix()
        out += [f"![{system}, {scenario} attacks]({link})", ""]
    out += _attribution_sections(system, folder, report_path)
    return out


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _attribution_sections(system: str, folder: Path, report_path: Path) -> list[str]:
    """Closed-set attribution and unknown-source detection (stage 5's `attribution.csv`,
    `unknown_detection.csv` and figures); nothing for outputs of a stage 5 without them."""
    out = []
    attribution, detection = folder / "attribution.csv", folder / "unknown_detection.csv"
    if attribution.is_file():
        rows = _csv_rows(attribution)
        labels = list(dict.fromkeys(r["label"] for r in rows))
        cell = {(r["condition"], r["enroll_size"], r["label"]): r for r in rows}
        groups = list(dict.fromkeys((r["condition"], r["enroll_size"]) for r in rows))
        header = ["condition", "size", "trials"] + [f"{what} {SHORT.get(n, n)}" for what in ("accuracy %", "macro-F1")
                                                    for n in labels]
        body = [[c, n, cell[(c, n, labels[0])]["n_trials"],
                 *(_percent(cell[(c, n, name)]["accuracy"]) for name in labels),
                 *(_number(cell[(c, n, name)]["macro_f1"], 3) for name in labels)] for c, n in groups]
        link = Path(os.path.relpath(folder / "attribution_confusion.png", report_path.parent)).as_posix()
        out += ["### Closed-set attribution of known-attack trials", "",
                "Each trial utterance of a known attack goes to the fingerprint of its enrollment condition "
                "with the highest score; its AM and VM are that attack's.", ""]
        out += _markdown_table(header, body) + [f"![{system}, attribution confusion matrix]({link})", ""]
    if detection.is_file():
        rows = _csv_rows(detection)
        header = ["condition", "size", "known", "unknown", "AUROC", "FPR at TPR 95 %", "EER %", "EER threshold"]
        body = [[r["condition"], r["enroll_size"], r["n_known"], r["n_unknown"], _number(r["auroc"], 3),
                 _number(r["fpr_at_tpr95"]), _number(r["eer"]), _number(r["eer_threshold"], 4)] for r in rows]
        link = Path(os.path.relpath(folder / "unknown_detection.png", report_path.parent)).as_posix()
        out += ["### Unknown-source detection", "",
                "Detection score: a trial's highest score over its condition's known fingerprints; known "
                "attacks are the positives.", ""]
        out += _markdown_table(header, body) + [f"![{system}, detection scores of known and unknown attacks]({link})",
                                                ""]
    return out


def _percent(cell: str) -> str:
    return f"{100 * float(cell):.2f}" if cell else "–"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("systems", nargs="+")
    parser.add_argument("--paper", action="store_true", help="also give the paper's Table 4 numbers")
    parser.add_argument("--out", type=Path, help="where to write the report (default OUTPUT_DIR/report.md; "
                                                 "a folder gets report.md inside)")
    parser.add_argument("--allow-stale", action="store_true",
                        help="report even when stage 5's outputs or their upstream chain changed after it ran "
                             "(a warning line says so)")
    args = parser.parse_args(argv)
    report_path = args.out or args.output_dir / "report.md"
    if report_path.is_dir():
        report_path = report_path / "report.md"
    try:
        stale = provenance_problems(args.output_dir, args.systems)
        if stale and not args.allow_stale:
            system, why = next(iter(stale.items()))
            raise StageError(f"{args.output_dir}: {system}: {why}; run the stages again ({STAGES[5].script} "
                             f"names any earlier one to run) or pass --allow-stale to report anyway")
        text = table(args.output_dir, args.systems, args.paper)
        report = markdown(args.output_dir, args.systems, args.paper, report_path, stale)
        write_text(report_path, report)
    except StageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the report's folder cannot be written
        print(f"error: {exc.filename or report_path}: {exc.strerror}", file=sys.stderr)
        return 2
    for system, why in stale.items():
        print(f"WARNING (--allow-stale): {system}'s numbers are not vouched for by their records: {why}")
    print(text)
    print(f"report: {report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
