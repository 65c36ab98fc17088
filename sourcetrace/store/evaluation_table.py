"""The evaluation CSV of stage 4 and its Arrow copy; readers of both.

`<system>_evaluation.csv`: one header, the trial protocol columns as read plus the score
(float32 text; `CosScore` under the `cosine` back-end, `Score` under the others), standard
CSV quoting where a value needs it (a file name with a comma or a quote), none otherwise.
`<system>_evaluation.arrow`: the columns stage 5 needs, same rows: `AbstractModel`, `ATK`,
the IsTarget* labels the trial files have (`IsTargetATK` always), `AcousticModel` and `VocoderModel` when the trial files have them
(dictionary-encoded), `Utterance` (the row's index in stage 3's trial store) and the score.
Stage 5 reads the Arrow copy when stage 4's record shows it intact, else the CSV, which
may also be one made elsewhere (the STOPA authors' published evaluation files).
"""
from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..errors import StageError
from ..registry import STAGES
from ..protocols import FALSE_VALUES, TRUE_VALUES, column_index, parse_booleans

# Every corpus has attacks; a corpus without acoustic-model or vocoder labels (an imported one,
# `sourcetrace.corpus`) has no such columns, and stage 5 then pools and reports the labels present.
REQUIRED_LABELS = ("IsTargetATK",)
OPTIONAL_LABELS = ("IsTargetAcousticModel", "IsTargetVocoderModel", "IsTargetAmArchit", "IsTargetVmArchit")
LABEL_NAMES = ("AcousticModel", "VocoderModel")  # the trial rows' AM and VM names (stage 5's attribution)
SCORE_COLUMNS = ("CosScore", "Score")  # the score's name under `cosine`, under any other back-end


def score_column(backend: str) -> str:
    """The evaluation CSV's score column under `backend`."""
    return SCORE_COLUMNS[0] if backend == "cosine" else SCORE_COLUMNS[1]


def scores_of(table: pa.Table) -> str:
    """The score column a read evaluation table has (`CosScore` or `Score`)."""
    found = [c for c in SCORE_COLUMNS if c in table.column_names]
    if len(found) != 1:
        raise StageError(f"the evaluation needs exactly one score column ({' or '.join(SCORE_COLUMNS)})")
    return found[0]
_SPECIAL = r'[,"\r\n]'


def _quoted(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    text = pc.cast(column, pa.string())
    needs = pc.match_substring_regex(text, _SPECIAL)
    return pc.if_else(needs, pc.binary_join_element_wise('"', pc.replace_substring(text, '"', '""'), '"', ""), text)


def csv_bytes(table: pa.Table) -> bytes:
    """Rows of `table` as CSV text without header; quotes only the values that need them."""
    strings = [c for c in table.columns if pa.types.is_string(c.type)]
    if not any(pc.any(pc.match_substring_regex(c, _SPECIAL)).as_py() for c in strings):
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, write_options=pacsv.WriteOptions(include_header=False, quoting_style="none"))
        return buffer.getvalue()
    lines = pc.binary_join_element_wise(*[_quoted(c) for c in table.columns], ",")
    return ("\n".join(lines.to_pylist()) + "\n").encode()


class EvaluationWriter:
    """Appends scored trial tables to the CSV and the Arrow copy; a background thread writes
    one table while the caller prepares the next (at most one in flight)."""

    def __init__(self, csv_path: Path, arrow_path: Path, header: list[str], score: str = SCORE_COLUMNS[0]):
        self._csv = open(csv_path, "wb")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow([*header, score])
        self._csv.write(buffer.getvalue().encode())
        self._arrow_path, self._arrow = arrow_path, None
        self._pool = ThreadPoolExecutor(1)
        self._pending = None
        self._dictionaries: dict[str, dict[str, int]] = {}

    def _encoded(self, name: str, column) -> pa.DictionaryArray:
        """`column` coded into this file's dictionary of `name`, which only ever grows (the Arrow
        file format allows dictionary deltas, not replacements)."""
        encoded = pc.dictionary_encode(column).combine_chunks()
        codes = self._dictionaries.setdefault(name, {})
        remap = np.array([codes.setdefault(v, len(codes)) for v in encoded.dictionary.to_pylist()], dtype=np.int32)
        indices = remap[encoded.indices.to_numpy(zero_copy_only=False)]
        return pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), pa.array(list(codes), pa.string()))

    def write(self, table: pa.Table, columns: pa.Table) -> None:
        for name in LABEL_NAMES:
            if name in columns.column_names:
                columns = columns.set_column(columns.column_names.index(name), name,
                                             self._encoded(name, columns.column(name)))
        if self._pending is not None:
            self._pending.result()
        if self._arrow is None:
            self._arrow = pa.ipc.new_file(str(self._arrow_path), columns.schema,
                                          options=pa.ipc.IpcWriteOptions(emit_dictionary_deltas=True))
        self._pending = self._pool.submit(self._write, table, columns)

    def _write(self, table: pa.Table, columns: pa.Table) -> None:
        self._csv.write(csv_bytes(table))
        self._arrow.write_table(columns)

    def close(self) -> None:
        try:
            if self._pending is not None:
                self._pending.result()
        finally:
            self._pool.shutdown()
            if self._arrow is not None:
                self._arrow.close()
            self._csv.close()


def _label_types(header: list[str]) -> dict:
    return {c: pa.bool_() for c in (*REQUIRED_LABELS, *OPTIONAL_LABELS) if c in header}


def read_evaluation_csv(path: Path) -> pa.Table:
    """Columns `ATK`, `AbstractModel` (when present), the IsTarget* labels, the score
    (`CosScore` or `Score`), and `FileName`, `AcousticModel`, `VocoderModel` when present.

    Attacks, fingerprints and names come as dictionaries and targets as booleans, so 30
    million rows fit in little memory; scores are read back as the float32 values written.
    """
    if not path.is_file():
        raise StageError(f"{path}: not found; run {STAGES[4].hint} first")
    with open(path, newline="") as handle:
        header = next(csv.reader(handle), [])
    attack_column = header[column_index(header, "ATK", 4, path)]
    scores = [c for c in SCORE_COLUMNS if c in header]
    missing = [c for c in REQUIRED_LABELS if c not in header] + ([] if scores else [" or ".join(SCORE_COLUMNS)])
    if missing:
        raise StageError(f"{path}:1: missing column(s) {', '.join(missing)}")
    if len(scores) > 1:
        raise StageError(f"{path}:1: two score columns ({', '.join(scores)}); expected one")
    score = scores[0]
    dictionary = pa.dictionary(pa.int32(), pa.string())
    types = {attack_column: dictionary, score: pa.float32(), **_label_types(header)}
    for name in ("AbstractModel", "FileName", *LABEL_NAMES):
        if name in header and name != attack_column:
            types[name] = dictionary
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=list(types), column_types=types,
            true_values=list(TRUE_VALUES), false_values=list(FALSE_VALUES)))
    except pa.ArrowInvalid:  # find and name the offending line
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=list(types), column_types={c: pa.string() for c in types}))
        for column in _label_types(header):
            parse_booleans(table.column(column), path, column)
        raise StageError(f"{path}: {score} must be a number on every row") from None
    return table.rename_columns(["ATK" if c == attack_column else c for c in table.column_names])


def read_evaluation_arrow(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_file(source).read_all()
    missing = [c for c in REQUIRED_LABELS if c not in table.column_names]
    if missing:
        raise StageError(f"{path}: missing column(s) {', '.join(missing)} (not in the trial protocols)")
    return table
