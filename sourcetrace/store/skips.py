"""The skip manifest `<system>_skipped.csv`: every utterance left out under `on_error: skip`.

One row per skip of every stage's current outputs (stage, protocol, line, attack, file,
reason), standard CSV quoting. A stage replaces its own rows when it commits; later stages
read the rows of the stages they depend on from here.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

from ..stage_result import SKIP_COLUMNS, Skip
from .files import write_text


def read_skips(path: Path, stage: int | None = None) -> list[Skip]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    skips = [Skip(int(r["stage"]), r["protocol"], int(r["line"]) if r["line"] else None, r["attack"], r["file"],
                  r["reason"]) for r in rows]
    return [s for s in skips if stage is None or s.stage == stage]


def skips_digest(skips: list[Skip]) -> str:
    """Identity of one stage's skips, kept in its record (the rows themselves live here)."""
    return hashlib.sha256(json.dumps([s.row() for s in skips]).encode()).hexdigest()


def manifest_text(existing: list[Skip], stage: int, skips: list[Skip]) -> str | None:
    """The manifest after `stage` replaced its rows; None when no row is left."""
    rows = sorted([s for s in existing if s.stage != stage] + list(skips), key=lambda s: s.stage)
    if not rows:
        return None
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, SKIP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(s.row() for s in rows)
    return buffer.getvalue()


def write_manifest(path: Path, text: str | None) -> None:
    if text is None:
        Path(path).unlink(missing_ok=True)
    else:
        write_text(path, text)
