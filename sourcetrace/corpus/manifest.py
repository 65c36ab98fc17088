"""Labelled manifests: tables with a header, read into typed utterances.

A manifest is text with one utterance a row and a header naming the columns. The separator
is a comma, a tab, a pipe or white space: given (`sep`), or found in the header line (tab,
then `|`, then `,`; otherwise white space). Comma, tab and pipe tables follow CSV quoting
(a quoted field may hold the separator). Columns are chosen by name (`Columns`); a name
absent from the header is an error naming the file and the header, an empty cell in a
named column an error naming the file and the line.

`manifest` is also the name of the generic preset: any table with the columns named on the
command line (see `sourcetrace.corpus.cli`).
"""
from __future__ import annotations

import csv
import posixpath
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import StageError

SEPARATORS = {"comma": ",", "tab": "\t", "pipe": "|", "space": " "}
# label name on the utterance -> the trial protocol column of its target flag
LABELS = {"am": "AcousticModel", "vm": "VocoderModel", "am_archit": "AmArchit", "vm_archit": "VmArchit"}


@dataclass(frozen=True)
class Utterance:
    """One manifest row. `file`: the audio path relative to the corpus root (the protocols'
    FileName); `labels`: the labels the manifest has (`am`, `vm`, `am_archit`, `vm_archit`);
    `role`: `train`, `enroll`, `trial` or None (not used); `where`: `file:line` of the row."""
    file: str
    attack: str
    where: str
    role: str | None = None
    speaker: str | None = None
    text: str | None = None
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Columns:
    """Column names of a manifest; None: the manifest has no such column."""
    path: str
    attack: str
    am: str | None = None
    vm: str | None = None
    am_archit: str | None = None
    vm_archit: str | None = None
    speaker: str | None = None
    text: str | None = None
    split: str | None = None


@dataclass(frozen=True)
class Table:
    path: Path
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (1-based line, cells)

    def index(self, name: str, option: str) -> int:
        if name not in self.header:
            raise StageError(f"{self.path}:1: no column {name!r} in the header ({', '.join(self.header)}); "
                             f"name the right one with --{option.replace('_', '-')}")
        return self.header.index(name)


def separator_of(header_line: str, sep: str | None) -> str:
    """The separator given (a name of `SEPARATORS` or the character itself), else the header's."""
    if sep is not None:
        return SEPARATORS.get(sep, sep)
    for candidate in ("\t", "|", ","):
        if candidate in header_line:
            return candidate
    return " "


def read_table(path: Path, sep: str | None = None, names: list[str] | None = None) -> Table:
    """Header and rows of a manifest; every row must have as many cells as the header. `names`:
    the file has no header line and these are its columns (ASVspoof's protocols)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise StageError(f"{path}: manifest not found") from None
    except UnicodeDecodeError as exc:
        raise StageError(f"{path}: not a text manifest ({exc.reason})") from None
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise StageError(f"{path}:1: empty manifest (a header line naming the columns is expected)")
    delimiter = separator_of(lines[first], sep)
    if delimiter == " ":
        numbered = [(i + 1, line.split()) for i, line in enumerate(lines) if line.strip()]
    else:
        reader = csv.reader(lines[first:], delimiter=delimiter)
        numbered = []
        for cells in reader:
            if any(c.strip() for c in cells):
                numbered.append((first + reader.line_num, [c.strip() for c in cells]))
    if names is not None:
        numbered.insert(0, (0, list(names)))
    header, rows = numbered[0][1], numbered[1:]
    if len(set(header)) != len(header):
        raise StageError(f"{path}:{numbered[0][0]}: repeated column names in the header")
    for line, cells in rows:
        if len(cells) != len(header):
            shown = {" ": "white space", "\t": "tab"}.get(delimiter, repr(delimiter))
            raise StageError(f"{path}:{line}: expected {len(header)} columns as in the header "
                             f"(separator {shown}), found {len(cells)}")
    if not rows:
        raise StageError(f"{path}: no rows after the header")
    return Table(path, header, rows)


def utterances(table: Table, columns: Columns, role_of=None, suffix: str = "") -> list[Utterance]:
    """The rows of `table` as utterances. `role_of(split_value, where)` gives a row's role from
    its split cell (None without a split column); `suffix` is appended to every audio path."""
    named = {k: getattr(columns, k) for k in ("path", "attack", "speaker", "text", "split", *LABELS)}
    index = {k: table.index(name, k) for k, name in named.items() if name is not None}
    found = []
    for line, cells in table.rows:
        where = f"{table.path}:{line}"
        values = {k: cells[i] for k, i in index.items()}
        empty = [named[k] for k, v in values.items() if not v and k != "text"]
        if empty:
            raise StageError(f"{where}: empty {', '.join(map(repr, empty))}")
        if values["path"].startswith("/") or values["path"][1:3] == ":\\":
            raise StageError(f"{where}: absolute audio path {values['path']!r}; give paths relative to the "
                             "corpus root (--audio-root)")
        file = posixpath.normpath(values["path"].replace("\\", "/")) + suffix
        if any(c.isspace() for c in file):
            raise StageError(f"{where}: audio path {file!r} has white space; the protocols are "
                             "whitespace-separated, rename the file")
        if any(c.isspace() for c in values["attack"]):
            raise StageError(f"{where}: attack {values['attack']!r} has white space")
        role = role_of(values.get("split"), where) if role_of else None
        found.append(Utterance(file, values["attack"], where, role, values.get("speaker"), values.get("text") or None,
                               {k: values[k] for k in LABELS if k in values}))
    return found


DEFAULTS = {"train_split": "train", "enroll_split": "dev", "trial_split": "eval"}


def load(manifests: list[Path], opts: dict):
    """The generic preset: (utterances, known attack names or None, labels present).

    With a split column, rows whose split is `train_split` train, `enroll_split` enroll (known
    attacks only) and `trial_split` are trials; other values are an error naming the line. The
    known attacks are `known`, else those with enrollment rows.
    Without one, every row of a known attack (`known`, required then) is an enrollment
    utterance (some held out as trials, see `design`) and every other row a trial.
    """
    if not opts.get("path") or not opts.get("attack"):
        raise StageError("the manifest preset needs --path and --attack (the audio path and attack columns)")
    columns = Columns(**{k: opts.get(k) for k in Columns.__dataclass_fields__})
    known = opts.get("known")
    if columns.split is None and not known:
        raise StageError("without a --split column, name the known (enrolled) attacks with --known")
    roles = {opts["train_split"]: "train", opts["enroll_split"]: "enroll", opts["trial_split"]: "trial"}

    def role_of(value, where):
        if value is None:
            return "enroll"  # settled below by attack: known ones enroll, the others are trials
        if value not in roles:
            raise StageError(f"{where}: split {value!r} is none of {', '.join(map(repr, roles))} "
                             "(--train-split, --enroll-split, --trial-split)")
        return roles[value]

    found = []
    for path in manifests:
        found += utterances(read_table(Path(path), opts.get("sep")), columns, role_of, opts.get("suffix") or "")
    if known is None:  # the attacks the manifest gives enrollment rows
        known = sorted({u.attack for u in found if u.role == "enroll"})
        if not known:
            raise StageError(f"no rows of the enrollment split {opts['enroll_split']!r}: name the split with "
                             "--enroll-split or the known attacks with --known")
    if columns.split is None:
        found = [u if u.attack in known else replace(u, role="trial") for u in found]
    else:
        found = [u for u in found if u.role != "enroll" or u.attack in known]
    return found, known, [k for k in LABELS if getattr(columns, k)]
