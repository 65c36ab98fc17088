"""What the two extraction stages (1 and 3) share: the extractor, audio paths and identities."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from ..errors import StageError
from ..results import Skip

log = logging.getLogger("sourcetrace")


def audio_path(template: str, database_path: str, attack: str, file: str) -> Path:
    return Path(template.format(database_path=database_path, attack=attack, file=file))


def audio_identity(utterances) -> str:
    """Digest of (attack, file, size, modification time) of every audio file, as `make` sees them.

    A replaced or repaired file changes it; no audio is read. A missing file counts as such,
    so a file that appears later makes the stage out of date too. Where the corpus lives is
    not part of it: a copy that keeps the files' times is the same input."""
    h = hashlib.sha256()
    for key, path in sorted({u.key: str(u.path) for u in utterances}.items()):
        try:
            stat = os.stat(path)
            h.update(f"{key[0]}\t{key[1]}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{key[0]}\t{key[1]}\tmissing\n".encode())
    return h.hexdigest()


def model_identity(cfg) -> dict:
    """The checkpoint's SHA-256; None when the file is gone (a stage that only reads this
    stage's outputs then trusts the recorded one: it does not need the checkpoint)."""
    from ..provenance import file_digest
    path = Path(cfg["model_path"])
    return {"checkpoint_sha256": file_digest(path) if path.is_file() else None}


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
                     max_seconds=cfg["max_seconds"], world=ctx.world, exact_batching=cfg["exact_batching"],
                     signature=f"{Path(cfg['model_path']).resolve()}:{cfg['model_config']}")


def skip_of(stage: int, utterance, reason: str) -> Skip:
    return Skip(stage, str(utterance.protocol), utterance.line, utterance.attack, utterance.file, reason)
