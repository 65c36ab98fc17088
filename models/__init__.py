"""Embedding networks of the toolkit and their checkpoint loading.

Every model is an `nn.Module` built as `Model(model_config, num_classes, input_policy)` whose
`forward(waves)` maps a batch of equal-length 16 kHz waveforms `(B, T)` to
`(embedding (B, D), logits (B, C))`, and which exposes `embedding_dim`, `min_samples`
(shortest waveform it accepts) and `fit_input(wave)` (the per-utterance part of the input
policy, applied before batching). A class may also define `convert_state_dict(state)`, which
renames a foreign checkpoint layout to its own before the strict load. The default of the
config key `max_seconds` is the architecture's (`hparams.default_max_seconds`). A model with
`takes_lengths = True` also takes `forward(waves, lengths)`: a zero-padded batch of different lengths `(B, T)` with each row's
true length `(B,)`, and returns for every row, up to float rounding, what it returns for
that row alone (the extraction engine then batches different lengths under `full`).
"""
from __future__ import annotations

import importlib

from .hparams import AASIST_DEFAULT, check_model_config, default_max_seconds  # noqa: F401  (no torch)

# the rest imports torch: loaded on first use, so that reading a config stays fast
_LAZY = {"ARCHITECTURES": "loading", "CheckpointError": "loading", "load_model": "loading",
         "AASIST": "aasist", "ResNet34": "resnet34", "SSL_AASIST": "ssl_aasist"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
