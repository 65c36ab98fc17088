"""The embedding cache of an extraction stage: finished chunks, kept across runs.

The folder is the stage's work folder, named by the digest of the identity entries an
embedding depends on (checkpoint, model config, input policy, precision: see `registry`),
so a cache never serves another model. Inside, each entry is one utterance's embedding (or
the reason it failed), keyed by `utterance_key`: its attack, file, and the size and
modification time of its audio (under `reference` also the members of its batch, whose
padding changes it). A repaired or replaced file, or another batch under `reference`, is a
new key; a label edit or a new protocol file leaves every key alone.

A chunk file `chunk_<digest>.npz` holds the keys of a planned chunk (`members`, in order),
their rows and the failures among them; its name is the digest of its members. A file
whose name, keys, shapes or rows do not match is discarded (and its utterances extracted
again), never trusted. Every file is written beside its name and renamed into place, so a
killed process leaves at most a `.part` file, removed by the next run.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np

from ..store import atomic_path
from .types import ExtractionError, Utterance

log = logging.getLogger(__name__)
_CHUNK = re.compile(r"chunk_([0-9a-f]{24})\.npz")


def audio_key(utterance: Utterance) -> str:
    """`<attack>\\t<file>\\t<size>\\t<mtime_ns>` of the utterance's audio as it is now."""
    stat = os.stat(utterance.path)
    return f"{utterance.attack}\t{utterance.file}\t{stat.st_size}\t{stat.st_mtime_ns}"


def chunk_name(members: list[str]) -> str:
    return "chunk_" + hashlib.sha256("\n".join(members).encode()).hexdigest()[:24] + ".npz"


class EmbeddingCache:
    """Cached embeddings of one model (the folder `work`), by utterance key."""

    def __init__(self, work: Path):
        self.work = Path(work)

    def prepare(self) -> None:
        """Create the folder; remove `.part` files a killed run left (call before any writer starts)."""
        self.work.mkdir(parents=True, exist_ok=True)
        for stale in self.work.glob(".*.part"):
            stale.unlink(missing_ok=True)

    def files(self) -> list[Path]:
        if not self.work.is_dir():
            return []
        return sorted(p for p in self.work.iterdir() if _CHUNK.fullmatch(p.name))

    def has(self, members: list[str]) -> bool:
        return (self.work / chunk_name(members)).is_file()

    def write(self, members: list[str], rows: np.ndarray, failed: dict[int, str]) -> Path:
        """Write one chunk (`failed`: position in `members` -> reason) in one rename; a full
        disk is an `ExtractionError` saying the run resumes."""
        path = self.work / chunk_name(members)
        try:
            with atomic_path(path) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, members=np.asarray(members, dtype=str), rows=rows,
                             failed=json.dumps({str(i): v for i, v in failed.items()}))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise ExtractionError(f"{self.work}: disk full while writing extraction work; free some space and "
                                  f"run again: it resumes from the {len(self.files())} finished chunk(s); "
                                  f"the previous outputs are unchanged") from None
        return path

    def _read(self, path: Path) -> tuple[list[str], np.ndarray, dict[int, str]] | None:
        """The chunk at `path` if it is whole and consistent with its name, else None."""
        try:
            with np.load(path) as z:
                members = [str(m) for m in z["members"]]
                rows = z["rows"]
                failed = {int(i): str(v) for i, v in json.loads(str(z["failed"])).items()}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
            return None
        good = (chunk_name(members) == path.name and rows.ndim == 2 and rows.shape[0] == len(members)
                and all(0 <= i < len(members) for i in failed))
        ok = np.ones(len(members), dtype=bool)
        ok[list(failed)] = False
        if not good or not np.isfinite(rows[ok]).all():
            return None
        return members, rows, failed

    def load(self, dim: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Every cached embedding and failure by utterance key. A chunk that does not match
        its name or the model's embedding size is discarded with a warning."""
        embeddings: dict[str, np.ndarray] = {}
        failures: dict[str, str] = {}
        for path in self.files():
            chunk = self._read(path)
            if chunk is None or chunk[1].shape[1] != dim:
                log.warning("%s: not a chunk of this extraction (damaged, or not matching its name); "
                            "discarded, its utterances are extracted again", path)
                path.unlink(missing_ok=True)
                continue
            members, rows, failed = chunk
            for i, key in enumerate(members):
                if i in failed:
                    failures[key] = failed[i]
                else:
                    embeddings[key] = rows[i]
                    failures.pop(key, None)
        return embeddings, failures

    def compact(self, used: set[str], embeddings: dict[str, np.ndarray], failures: dict[str, str],
                dim: int) -> None:
        """Rewrite the cache as one chunk of the entries in `used` when the others (audio
        since changed, utterances no protocol lists any more) outnumber a tenth of them;
        `embeddings`, `failures`: what `load` returned (the cache as it is on disk now)."""
        stale = (set(embeddings) | set(failures)) - used
        if len(stale) * 10 <= len(used) or len(self.files()) < 2:
            return
        keys = sorted(used & (set(embeddings) | set(failures)))
        rows = np.stack([embeddings.get(k, np.full(dim, np.nan, np.float32)) for k in keys]) if keys else \
            np.zeros((0, dim), np.float32)
        kept = self.write(keys, rows.astype(np.float32), {i: failures[k] for i, k in enumerate(keys) if k in failures})
        for path in self.files():
            if path != kept:
                path.unlink(missing_ok=True)
        log.info("%s: cache compacted to %d entries (%d stale dropped)", self.work, len(keys), len(stale))
