"""Every stage of the pipeline, declared once.

A declaration names the stage's number, its script, what it does, and what its outputs
depend on, as DVC's `params` and `deps`:

- `params`: the config values its outputs depend on, recorded as they are;
- `reads`: the other config keys its body reads: where outputs go and how the work is done
  (`device`, `num_workers`, `chunk_size`: never what it gives), and where its inputs are
  (`model_path`, protocol folders, audio templates), whose *content* `inputs` identifies;
- `inputs`: `module:function` cfg -> the identities of the files it reads that no stage
  wrote (SHA-256 of protocols and checkpoint, size and time of audio) and the values that
  matter only in some settings (`batch_size` only under `input_policy: reference`);
- `upstream`: the stages whose outputs it may read (`reads_upstream`: which of them it reads
  under a config, e.g. stage 4 reads stage 1 only for back-ends that need the enrollment
  embeddings); `made_elsewhere`: for an upstream stage with no record, the `Paths`
  attribute of the files read instead, as made by another tool;
- `work_key`: the identity entries that key its work folder (chunks, training state); None
  keys it by the whole identity.

The stage's *identity* is `params` + `inputs` (`provenance.identity`); the runner computes
it once, compares it with the record, stores it there, and keys the work folder by its
digest. Nothing else decides whether an output is current. The scripts (`cli.main(N)`),
`--help`, the records, every hint ("run stage 3 (trials_embedding_extraction.py) first")
and the tests read this table.

Bodies and identity functions are named as `module:function` and imported only when the
stage runs, so that stages 2, 4 and 5 start without importing torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable

# keys every stage reads: where its outputs go, and under which name
WHERE = ("system", "output_dir")
# the extraction stages (1, 3): what an embedding depends on ...
EMBEDDING = ("model_config", "input_policy", "precision", "on_error", "max_seconds")
# ... and how the work is done (batch_size: see their `inputs`), never what it gives
EXTRACTING = ("model_path", "batch_size", "device", "num_workers", "chunk_size", "exact_batching", "database_path")
# an embedding cached in stage 1's or 3's work folder depends on these identity entries and
# on its utterance's audio (and, under `reference`, its batch): see `extraction.cache`
EMBEDDING_KEY = ("checkpoint_sha256", "model_config", "input_policy", "precision")
EVALUATION = ("known_attacks", "unknown_filter", "dcf_operating_points", "bootstrap_resamples", "bootstrap_seed")


@dataclass(frozen=True)
class Stage:
    number: int
    script: str
    title: str  # one line: what the stage writes, from what
    params: tuple[str, ...]
    reads: tuple[str, ...]
    upstream: tuple[int, ...]
    body: str  # "module:function" taking a runner Context, returning a StageResult
    inputs: str | None = None  # "module:function" cfg -> identities of inputs no stage wrote
    made_elsewhere: dict[int, str] = field(default_factory=dict)
    work_key: tuple[str, ...] | None = None
    reads_upstream: str | None = None  # "module:function" cfg -> the stages of `upstream` it reads now

    def upstream_for(self, cfg) -> tuple[int, ...]:
        """The upstream stages this stage reads under `cfg` (all of `upstream` unless declared)."""
        return tuple(self.load("reads_upstream")(cfg)) if self.reads_upstream else self.upstream

    @property
    def hint(self) -> str:
        return f"stage {self.number} ({self.script})"

    @property
    def keys(self) -> tuple[str, ...]:
        """Every config key the stage's body may read."""
        return self.params + self.reads

    def load(self, attribute: str = "body") -> Callable:
        module, _, function = getattr(self, attribute).partition(":")
        return getattr(importlib.import_module(module), function)


STAGES: dict[int, Stage] = {s.number: s for s in [
    Stage(0, "train_model.py",
          "the trained embedding extractor (best.pth for model_path, last.pt, history.csv)",
          ("model_config", "dev_fraction", "train_target", "precision", "on_error"),
          WHERE + ("database_path", "train_protocol", "train_audio", "dev_protocol", "train", "device"), (),
          "sourcetrace.training.stage:run", "sourcetrace.training.stage:inputs"),
    Stage(1, "fingerprint_embedding_extraction.py",
          "embeddings of the enrollment utterances, one matrix per fingerprint",
          EMBEDDING, WHERE + EXTRACTING + ("enroll_protocol_dir", "enroll_audio"), (),
          "sourcetrace.stages.enroll:run", "sourcetrace.stages.enroll:inputs", work_key=EMBEDDING_KEY),
    Stage(2, "create_fingerprint_avg_emb_csv.py",
          "the fingerprints: the mean of each fingerprint's enrollment embeddings",
          ("on_error",), WHERE + ("enroll_protocol_dir",), (1,),
          "sourcetrace.stages.fingerprints:run", "sourcetrace.stages.fingerprints:inputs",
          made_elsewhere={1: "enrollment_dir"}),
    Stage(3, "trials_embedding_extraction.py",
          "embeddings of every distinct trial utterance, once",
          EMBEDDING, WHERE + EXTRACTING + ("trial_protocol_dir", "trial_audio", "reference_trial_file"), (),
          "sourcetrace.stages.trials:run", "sourcetrace.stages.trials:inputs", work_key=EMBEDDING_KEY),
    Stage(4, "cosine_sim.py",
          "score (cosine or another back-end) of every trial row of the known attacks' fingerprints",
          ("known_attacks", "backend"), WHERE + ("trial_protocol_dir", "asnorm_top_n", "knn_k"), (1, 2, 3),
          "sourcetrace.stages.score:run", "sourcetrace.stages.score:inputs",
          made_elsewhere={1: "enrollment_dir", 2: "fingerprint_csv", 3: "trial_embeddings"},
          reads_upstream="sourcetrace.stages.score:upstream"),
    Stage(5, "compute_eer_pooled.py",
          "pooled EERs of the known and unknown scenarios by ATK, AM and VM, the wider evaluation, "
          "attribution and unknown-source detection",
          EVALUATION, WHERE, (4,),
          "sourcetrace.stages.pool:run", made_elsewhere={4: "evaluation_csv"}),
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
