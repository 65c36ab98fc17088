"""Identities of input and output files, as the stage records hold them.

- `file_digest`: SHA-256 of a file's content (protocols, checkpoints, outputs), computed once
  per process for a given size and modification time;
- `stat_identity`: size and modification time, as `make` sees a file;
- `audio_identity`: one digest of the (attack, file, size, modification time) of many audio
  files; the listing behind it is kept (`LISTINGS`) so that a change can be named file by
  file (`provenance` writes it beside the record).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Iterable

_digests: dict[tuple, str] = {}
# listings (one line per file) behind an identity's digest entries, by digest
LISTINGS: dict[str, str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file, computed once per process for a given size and mtime."""
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        with open(path, "rb") as handle:
            _digests[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _digests[key]


def stat_identity(path: Path) -> dict:
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def listing_digest(lines: list[str]) -> str:
    """Digest of a listing of file identities (one line each); the listing is kept to explain changes."""
    text = "".join(f"{line}\n" for line in lines)
    value = hashlib.sha256(text.encode()).hexdigest()
    LISTINGS[value] = text
    return value


def audio_identity(files: Iterable[tuple[tuple[str, str], Path]]) -> str:
    """Digest of (attack, file, size, modification time) of every audio file ((attack, file), path).

    A replaced or repaired file changes it; no audio is read. A missing file counts as such,
    so a file that appears later changes it too. Where the corpus lives is not part of it: a
    copy that keeps the files' times is the same input."""
    lines = []
    for key, path in sorted({key: str(path) for key, path in files}.items()):
        try:
            stat = os.stat(path)
            lines.append(f"{key[0]}/{key[1]}\t{stat.st_size} bytes, mtime_ns {stat.st_mtime_ns}")
        except OSError:
            lines.append(f"{key[0]}/{key[1]}\tmissing")
    return listing_digest(lines)
