"""Checkpoints of a training run: `best.pth` for the five stages, `last.pt` to resume.

`best.pth` is in the format `models.load_model` reads with `strict=True`: AASIST a plain
state dict (as clovaai/aasist saves), ResNet-34 (and SSL-AASIST) the ASVspoof 5 toolkit's
dict with the state dict under `model` (plus `epochs`, `name`, `config` and `classes`). Both get the sorted class
list beside them, one class a line: `best.classes.txt` (line i = output i).

`last.pt` holds everything a resumed run needs to continue bitwise: model, optimizer and
scheduler states, the finished epoch, the history, the best epoch so far and every RNG state
(torch CPU and CUDA, numpy's and Python's global generators), plus its key: the stage identity's digest and the number of processes (the work folder is
keyed by the same identity, so a changed config or input never finds it). Both load with `weights_only=True`.
"""
from __future__ import annotations

import io
import logging
import random
from pathlib import Path

import numpy as np
import torch

from ..errors import StageError
from ..store import atomic_path

log = logging.getLogger(__name__)
HEAD_PREFIX = {"AASIST": "out_layer.", "ResNet34": "output.", "SSL_AASIST": "out_layer."}


def classes_path(checkpoint: Path) -> Path:
    return Path(checkpoint).with_suffix(".classes.txt")


def _save(obj, path: Path) -> None:
    # through a buffer: torch.save names the zip archive inside after the file it writes,
    # and the temporary name differs from run to run
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def save_best(path: Path, arch: str, state: dict, classes: list[str], epoch: int, system: str,
              model_config: dict) -> None:
    """Write `path` and its classes file beside it."""
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    if arch != "AASIST":
        _save({"model": state, "epochs": epoch, "name": system, "config": dict(model_config),
               "classes": list(classes)}, path)
    else:
        _save(state, path)
    names = classes_path(path)
    with atomic_path(names) as tmp:
        tmp.write_text("".join(f"{c}\n" for c in classes))


def read_classes(checkpoint: Path, head_size: int) -> tuple[list[str], Path] | None:
    """The class list stored with `checkpoint` (its classes file, else its `classes` entry) and
    where it came from; None when it has none. A list that does not fit the head is an error."""
    names = classes_path(checkpoint)
    if names.is_file():
        classes, source = names.read_text().split(), names
    else:
        obj = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if not (isinstance(obj, dict) and isinstance(obj.get("classes"), list)):
            return None
        classes, source = obj["classes"], Path(checkpoint)
    if len(classes) != head_size:
        raise StageError(f"{source}:{min(len(classes), head_size) + 1}: lists {len(classes)} classes, "
                         f"the head of {Path(checkpoint).name} has {head_size}")
    return classes, source


def init_from(model: torch.nn.Module, arch: str, model_config: dict, path: Path, classes: list[str],
              with_head: bool) -> None:
    """Load the weights of checkpoint `path` into `model` (`train.init`).

    With `with_head` the checkpoint's head must have the training classes, in order; without,
    its head is left out and the model's freshly drawn head kept.
    """
    import models
    try:
        source = models.load_model(model_config, path)
    except models.CheckpointError as exc:
        raise StageError(f"train.init: {exc}") from None
    state = source.state_dict()
    head_size = type(source).num_classes_in(state)
    if with_head:
        if head_size != len(classes):
            raise StageError(f"{path}: its head has {head_size} classes, the training protocol has "
                             f"{len(classes)} ({', '.join(classes)}); set train.init_head=false for a new head")
        stored = read_classes(path, head_size)
        if stored is not None:
            for line, (theirs, ours) in enumerate(zip(stored[0], classes), start=1):
                if theirs != ours:
                    raise StageError(f"{stored[1]}:{line}: class {theirs!r}, the training protocol's class "
                                     f"{line} is {ours!r}")
    else:
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX[arch])}
    model.load_state_dict(state, strict=with_head)


def rng_state() -> dict:
    np_state = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # a machine with fewer GPUs than the one that saved the state takes the first ones
        # (every epoch reseeds its own generators anyway)
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_last(path: Path, *, key: str, model, optimizer, scheduler, epoch: int, history: list[dict],
              best: dict | None) -> None:
    _save({"key": key, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
           "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history, "best": best,
           "rng": rng_state()}, path)


def load_last(path: Path, key: str) -> dict | None:
    """The saved state when `path` exists and was trained under `key`; else None."""
    if not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a last.pt from another torch version, or damaged: start afresh
        log.warning("%s: not resumable (%s); training starts from the first epoch", path, type(exc).__name__)
        return None
    if not isinstance(state, dict) or state.get("key") != key:
        log.warning("%s: saved by a run with another number of processes; training starts from the first epoch",
                    path)
        return None
    return state


def load_ssl_weights(model: torch.nn.Module, path: Path) -> None:
    """`train.ssl_weights`: a pretrained SSL model's state dict (fairseq, Hugging Face or
    torchaudio names; a dict with it under `model` too) into `model.ssl_model`, strict."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"train.ssl_weights: {path}: file not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # fairseq's own checkpoints hold their config as Python objects
        raise StageError(f"train.ssl_weights: {path}: not a state dict that loads with weights_only=True "
                         f"({type(exc).__name__}); save the state dict alone (see README)") from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    try:
        model.load_ssl_weights(obj)
    except (ValueError, RuntimeError) as exc:
        raise StageError(f"train.ssl_weights: {path}: {str(exc).splitlines()[0]}") from None
