"""The extraction engine shared by stage 1 (enrollment) and stage 3 (trials).

Given utterances, a model and an input policy, it returns one embedding per utterance.

- `types.py`: `Utterance`, `Extraction`, `ExtractionError`.
- `plan.py`: utterances -> header lengths -> equal-length batches -> chunks; deterministic.
- `cache.py`: the embedding cache per utterance (finished chunks in the stage's work folder,
  keyed by the model's identity; entries keyed by the audio's identity).
- `decode.py`: decoding ahead of the network (threads on CPU, processes on CUDA).
- `device.py`: device names, CPU allocator tuning, precisions.
- `engine.py`: `Extractor`, the loop; ranks of torchrun share the chunks of one plan.
"""
import importlib

from .types import Extraction, ExtractionError, Utterance

# The rest imports torch: loaded on first use, so that reading plans and records (which the
# up-to-date checks of stages 2, 4 and 5 do through stages 1 and 3) starts fast.
_LAZY = {"EmbeddingCache": "cache", "audio_key": "cache", "PRECISIONS": "device", "resolve_device": "device",
         "tune_cpu_allocator": "device", "CPU_FORWARD_SAMPLES": "engine",
         "MAX_SECONDS": "engine", "Extractor": "engine", "BatchPlan": "plan", "make_plan": "plan",
         "plan_batches": "plan", "share_chunks": "plan"}


def __getattr__(name: str):
    if name in ("cache", "decode", "device", "engine", "plan"):
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CPU_FORWARD_SAMPLES", "MAX_SECONDS", "EmbeddingCache", "Extraction", "ExtractionError",
           "Extractor", "PRECISIONS", "BatchPlan", "Utterance", "audio_key", "device", "make_plan", "plan_batches",
           "resolve_device", "share_chunks", "tune_cpu_allocator"]
