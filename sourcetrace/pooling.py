"""Which evaluation rows stage 5 pools, as arrays: the STOPA pooling rules' input side.

Rows of the current known attacks' fingerprints (all enrollment sizes, both conditions)
are pooled; a fingerprint's attack is its name up to the first `-`. Each row keeps its
score (float64 of the stored float32), whether its own ATK is known, its target labels and
its fingerprint (as codes into `fingerprint_names`), so metrics can also be grouped by
fingerprint.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .evaluation import LABEL_COLUMNS, EvaluationRows
from .store.evaluation_table import scores_of


def _encoded(column: pa.ChunkedArray) -> pa.DictionaryArray:
    encoded = column.combine_chunks()
    return encoded if pa.types.is_dictionary(encoded.type) else encoded.dictionary_encode()


def _known(names: pa.Array, known: pa.Array, prefix: bool) -> np.ndarray:
    if prefix:
        names = pc.list_element(pc.split_pattern(names, "-", max_splits=1), 0)
    return pc.is_in(names, value_set=known).to_numpy(zero_copy_only=False)


def pool_table(table: pa.Table, known_attacks: list[str]) -> pa.Table:
    """The rows of `table` whose fingerprint is one of the current known attacks' (all rows
    when the table has no `AbstractModel`). Raises ValueError naming a known attack without
    any fingerprint rows."""
    if "AbstractModel" not in table.column_names:
        return table
    known = pa.array(known_attacks, pa.string())
    fps = _encoded(table.column("AbstractModel"))
    fp_known = _known(fps.dictionary, known, prefix=True)
    present = set(pc.list_element(pc.split_pattern(fps.dictionary, "-", max_splits=1), 0).to_pylist())
    absent = [a for a in known_attacks if a not in present]
    if absent:
        raise ValueError(f"known_attacks names {', '.join(absent)}, which has no fingerprint rows here")
    return table.filter(fp_known[fps.indices.to_numpy()])


def fingerprint_codes(table: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Each row's fingerprint as a code into the returned names (one group `unknown` when the
    table has no `AbstractModel`)."""
    if "AbstractModel" not in table.column_names:  # a file made elsewhere without fingerprint names
        return np.zeros(table.num_rows, dtype=np.int64), ["unknown"]
    fps = _encoded(table.column("AbstractModel"))
    return fps.indices.to_numpy().astype(np.int64), fps.dictionary.to_pylist()


def known_rows(table: pa.Table, known_attacks: list[str]) -> np.ndarray:
    """Whether each row's own ATK is a known attack."""
    attacks = _encoded(table.column("ATK"))
    return _known(attacks.dictionary, pa.array(known_attacks, pa.string()), prefix=False)[attacks.indices.to_numpy()]


def pooled_rows(table: pa.Table, known_attacks: list[str], pooled: bool = False) -> EvaluationRows:
    """The rows of `table` (columns ATK, AbstractModel if any, IsTarget*, CosScore or Score)
    to pool; `pooled`: `table` is already `pool_table`'s output.

    Raises ValueError naming a known attack without any fingerprint rows."""
    if not pooled:
        table = pool_table(table, known_attacks)
    codes, names = fingerprint_codes(table)
    is_known = known_rows(table, known_attacks)
    labels = {name: table.column(col).to_numpy() for name, col in LABEL_COLUMNS.items() if col in table.column_names}
    scores = table.column(scores_of(table)).to_numpy().astype(np.float64)
    return EvaluationRows(scores, is_known, labels, codes, names)
