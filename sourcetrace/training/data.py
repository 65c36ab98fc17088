"""Training data: protocol rows, the dev hold-out, audio checks and the cropping dataset.

A training protocol is ASVspoof-style text, one utterance a line, five whitespace-separated
columns `SPEAKER FILE - ATTACK LABEL` (Mini-STOPA's `protocols_train/train.txt`), with or
without a header line naming them.
The class of a row is its ATTACK or its LABEL column (`train_target`).

Every random choice is a function of the seed alone (and of the epoch and the utterance
index for crops), never of a process-wide generator, so a resumed run, a run with another
number of DataLoader workers and every rank of a distributed run draw the same data.
"""
from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import AudioError, decode_audio, load_audio
from ..errors import StageError
from .. import protocols
from ..protocols import read_lines, token_rows

COLUMNS = ("SPEAKER", "FILE", "-", "ATTACK", "LABEL")
log = logging.getLogger("sourcetrace")


@dataclass(frozen=True)
class TrainRow:
    """One protocol line; `line` is 1-based in `protocol`."""

    protocol: Path
    line: int
    speaker: str
    file: str
    attack: str
    label: str

    @property
    def where(self) -> str:
        return f"{self.protocol}:{self.line}"

    def target(self, train_target: str) -> str:
        return self.attack if train_target == "attack" else self.label


def read_protocol(path: str | Path) -> list[TrainRow]:
    """Parse a training (or dev) protocol; a row without five columns is an error naming its line.

    A first line naming the columns (`SPEAKER FILE - ATTACK LABEL`, any case, or with
    `FileName`/`ATK` as the other protocols spell them) is a header and is said to be one."""
    path = Path(path)
    lines = read_lines(path)
    first = 1
    if lines and _is_header(lines[0].split()):
        log.info("%s:1: read as a header line (%s)", path, lines[0].strip())
        lines, first = lines[1:], 2
    rows = [TrainRow(path, number, f[0], f[1], f[3], f[4])
            for number, f in token_rows(path, lines, first, len(COLUMNS), f"({' '.join(COLUMNS)})")]
    if not rows:
        raise StageError(f"{path}: no rows")
    return rows


def _is_header(tokens: list[str]) -> bool:
    names = [t.lower() for t in tokens]
    return len(names) == len(COLUMNS) and names[1] in ("file", "filename") and names[3] in ("attack", "atk")


def dev_split(rows: list[TrainRow], fraction: float, seed: int, train_target: str
              ) -> tuple[list[TrainRow], list[TrainRow]]:
    """Seeded stratified hold-out: `round(fraction * n)` rows of every class (at least 1, at
    most n - 1) go to dev. Both parts keep protocol order. A class with fewer than 2 rows
    cannot be split: an error naming its first row."""
    by_class: dict[str, list[TrainRow]] = defaultdict(list)
    for row in rows:
        by_class[row.target(train_target)].append(row)
    rng = np.random.default_rng(seed)
    held = set()
    for name in sorted(by_class):
        members = by_class[name]
        if len(members) < 2:
            raise StageError(f"{members[0].where}: class {name!r} has {len(members)} utterance; a dev split "
                             f"(dev_fraction) needs at least 2 per class, or set dev_protocol")
        n_dev = min(len(members) - 1, max(1, round(fraction * len(members))))
        held.update((members[i].protocol, members[i].line) for i in rng.permutation(len(members))[:n_dev])
    return ([r for r in rows if (r.protocol, r.line) not in held],
            [r for r in rows if (r.protocol, r.line) in held])


def audio_path(template: str, database_path: str, row: TrainRow) -> Path:
    return protocols.audio_path(template, database_path, row.attack, row.file)


def audio_problem(path: Path) -> str | None:
    """Why the audio file at `path` cannot be trained on (decoding it whole), or None."""
    try:
        if not path.is_file():
            raise AudioError(f"{path}: audio file not found")
        decode_audio(path)
    except AudioError as exc:
        return str(exc)
    return None


def crop(wave: np.ndarray, length: int, rng: np.random.Generator | None) -> np.ndarray:
    """`length` samples: shorter waves repeated, longer ones cut at a random start (at 0
    without `rng`)."""
    if len(wave) < length:
        wave = np.tile(wave, math.ceil(length / len(wave)))
    start = 0 if rng is None or len(wave) == length else int(rng.integers(0, len(wave) - length + 1))
    return wave[start:start + length]


class CropDataset(torch.utils.data.Dataset):
    """`(crop (length,), class index)` per utterance; random crops depend on (seed, epoch, index).

    Set `epoch` before each epoch's DataLoader is built (workers get a fresh copy then).
    """

    def __init__(self, paths: list[Path], labels: list[int], length: int, seed: int, random_crop: bool):
        self.paths, self.labels, self.length = paths, labels, length
        self.seed, self.random_crop, self.epoch = seed, random_crop, 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        wave, _ = load_audio(self.paths[index])
        rng = np.random.default_rng([self.seed, self.epoch, index]) if self.random_crop else None
        return torch.from_numpy(np.ascontiguousarray(crop(wave, self.length, rng))), self.labels[index]
