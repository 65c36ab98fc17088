"""The extraction engine shared by stage 1 (enrollment) and stage 3 (trials).

Given utterances, a model and an input policy, it returns one embedding per utterance.

- `records.py`: `Utterance`, `Extraction`, `ExtractionError`.
- `plan.py`: utterances -> header lengths -> equal-length batches -> chunks; deterministic.
- `chunks.py`: the work folder of finished chunks (write, list, load, resume, remove).
- `decode.py`: decoding ahead of the network (threads on CPU, processes on CUDA).
- `device.py`: device names, CPU allocator tuning, precisions.
- `engine.py`: `Extractor`, the loop; ranks of torchrun share the chunks of one plan.
"""
from . import device
from .chunks import ChunkStore, remove
from .device import PRECISIONS, resolve_device, tune_cpu_allocator
from .engine import CPU_FORWARD_SAMPLES, KILL_HOOK, MAX_SECONDS, Extractor
from .plan import Plan, make_plan, plan_batches, share_chunks
from .records import Extraction, ExtractionError, Utterance

__all__ = ["CPU_FORWARD_SAMPLES", "KILL_HOOK", "MAX_SECONDS", "ChunkStore", "Extraction", "ExtractionError",
           "Extractor", "PRECISIONS", "Plan", "Utterance", "device", "make_plan", "plan_batches", "remove",
           "resolve_device", "share_chunks", "tune_cpu_allocator"]
