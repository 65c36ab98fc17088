"""Embedding matrices, always stored with the utterance ids of their rows.

`<name>.npy` (float32, one row per utterance) has a companion `<name>.ids.tsv` with header
`ATK<TAB>FileName` and one line per row, so a matrix can always be joined back to the
protocol by key. The ids file is renamed into place last.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import StageError
from .files import atomic_path, write_text

IDS_SUFFIX = ".ids.tsv"


def ids_path(npy_path: Path) -> Path:
    return Path(npy_path).with_suffix(IDS_SUFFIX)


def save_embeddings(path: Path, embeddings: np.ndarray, ids: list[tuple[str, str]]) -> list[Path]:
    """Write `<path>` (.npy) and its ids file; returns both paths."""
    if len(ids) != len(embeddings):
        raise ValueError("one id per embedding row")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(embeddings, dtype=np.float32))
    write_text(ids_path(path), "ATK\tFileName\n" + "".join(f"{a}\t{f}\n" for a, f in ids))
    return [Path(path), ids_path(path)]


def load_embeddings(path: Path, stage_hint: str) -> tuple[np.ndarray, list[str]]:
    """Read a matrix and the key `<ATK>\t<FileName>` of each row (the lines of its ids file).

    A missing or inconsistent pair tells which stage to run (`stage_hint`).
    """
    path = Path(path)
    ids_file = ids_path(path)
    if not path.is_file() or not ids_file.is_file():
        missing = path if not path.is_file() else ids_file
        raise StageError(f"{missing}: not found; run {stage_hint} first")
    embeddings = np.load(path)
    keys = ids_file.read_text().splitlines()[1:]
    if len(keys) != len(embeddings):
        raise StageError(f"{ids_file}: does not match {path.name} ({len(keys)} ids, {len(embeddings)} rows); "
                         f"run {stage_hint} again")
    return embeddings, keys
