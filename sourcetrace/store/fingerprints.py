"""The fingerprint CSV of stage 2: header `file,0,1,...,D-1`, one row per fingerprint."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from ..errors import StageError
from ..registry import STAGES
from .files import write_text


def write_fingerprints(path: Path, names: list[str], means: list[np.ndarray]) -> None:
    """Values as Python's `str(float32)`, the shortest text that reads back to the same float32."""
    dim = means[0].shape[0]
    lines = ["file," + ",".join(map(str, range(dim)))]
    lines += [name + "," + ",".join(str(v) for v in mean) for name, mean in zip(names, means)]
    write_text(path, "\n".join(lines) + "\n")


def read_fingerprints(path: Path) -> tuple[list[str], np.ndarray]:
    if not path.is_file():
        raise StageError(f"{path}: not found; run {STAGES[2].hint} first")
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={"file": pa.string()}))
    if table.column_names[0] != "file":
        raise StageError(f"{path}:1: expected the header 'file,0,1,...'")
    names = table.column("file").to_pylist()
    matrix = np.column_stack([table.column(i).to_numpy().astype(np.float32) for i in range(1, table.num_columns)])
    return names, matrix
