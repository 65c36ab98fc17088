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

from ..evaluation import LABEL_COLUMNS, EvaluationRows


def _encoded(column: pa.ChunkedArray) -> pa.DictionaryArray:
    encoded = column.combine_chunks()
    return encoded if pa.types.is_dictionary(encoded.type) else encoded.dictionary_encode()


def _known(names: pa.Array, known: pa.Array, prefix: bool) -> np.ndarray:
    if prefix:
        names = pc.list_element(pc.split_pattern(names, "-", max_splits=1), 0)
    return pc.is_in(names, value_set=known).to_numpy(zero_copy_only=False)


def pooled_rows(table: pa.Table, known_attacks: list[str]) -> EvaluationRows:
    """The rows of `table` (columns ATK, AbstractModel if any, IsTarget*, CosScore) to pool.

    Raises ValueError naming a known attack without any fingerprint rows."""
    known = pa.array(known_attacks, pa.string())
    if "AbstractModel" in table.column_names:
        fps = _encoded(table.column("AbstractModel"))
        fp_known = _known(fps.dictionary, known, prefix=True)
        present = set(pc.list_element(pc.split_pattern(fps.dictionary, "-", max_splits=1), 0).to_pylist())
        absent = [a for a in known_attacks if a not in present]
        if absent:
            raise ValueError(f"known_attacks names {', '.join(absent)}, which has no fingerprint rows here")
        keep = fp_known[fps.indices.to_numpy()]
        table = table.filter(keep)
        fps = _encoded(table.column("AbstractModel"))
        codes, names = fps.indices.to_numpy().astype(np.int64), fps.dictionary.to_pylist()
    else:  # a file made elsewhere without fingerprint names: one group
        codes, names = np.zeros(table.num_rows, dtype=np.int64), ["unknown"]
    attacks = _encoded(table.column("ATK"))
    is_known = _known(attacks.dictionary, known, prefix=False)[attacks.indices.to_numpy()]
    labels = {name: table.column(col).to_numpy() for name, col in LABEL_COLUMNS.items() if col in table.column_names}
    scores = table.column("CosScore").to_numpy().astype(np.float64)
    return EvaluationRows(scores, is_known, labels, codes, names)
