"""Value tests shared by every config check (top-level keys, `model_config`, `train`).

Plain predicates, no torch: the config is checked in full when it is read.
"""
from __future__ import annotations


def is_int(value, low: int | None = None) -> bool:
    """An int (not a bool), at least `low` when given."""
    return isinstance(value, int) and not isinstance(value, bool) and (low is None or value >= low)


def is_number(value, low: float | None = None, high: float | None = None, *, strict: bool = False) -> bool:
    """An int or float (not a bool) within [low, high] (open bounds with `strict`)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if low is not None and (value <= low if strict else value < low):
        return False
    return high is None or (value < high if strict else value <= high)
