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


def _named(suffix: str) -> property:
    """The output `<output_dir>/<system><suffix>`."""
    return property(lambda self: self.output_dir / f"{self.system}{suffix}")


@dataclass(frozen=True)
class Paths:
    output_dir: Path
    system: str

    @classmethod
    def of(cls, cfg) -> "Paths":
        return cls(Path(cfg["output_dir"]), cfg["system"])

    training_dir = _named("_training")
    enrollment_dir = _named("_embeddings")
    fingerprint_csv = _named("_fingerprint_avg_emb.csv")
    trial_embeddings = _named("_protocol_trials.npy")
    evaluation_csv = _named("_evaluation.csv")
    evaluation_arrow = _named("_evaluation.arrow")  # the columns stage 5 reads, Arrow IPC, same rows
    eer_dir = _named("_EERs_pooled")
    skipped_csv = _named("_skipped.csv")
    records_dir = _named("_records")

    def enrollment(self, fingerprint: str) -> Path:
        return self.enrollment_dir / f"{fingerprint}.npy"

    def record(self, stage: int) -> Path:
        return self.records_dir / f"stage{stage}.json"

    def lock(self, stage: int) -> Path:
        return self.records_dir / f".stage{stage}.lock"

    work_root = property(lambda self: self.output_dir / f".{self.system}_work")
    staging_root = property(lambda self: self.output_dir / f".{self.system}_staging")

    def work(self, stage: int) -> Path:
        return self.work_root / f"stage{stage}"

    def staging(self, stage: int) -> Path:
        return self.staging_root / f"stage{stage}"
