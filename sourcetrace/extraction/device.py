"""Devices: which torch device a config names, CPU allocator tuning, reduced precisions."""
from __future__ import annotations

import ctypes
import logging
import sys

import torch

from .types import ExtractionError

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
_allocator_tuned = False


def tune_cpu_allocator() -> bool:
    """Keep large freed blocks in this process's heap (glibc only; once per process).

    glibc serves every allocation above 32 MiB with a fresh mmap and unmaps it on free, so
    each forward pass of a convolutional network on a few seconds of audio faults in its
    feature maps page by page again: for AASIST on CPU that kernel time is about as long
    as the network's own. Allocating from the heap and not trimming it removes that; the
    price is that the process keeps its peak memory until it exits. Returns whether the
    setting is in effect."""
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return _allocator_tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
        _allocator_tuned = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        _allocator_tuned = False
    log.debug("CPU allocator tuned: %s", _allocator_tuned)
    return _allocator_tuned


def set_float32_math(device: torch.device | str, precision: str) -> None:
    """Under `fp32` on CUDA, float32 convolutions and matrix products in float32 proper.

    cuDNN runs float32 convolutions in TF32 (10-bit mantissa) by default on Ampere and newer
    GPUs, which moves embeddings about 1e-3 away from the CPU's; `fp32` means float32, so TF32
    is turned off (process-wide: it is a global switch). `bf16` and `fp16` leave it as is."""
    if torch.device(device).type == "cuda" and precision == "fp32":
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def resolve_device(name: str) -> torch.device:
    """The torch device of a configured `device` (`auto`: CUDA when available)."""
    if name in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ExtractionError(f"device {name!r} is not a valid torch device (try cpu, cuda, cuda:1, auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ExtractionError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device
