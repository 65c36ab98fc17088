"""What the two extraction stages (1 and 3) share: the extractor, audio paths and identities."""
from __future__ import annotations

import logging
from pathlib import Path

from ..errors import StageError
from ..stage_result import Skip
from ..store import audio_identity as store_audio_identity, file_digest

log = logging.getLogger("sourcetrace")


def audio_identity(utterances) -> str:
    """`store.audio_identity` of the utterances' audio files."""
    return store_audio_identity((u.key, u.path) for u in utterances)


def extraction_identity(cfg) -> dict:
    """The identity entries of an extraction stage besides its params and protocols: the
    checkpoint's SHA-256 (None when the file is gone: a stage that only reads this stage's
    outputs then trusts the recorded one, it does not need the checkpoint), and `batch_size`
    only under `reference`, the one policy where batches change embeddings."""
    path = Path(cfg["model_path"])
    found = {"checkpoint_sha256": file_digest(path) if path.is_file() else None}
    if cfg["input_policy"] == "reference":
        found["batch_size"] = cfg["batch_size"]
    return found


def build_extractor(ctx):
    # torch is imported here, not at module level: stages 2, 4 and 5 start faster without it
    import models
    from ..extraction import Extractor, resolve_device

    cfg = ctx.cfg
    device = resolve_device(cfg["device"])
    try:
        model = models.load_model(cfg["model_config"], cfg["model_path"], cfg["input_policy"], device)
    except models.CheckpointError as exc:
        raise StageError(str(exc)) from None
    if cfg["input_policy"] == "reference":
        log.warning("input_policy 'reference': whole utterances zero-padded to the longest in each batch "
                    "of %d, as the published STOPA scripts did; embeddings then depend on batch "
                    "neighbours and batch size", cfg["batch_size"])
    log.info("%s: %s on %s, input policy %s", ctx.paths.system, cfg["model_path"], device, cfg["input_policy"])
    return Extractor(model, cfg["input_policy"], cfg["batch_size"], cfg["num_workers"], device,
                     on_error=cfg["on_error"], chunk_size=cfg["chunk_size"], precision=cfg["precision"],
                     max_seconds=cfg["max_seconds"], world=ctx.world, exact_batching=cfg["exact_batching"])


def skip_of(stage: int, utterance, reason: str) -> Skip:
    return Skip(stage, str(utterance.protocol), utterance.line, utterance.attack, utterance.file, reason)
