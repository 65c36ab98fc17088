"""Where every output of a system lives: the one place that names output paths.

All under `output_dir`, named after `system`:

| stage | output |
| --- | --- |
| 0 | `<system>_training/` (`best.pth`, `last.pt`, `history.csv`) |
| 1 | `<system>_embeddings/<fingerprint>.npy` + `.ids.tsv` |
| 2 | `<system>_fingerprint_avg_emb.csv` |
| 3 | `<system>_protocol_trials.npy` + `.ids.tsv` |
| 4 | `<system>_evaluation.csv` + `<system>_evaluation.arrow` |
| 5 | `<system>_EERs_pooled/` |
| all | `<system>_records/stage<N>.json`, `<system>_skipped.csv` |

Hidden folders beside them: `.<system>_work/stage<N>/` (resumable work, kept across failed
runs) and `.<system>_staging/stage<N>/` (a run's new outputs until they are committed).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    output_dir: Path
    system: str

    @classmethod
    def of(cls, cfg) -> "Paths":
        return cls(Path(cfg["output_dir"]), cfg["system"])

    def _named(self, suffix: str) -> Path:
        return self.output_dir / f"{self.system}{suffix}"

    @property
    def training_dir(self) -> Path:
        return self._named("_training")

    @property
    def enrollment_dir(self) -> Path:
        return self._named("_embeddings")

    def enrollment(self, fingerprint: str) -> Path:
        return self.enrollment_dir / f"{fingerprint}.npy"

    @property
    def fingerprint_csv(self) -> Path:
        return self._named("_fingerprint_avg_emb.csv")

    @property
    def trial_embeddings(self) -> Path:
        return self._named("_protocol_trials.npy")

    @property
    def evaluation_csv(self) -> Path:
        return self._named("_evaluation.csv")

    @property
    def evaluation_arrow(self) -> Path:
        """Columnar copy of what stage 5 reads from the evaluation CSV (Arrow IPC, same rows)."""
        return self._named("_evaluation.arrow")

    @property
    def eer_dir(self) -> Path:
        return self._named("_EERs_pooled")

    @property
    def skipped_csv(self) -> Path:
        return self._named("_skipped.csv")

    @property
    def records_dir(self) -> Path:
        return self._named("_records")

    def record(self, stage: int) -> Path:
        return self.records_dir / f"stage{stage}.json"

    def lock(self, stage: int) -> Path:
        return self.records_dir / f".stage{stage}.lock"

    def work(self, stage: int) -> Path:
        return self.output_dir / f".{self.system}_work" / f"stage{stage}"

    def staging(self, stage: int) -> Path:
        return self.output_dir / f".{self.system}_staging" / f"stage{stage}"
