"""STOPA protocol files: one parser per kind, returning typed records.

Both kinds are whitespace-separated text with a header line. Columns are found by header
name (case-insensitive `FileName`, `ATK`, ...) and, where the header does not name them,
at the reference scripts' positions: enrollment files column 1 = file name, column 3 =
attack; trial files column 1 = file name, column 4 = attack (0-based).

A protocol stem is `<ATK>-<anything>`: the fingerprint of an enrollment file
`AA01-co-100.txt` is `AA01-co-100`, its attack `AA01`; the trial file of that fingerprint
is `AA01-co-100_trials.txt`. Nothing assumes STOPA's condition names or sizes.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import StageError

TRIAL_SUFFIX = "_trials"
TRUE_VALUES = ("True", "true", "TRUE", "1")
FALSE_VALUES = ("False", "false", "FALSE", "0")
_STEM = re.compile(r"^([^-\s]+)-\S+$")


@dataclass(frozen=True)
class EnrollmentProtocol:
    """One enrollment file: the utterances averaged into fingerprint `fingerprint`."""

    path: Path
    fingerprint: str
    attack: str
    files: list[str]
    attacks: list[str]
    lines: list[int]  # 1-based line number of each row in `path`


@dataclass(frozen=True)
class TrialProtocol:
    """One trial file: every row is a trial utterance scored against one fingerprint.

    `table` holds every column as read (strings), in file order; `fingerprints` is the
    fingerprint of each row (its `AbstractModel`, else the file's own fingerprint).
    """

    path: Path
    fingerprint: str
    attack: str
    table: pa.Table
    file_column: str
    attack_column: str
    targets: dict[str, np.ndarray]  # every IsTarget* column, parsed

    @property
    def files(self) -> pa.ChunkedArray:
        return self.table.column(self.file_column)

    @property
    def attacks(self) -> pa.ChunkedArray:
        return self.table.column(self.attack_column)

    @property
    def fingerprints(self) -> pa.ChunkedArray:
        if "AbstractModel" in self.table.column_names:
            return self.table.column("AbstractModel")
        return pa.chunked_array([pa.repeat(pa.scalar(self.fingerprint), self.table.num_rows)])

    @functools.cached_property
    def utterance_keys(self) -> pa.ChunkedArray:
        """`<ATK>\t<FileName>` of each row: the key of the trial embedding store."""
        return pc.binary_join_element_wise(self.attacks, self.files, "\t")


def audio_path(template: str, database_path: str, attack: str, file: str) -> Path:
    """Where a protocol row's audio is: a config template (`enroll_audio`, `trial_audio`,
    `train_audio`; checked when the config is read) filled with the row's attack and file."""
    return Path(template.format(database_path=database_path, attack=attack, file=file))


def attack_of(stem: str, path: Path) -> str:
    match = _STEM.match(stem)
    if not match:
        raise StageError(f"{path}: protocol file name must look like <ATK>-<condition>{path.suffix}")
    return match.group(1)


def column_index(header: list[str], name: str, position: int, path: Path) -> int:
    lowered = [h.lower() for h in header]
    if name.lower() in lowered:
        return lowered.index(name.lower())
    if position >= len(header):
        raise StageError(f"{path}:1: header has no {name!r} column and fewer than {position + 1} columns")
    return position


def read_lines(path: Path) -> list[str]:
    """The lines of a text protocol (a UTF-8 BOM is not part of the first line)."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise StageError(f"{path}: protocol file not found") from None
    except UnicodeDecodeError as exc:
        raise StageError(f"{path}: not a text protocol file ({exc.reason})") from None


def token_rows(path: Path, lines: list[str], first: int, width: int, expected: str) -> list[tuple[int, list[str]]]:
    """(line number, tokens) of every non-blank line, numbered from `first`; a row of
    another width than `width` is an error naming its line and what was `expected`."""
    rows = []
    for number, line in enumerate(lines, start=first):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != width:
            raise StageError(f"{path}:{number}: expected {width} columns {expected}, found {len(tokens)}")
        rows.append((number, tokens))
    return rows


def _tokenize(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, tokens) of every non-blank row, each row checked for width."""
    lines = read_lines(path)
    if not lines or not lines[0].split():
        raise StageError(f"{path}:1: empty protocol file (a header line is expected)")
    header = lines[0].split()
    return header, token_rows(path, lines[1:], 2, len(header), "as in the header")


def _check_unique(keys: list, lines: list[int], path: Path, what: str) -> None:
    seen: dict = {}
    for key, line in zip(keys, lines):
        if key in seen:
            raise StageError(f"{path}:{line}: duplicate {what} {key!r} (first at line {seen[key]})")
        seen[key] = line


def read_enrollment(path: Path) -> EnrollmentProtocol:
    path = Path(path)
    attack = attack_of(path.stem, path)
    header, rows = _tokenize(path)
    file_col = column_index(header, "FileName", 1, path)
    atk_col = column_index(header, "ATK", 3, path)
    if not rows:
        raise StageError(f"{path}: no enrollment rows after the header")
    files = [tokens[file_col] for _, tokens in rows]
    lines = [number for number, _ in rows]
    attacks = [tokens[atk_col] for _, tokens in rows]
    for line, row_attack in zip(lines, attacks):
        if row_attack != attack:
            raise StageError(f"{path}:{line}: attack {row_attack!r}, but this is the enrollment file of "
                             f"fingerprint {path.stem!r} (attack {attack!r}); a fingerprint averages one "
                             f"attack's utterances")
    _check_unique(files, lines, path, "enrollment utterance")
    return EnrollmentProtocol(path, path.stem, attack, files, attacks, lines)


def _read_table_fast(path: Path, header_line: str, columns: list[str] | None) -> pa.Table | None:
    """Columnar read for single-space or tab-separated files; None when the file is irregular."""
    delimiter = "\t" if "\t" in header_line else " "
    names = header_line.split()
    try:
        table = pacsv.read_csv(
            path,
            parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False, ignore_empty_lines=True),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 include_columns=columns),
        )
    except (pa.ArrowInvalid, pa.ArrowKeyError):
        return None
    if table.column_names != (columns or names) or any(c.null_count for c in table.columns):
        return None
    return table


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig") as handle:  # a BOM is not part of the first column's name
            return handle.readline().rstrip("\r\n")
    except FileNotFoundError:
        raise StageError(f"{path}: protocol file not found") from None
    except UnicodeDecodeError as exc:
        raise StageError(f"{path}: not a text protocol file ({exc.reason})") from None


def read_trials(path: Path, identity_only: bool = False) -> TrialProtocol:
    """Parse a trial file; rows with a bad width or a bad boolean are errors.

    With `identity_only`, only the fingerprint, file name and attack columns are kept and the
    target columns are not checked. A row whose `AbstractModel` is not the file's own
    fingerprint is an error: its labels describe this file's fingerprint. Duplicate trials
    are found by `check_unique_trials` once rows have been resolved to ids (cheaper than
    hashing strings).
    """
    path = Path(path)
    fingerprint, attack = trial_fingerprint(path)
    header_line = _first_line(path)
    header = header_line.split()
    if not header:
        raise StageError(f"{path}:1: empty protocol file (a header line is expected)")
    if len(set(header)) != len(header):
        raise StageError(f"{path}:1: repeated column names in the header")
    file_column = header[column_index(header, "FileName", 1, path)]
    attack_column = header[column_index(header, "ATK", 4, path)]
    columns = None
    if identity_only:
        columns = [c for c in header if c in ("AbstractModel", file_column, attack_column)]
    table = _read_table_fast(path, header_line, columns)
    if table is None:  # irregular spacing, or an error to report with its line number
        _, rows = _tokenize(path)
        table = pa.table({name: [tokens[i] for _, tokens in rows] for i, name in enumerate(header)
                          if columns is None or name in columns})
    if table.num_rows == 0:
        raise StageError(f"{path}: no trial rows after the header")
    if "AbstractModel" in table.column_names:
        other = pc.not_equal(table.column("AbstractModel"), pa.scalar(fingerprint))
        if pc.any(other).as_py():
            row = int(np.flatnonzero(other.to_numpy(zero_copy_only=False))[0])
            raise StageError(f"{path}:{line_of(path, row)}: AbstractModel is "
                             f"{table.column('AbstractModel')[row].as_py()!r}, but this is the trial file of "
                             f"fingerprint {fingerprint!r}")
    targets = {name: parse_booleans(table.column(name), path, name)
               for name in table.column_names if name.startswith("IsTarget")}
    return TrialProtocol(path, fingerprint, attack, table, file_column, attack_column, targets)


def read_trial_files(paths: list[Path], required: tuple[str, ...] = ()):
    """`read_trials` of each file in turn; every file must have the first one's header, with
    the `required` columns."""
    header = None
    for path in paths:
        protocol = read_trials(path)
        absent = [c for c in required if c not in protocol.table.column_names]
        if absent:
            raise StageError(f"{path}:1: no {', '.join(absent)} column in the header (stage 5 pools by it); "
                             f"the header has {' '.join(protocol.table.column_names)}")
        if header is None:
            header = protocol.table.column_names
        elif protocol.table.column_names != header:
            raise StageError(f"{path}:1: header differs from {paths[0].name}'s "
                             f"({' '.join(protocol.table.column_names)} vs {' '.join(header)})")
        yield protocol


def validate_trials(paths: list[Path], required: tuple[str, ...] = ()):
    """Read every trial file in full (widths, labels, fingerprints, one header for all, the
    `required` label columns, no repeated utterance within a file) and yield each with its
    identity columns only, one file in memory at a time."""
    for protocol in read_trial_files(paths, required):
        _check_unique_utterances(protocol)
        keep = [c for c in protocol.table.column_names
                if c in ("AbstractModel", protocol.file_column, protocol.attack_column)]
        yield TrialProtocol(protocol.path, protocol.fingerprint, protocol.attack, protocol.table.select(keep),
                            protocol.file_column, protocol.attack_column, {})


def _check_unique_utterances(protocol: TrialProtocol) -> None:
    """Error naming the first repeated utterance of a trial file (every row is scored against
    the file's one fingerprint, so a repeat is a duplicate trial)."""
    keys = protocol.utterance_keys
    if pc.count_distinct(keys).as_py() == len(keys):
        return
    ids = pc.index_in(keys, value_set=pc.unique(keys)).to_numpy(zero_copy_only=False)
    check_unique_trials(protocol, np.zeros(len(ids), dtype=np.int64), ids)


def trial_fingerprint(path: Path) -> tuple[str, str]:
    """(fingerprint, attack) of a trial file `<fingerprint>_trials.txt`."""
    stem = Path(path).stem
    fingerprint = stem[: -len(TRIAL_SUFFIX)] if stem.endswith(TRIAL_SUFFIX) else stem
    return fingerprint, attack_of(fingerprint, Path(path))


def data_lines(path: Path) -> np.ndarray:
    """1-based line number of every data row (non-blank line after the header) of a file."""
    path = Path(path)
    stat = path.stat()
    return _data_lines(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _data_lines(path: str, size: int, mtime_ns: int) -> np.ndarray:  # size, mtime: the cache key
    data = np.fromfile(path, dtype=np.uint8)
    # line ends as Python's universal newlines see them: \n, \r\n and a lone \r
    lone_cr = (data == ord("\r")) & np.append(data[1:] != ord("\n"), True)
    ends = np.flatnonzero((data == ord("\n")) | lone_cr)
    if len(data) and data[-1] != ord("\n"):
        ends = np.append(ends, len(data))  # a last line without a newline
    starts = np.concatenate([[0], ends[:-1] + 1])
    visible = np.concatenate([[0], np.cumsum(~np.isin(data, list(b" \t\r\v\f")), dtype=np.int64)])
    non_blank = visible[ends] > visible[starts]
    return (np.flatnonzero(non_blank) + 1)[1:]  # the first non-blank line is the header


def line_of(path: Path, row: int) -> int:
    """1-based line number of data row `row`, counting the header and skipping blank lines."""
    lines = data_lines(path)
    return int(lines[row]) if row < len(lines) else row + 2


_BOOLEAN_WORDS = pa.array(TRUE_VALUES + FALSE_VALUES)


def parse_booleans(values, path: Path, column: str) -> np.ndarray:
    """`True`/`False`/`1`/`0` strings to a bool array; anything else names file and line."""
    values = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, pa.string())
    found = pc.index_in(values, value_set=_BOOLEAN_WORDS)
    if found.null_count:
        row = int(np.flatnonzero(found.is_null().to_numpy(zero_copy_only=False))[0])
        raise StageError(f"{path}:{line_of(path, row)}: column {column} has {values[row].as_py()!r}; "
                         f"expected True/False or 1/0")
    return found.to_numpy(zero_copy_only=False) < len(TRUE_VALUES)


def check_unique_trials(protocol: TrialProtocol, fp_index: np.ndarray, utt_index: np.ndarray,
                        rows: np.ndarray | None = None) -> None:
    """Error on the first repeated (fingerprint, utterance) pair, given their integer ids.

    `rows`: the protocol row of each id (default: 0, 1, 2, ...).
    """
    keys = fp_index.astype(np.int64) * (int(utt_index.max(initial=0)) + 1) + utt_index
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    repeated = np.flatnonzero(first[inverse] != np.arange(len(keys)))
    if len(repeated):
        rows = np.arange(len(keys)) if rows is None else rows
        row = int(rows[repeated[0]])
        original = int(rows[first[inverse[repeated[0]]]])
        raise StageError(f"{protocol.path}:{line_of(protocol.path, row)}: duplicate trial "
                         f"({protocol.fingerprints[row].as_py()}, {protocol.files[row].as_py()}) "
                         f"(first at line {line_of(protocol.path, original)})")


def folder_state(directory: Path, trials: bool = False) -> tuple:
    """(name, size, mtime) of a protocol folder's files: a cache key that changes with them."""
    state = []
    for path in protocol_files(directory, trials=trials):
        stat = path.stat()
        state.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(state)


def protocol_files(directory: Path, suffix: str = ".txt", trials: bool = False) -> list[Path]:
    """The enrollment (or trial) protocol files of a folder, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        raise StageError(f"{directory}: protocol folder not found")
    paths = sorted(p for p in directory.glob(f"*{suffix}")
                   if p.stem.endswith(TRIAL_SUFFIX) == trials)
    if not paths:
        kind = "trial (<ATK>-<condition>_trials.txt)" if trials else "enrollment (<ATK>-<condition>.txt)"
        raise StageError(f"{directory}: no {kind} protocol files")
    return paths
