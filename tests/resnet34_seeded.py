"""Seeded ResNet-34 weights: the recipe behind the parity fixture `resnet34_seeded_golden.npz`.

The fixture holds what the original toolkit's ResNet-34 computes (eval mode, CPU) with
weights drawn by this recipe, so parity needs no checkpoint file: every test that wants a
ResNet-34 builds these weights. The recipe walks the model's own state dict in sorted key
order and draws from `numpy.random.default_rng(seed)` in float64, cast to float32:

| key ends with | value |
| --- | --- |
| `num_batches_tracked` | zeros (no draw) |
| `running_var` | uniform(0.5, 1.5) |
| `running_mean` | uniform(-0.2, 0.2) |
| `weight`, 1-D (norm scales) | uniform(0.8, 1.2) |
| `bias` | uniform(-0.1, 0.1) |
| anything else (conv / linear weights, `output.W`) | standard normal * sqrt(1 / fan-in) |
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.resnet34 import ResNet34

SEED = 2024
NUM_CLASSES = 3
CONFIG = {"architecture": "ResNet34", "max_frames": 1400, "n_mels": 80}


def _draw(rng: np.random.Generator, key: str, shape: tuple[int, ...]) -> np.ndarray:
    if key.endswith("running_var"):
        return rng.uniform(0.5, 1.5, shape)
    if key.endswith("running_mean"):
        return rng.uniform(-0.2, 0.2, shape)
    if key.endswith("weight") and len(shape) == 1:
        return rng.uniform(0.8, 1.2, shape)
    if key.endswith("bias"):
        return rng.uniform(-0.1, 0.1, shape)
    return rng.standard_normal(shape) * np.sqrt(1.0 / np.prod(shape[1:]))


def seeded_state_dict(model_config: dict = CONFIG, seed: int = SEED,
                      num_classes: int = NUM_CLASSES) -> dict[str, torch.Tensor]:
    """The recipe's state dict for `ResNet34(model_config, num_classes)`; same keys and shapes."""
    template = ResNet34(model_config, num_classes).state_dict()
    rng = np.random.default_rng(seed)
    state = {}
    for key in sorted(template):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros_like(template[key])
        else:
            state[key] = torch.from_numpy(_draw(rng, key, tuple(template[key].shape)).astype(np.float32))
    return state


def write_checkpoint(path: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    """Save `state` (default: the seeded one) at `path` in the toolkit's checkpoint format."""
    state = seeded_state_dict() if state is None else state
    torch.save({"epochs": 0, "optimizer": {}, "model": state, "name": "ResNet34", "config": {}}, path)
    return path
