"""What a stage body hands back to the runner: the outputs it wrote and what it left out."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SKIP_COLUMNS = ("stage", "protocol", "line", "attack", "file", "reason")


@dataclass(frozen=True)
class Skip:
    """One utterance (or fingerprint) left out under `on_error: skip`.

    `line` is the 1-based protocol line, or None when the skip concerns a whole protocol
    file (a fingerprint with no usable enrollment row). `file` is the audio file name, or
    the fingerprint name for a whole-protocol skip.
    """

    stage: int
    protocol: str
    line: int | None
    attack: str
    file: str
    reason: str

    def row(self) -> dict:
        return {"stage": self.stage, "protocol": self.protocol, "line": "" if self.line is None else self.line,
                "attack": self.attack, "file": self.file, "reason": self.reason}


@dataclass
class StageResult:
    """The final paths of every output a stage body wrote (through `Context.output`), the
    utterances it skipped, and work folders to remove once the outputs are committed."""

    outputs: list[Path]
    skipped: list[Skip] = field(default_factory=list)
    work: list[Path] = field(default_factory=list)
