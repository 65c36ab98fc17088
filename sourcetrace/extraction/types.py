"""What the extraction engine reads and returns, and the one error type it raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import StageError


class ExtractionError(StageError):
    """An extraction that cannot go on (unusable audio under `on_error: fail`, disk full, ...).

    The message is one line naming the protocol line and the file where there is one; the
    command line prints it as `error: <message>`."""


@dataclass(frozen=True)
class Utterance:
    """One audio file to embed, with the protocol row that asked for it (for messages)."""

    attack: str
    file: str
    path: Path
    protocol: Path
    line: int  # 1-based line of `protocol`

    @property
    def key(self) -> tuple[str, str]:
        return (self.attack, self.file)

    @property
    def where(self) -> str:
        """`<protocol>:<line>`, the prefix of every message about this utterance."""
        return f"{self.protocol}:{self.line}"


@dataclass
class Extraction:
    """Embeddings in utterance order; rows of failed utterances are NaN and listed in `failed`
    (utterance index -> reason); every other row is a finite embedding."""

    embeddings: np.ndarray
    failed: dict[int, str] = field(default_factory=dict)


def fail(utterances: list[Utterance], failed: dict[int, str], i: int, reason: str, on_error: str) -> None:
    """Record that utterance `i` is unusable: an error under `on_error: fail`, else a skip."""
    if on_error == "fail":
        raise ExtractionError(f"{utterances[i].where}: {reason}")
    failed[i] = reason
