"""Embedding networks of the toolkit and their checkpoint loading.

Every model is an `nn.Module` built as `Model(model_config, num_classes, input_policy)` whose
`forward(waves)` maps a batch of equal-length 16 kHz waveforms `(B, T)` to
`(embedding (B, D), logits (B, C))`, and which exposes `embedding_dim`, `min_samples`
(shortest waveform it accepts) and `fit_input(wave)` (the per-utterance part of the input
policy, applied before batching). A model with `takes_lengths = True` also takes
`forward(waves, lengths)`: a zero-padded batch of different lengths `(B, T)` with each row's
true length `(B,)`, and returns for every row, up to float rounding, what it returns for
that row alone (the extraction engine then batches different lengths under `full`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .aasist import AASIST
from .hparams import check_model_config  # noqa: F401  (re-exported)

ARCHITECTURES = {"AASIST": AASIST}
try:  # the ResNet-34 system lives in its own file
    from .resnet34 import ResNet34
    ARCHITECTURES["ResNet34"] = ResNet34
except ImportError:  # pragma: no cover - only while that file is absent
    pass


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable or does not fit the configured model."""


def _state_dict(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a non-checkpoint file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    # toolkit checkpoints wrap the state dict: {"model": state_dict, "epochs": ..., ...}
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not contain a state dict (or a dict with one under 'model')")
    return obj


def load_model(model_config: dict, checkpoint: str | Path, input_policy: str = "full",
               device: str | torch.device = "cpu") -> torch.nn.Module:
    """Build the configured architecture, load `checkpoint` with `strict=True`, eval mode."""
    arch = model_config.get("architecture")
    if arch not in ARCHITECTURES:
        raise CheckpointError(f"model_config.architecture is {arch!r}; expected one of "
                              f"{sorted(ARCHITECTURES)}")
    cls = ARCHITECTURES[arch]
    path = Path(checkpoint)
    state = _state_dict(path)
    try:
        model = cls(model_config, cls.num_classes_in(state), input_policy)
    except KeyError as exc:
        raise CheckpointError(f"{path}: not a {arch} checkpoint (no {exc.args[0]!r})") from None
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    problems = [f"{label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}"
                for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("shape mismatch", mismatched)) if keys]
    if problems:
        raise CheckpointError(f"{path}: does not match the {arch} model_config ({'; '.join(problems)})")
    model.load_state_dict(state, strict=True)
    return model.eval().to(device)
