"""Every stage of the pipeline, declared once.

A declaration names the stage's number, its script, what it does, the config keys its body
reads (`params`), the stages whose outputs it reads (`upstream`), and its body. The scripts
(`registry.main(N)`), the command line's `--help`, the provenance records ("which config
values make this stage out of date"), every hint ("run stage 3 (trials_embedding_extraction.py)
first") and the tests read this table. Adding a stage, or a key to a stage, is one edit here.

Bodies and identity functions are named as `module:function` and imported only when the
stage runs, so that stages 2, 4 and 5 start without importing torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

# keys every stage reads: where its outputs go, and under which name
WHERE = ("system", "output_dir")
# model keys of the extraction stages; `device`, `num_workers`, `chunk_size` decide how the
# work is done, never what it gives, and are not part of a record's identity
MODEL = ("model_path", "model_config", "input_policy", "batch_size", "precision", "on_error", "max_seconds",
         "device", "num_workers", "chunk_size", "exact_batching")
EVALUATION = ("known_attacks", "unknown_filter", "dcf_operating_points", "bootstrap_resamples", "bootstrap_seed")


@dataclass(frozen=True)
class Stage:
    number: int
    script: str
    title: str  # one line: what the stage writes, from what
    params: tuple[str, ...]
    upstream: tuple[int, ...]
    body: str  # "module:function" taking a runner Context, returning a StageResult
    inputs: str | None = None  # "module:function" cfg -> identities of the files it reads no stage wrote
    # may read its main input without any upstream record (a file made elsewhere)
    standalone_input: str | None = None

    @property
    def hint(self) -> str:
        return f"stage {self.number} ({self.script})"

    def load(self, attribute: str = "body") -> Callable:
        module, _, function = getattr(self, attribute).partition(":")
        return getattr(importlib.import_module(module), function)


STAGES: dict[int, Stage] = {s.number: s for s in [
    Stage(0, "train_model.py",
          "the trained embedding extractor (best.pth for model_path, last.pt, history.csv)",
          WHERE + ("model_config", "database_path", "train_protocol", "train_audio", "dev_protocol", "dev_fraction",
                   "train_target", "train", "precision", "on_error", "device"), (),
          "sourcetrace.training.stage:run", "sourcetrace.training.stage:inputs"),
    Stage(1, "fingerprint_embedding_extraction.py",
          "embeddings of the enrollment utterances, one matrix per fingerprint",
          WHERE + MODEL + ("database_path", "enroll_protocol_dir", "enroll_audio"), (),
          "sourcetrace.stages.enroll:run", "sourcetrace.stages.enroll:inputs"),
    Stage(2, "create_fingerprint_avg_emb_csv.py",
          "the fingerprints: the mean of each fingerprint's enrollment embeddings",
          WHERE + ("enroll_protocol_dir", "on_error"), (1,),
          "sourcetrace.stages.fingerprints:run", "sourcetrace.stages.fingerprints:inputs"),
    Stage(3, "trials_embedding_extraction.py",
          "embeddings of every distinct trial utterance, once",
          WHERE + MODEL + ("database_path", "trial_protocol_dir", "trial_audio", "reference_trial_file"), (),
          "sourcetrace.stages.trials:run", "sourcetrace.stages.trials:inputs"),
    Stage(4, "cosine_sim.py",
          "cosine score of every trial row of the known attacks' fingerprints",
          WHERE + ("trial_protocol_dir", "known_attacks"), (2, 3),
          "sourcetrace.stages.score:run", "sourcetrace.stages.score:inputs"),
    Stage(5, "compute_eer_pooled.py",
          "pooled EERs of the known and unknown scenarios by ATK, AM and VM, and the wider evaluation",
          WHERE + EVALUATION, (4,),
          "sourcetrace.stages.pool:run", "sourcetrace.stages.pool:inputs", standalone_input="evaluation_csv"),
]}


def closure(number: int) -> list[int]:
    """Every stage `number` depends on, directly or not, in ascending order."""
    seen: set[int] = set()
    todo = list(STAGES[number].upstream)
    while todo:
        u = todo.pop()
        if u not in seen:
            seen.add(u)
            todo += STAGES[u].upstream
    return sorted(seen)


def main(number: int, argv: list[str] | None = None) -> int:
    """Entry point of every stage script."""
    from .cli import run
    return run(STAGES[number], argv)
