"""Preset `mlaad`: the MLAAD source-tracing protocols (`train.csv`, `dev.csv`, `eval.csv`).

Checked against public code that reads these files (the baselines of the Interspeech 2025
source-tracing special session read them with `pandas.read_csv`): comma-separated with a
header; `path` is the audio path relative to the MLAAD root; `model_name` is the source
system. Known sources are the `model_name`s of `train.csv`; every other source is unknown.
Assumed, and therefore options: the acoustic-model label is the `architecture` column when
the header has one (`--am`), texts are not used unless a column is named (`--text`), and the
audio root is given (`--audio-root`, the folder the `path`s start from).

Roles: `train.csv` -> the training protocol; the split named by `enroll_split` (default `dev`)
-> enrollment of the known sources; `eval.csv` -> trials.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import StageError
from .manifest import Columns, Table, read_table, utterances

SPLITS = ("train", "dev", "eval")
DEFAULTS = {"sep": ",", "path": "path", "attack": "model_name", "am": "architecture", "enroll_split": "dev"}


def protocol_files(manifests: list[Path]) -> dict[str, Path]:
    """{split: file} from the files given, or from one folder holding train.csv, dev.csv, eval.csv."""
    if len(manifests) == 1 and Path(manifests[0]).is_dir():
        manifests = [Path(manifests[0]) / f"{s}.csv" for s in SPLITS]
    found = {}
    for path in map(Path, manifests):
        if path.stem not in SPLITS:
            raise StageError(f"{path}: an MLAAD protocol file is train.csv, dev.csv or eval.csv")
        found[path.stem] = path
    missing = [f"{s}.csv" for s in SPLITS if s not in found]
    if missing:
        raise StageError(f"the mlaad preset needs {', '.join(missing)} too (give the three files or their folder)")
    return found


def _optional(table: Table, name: str | None) -> str | None:
    """The `architecture` column when the file has it (else the label is absent); a column named
    on the command line must be there."""
    if name == DEFAULTS["am"] and name not in table.header:
        return None
    return name


def load(manifests: list[Path], opts: dict):
    """(utterances, known attack names or None = the training split's, labels present)."""
    files = protocol_files(manifests)
    if opts["enroll_split"] not in SPLITS:
        raise StageError(f"--enroll-split must be one of {', '.join(SPLITS)}, not {opts['enroll_split']!r}")
    roles = {"train": ["train"], "dev": [], "eval": ["trial"]}
    roles[opts["enroll_split"]].append("enroll")
    found, labels = [], None
    for split, path in files.items():
        table = read_table(path, opts["sep"])
        columns = Columns(opts["path"], opts["attack"], am=_optional(table, opts.get("am")), vm=opts.get("vm"),
                          speaker=opts.get("speaker"), text=opts.get("text"))
        present = [k for k in ("am", "vm") if getattr(columns, k)]
        if labels is None:
            labels = present
        elif present != labels:
            raise StageError(f"{path}:1: has label columns {present}, but the first file {labels}")
        rows = utterances(table, columns, suffix=opts.get("suffix") or "")
        for role in roles[split]:
            found += [replace(u, role=role) for u in rows]
    train_sources = sorted({u.attack for u in found if u.role == "train"})
    # only known sources are enrolled: the enrollment split's other rows are not used
    found = [u for u in found if u.role != "enroll" or u.attack in train_sources]
    return found, None, labels
