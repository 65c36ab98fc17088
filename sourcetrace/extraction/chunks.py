"""The work folder of one extraction: finished chunks, kept until the outputs are committed.

Layout: `<work_root>/<key>/chunk_<k>.npz`, one file per finished chunk k of the plan, where
`<key>` is a digest of everything that determines the chunks' contents (model, policy,
sizes, device type, precision, utterances; not the number of ranks, so that any world size
resumes any other's work). A chunk holds the utterance indices of its batches, their
embedding rows (NaN where failed) and the reasons of its failures. Every chunk file is
written beside its name and renamed into place, so a killed process leaves at most a
`.part` file, which the next run removes.
"""
from __future__ import annotations

import errno
import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np

from ..store import atomic_path
from .records import ExtractionError

_CHUNK = re.compile(r"chunk_(\d{6})\.npz")


class ChunkStore:
    """Finished chunks of one extraction in the folder `work`."""

    def __init__(self, work: Path):
        self.work = Path(work)

    @classmethod
    def for_work(cls, work_root: Path, identity: list) -> "ChunkStore":
        """The store under `work_root` for work described by `identity` (JSON-serialisable)."""
        key = hashlib.sha256(json.dumps(identity).encode()).hexdigest()[:16]
        return cls(Path(work_root) / key)

    def prepare(self) -> None:
        """Create the folder; remove `.part` files a killed run left (call before any writer starts)."""
        self.work.mkdir(parents=True, exist_ok=True)
        for stale in self.work.glob(".*.part"):
            stale.unlink(missing_ok=True)

    def path(self, k: int) -> Path:
        return self.work / f"chunk_{k:06d}.npz"

    def finished(self) -> set[int]:
        """Numbers of the chunks whose file is in place."""
        if not self.work.is_dir():
            return set()
        return {int(m.group(1)) for p in self.work.iterdir() if (m := _CHUNK.fullmatch(p.name))}

    def write(self, k: int, indices: list[int], rows: np.ndarray, failed: dict[int, str]) -> None:
        """Write chunk k in one rename; a full disk is an `ExtractionError` saying the run resumes."""
        try:
            with atomic_path(self.path(k)) as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, indices=np.asarray(indices, dtype=np.int64), rows=rows,
                             failed=json.dumps({str(i): v for i, v in failed.items()}))
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise ExtractionError(f"{self.work}: disk full while writing extraction work; free some space and "
                                  f"run again: it resumes from the {len(self.finished())} finished chunk(s); "
                                  f"the previous outputs are unchanged") from None

    def load(self, k: int) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
        """(utterance indices, embedding rows, failures) of chunk k."""
        path = self.path(k)
        try:
            with np.load(path) as z:
                failed = {int(i): v for i, v in json.loads(str(z["failed"])).items()}
                return z["indices"], z["rows"], failed
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise ExtractionError(f"{path}: unreadable extraction chunk ({exc}); delete it and run again") from None
