"""Outputs on disk: embeddings always with their utterance ids, every file written atomically.

An embedding matrix `<name>.npy` (float32, one row per utterance) has a companion
`<name>.ids.tsv` with header `ATK<TAB>FileName` and one line per row, so a matrix can
always be joined back to the protocol by key. Every write goes to a temporary file in the
same folder and is renamed into place, so a reader never sees a partial file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import StageError

IDS_SUFFIX = ".ids.tsv"


@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def ids_path(npy_path: Path) -> Path:
    return Path(npy_path).with_suffix(IDS_SUFFIX)


def save_embeddings(path: Path, embeddings: np.ndarray, ids: list[tuple[str, str]]) -> None:
    """Write `<path>` (.npy) and its ids file; the ids file is renamed into place last."""
    if len(ids) != len(embeddings):
        raise ValueError("one id per embedding row")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, np.ascontiguousarray(embeddings, dtype=np.float32))
    write_text(ids_path(path), "ATK\tFileName\n" + "".join(f"{a}\t{f}\n" for a, f in ids))


def load_embeddings(path: Path, stage_hint: str) -> tuple[np.ndarray, list[str]]:
    """Read a matrix and the key `<ATK>\t<FileName>` of each row (the lines of its ids file).

    A missing or inconsistent pair tells which stage to run.
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
