"""Enrollment-condition groups of fingerprints, from names `<ATK>-<co|nc>-<N>`."""
from __future__ import annotations

import re

import numpy as np

FINGERPRINT_NAME = re.compile(r"^(?P<attack>.+)-(?P<condition>co|nc)-(?P<size>[0-9]+|all)$")


def condition_groups(names: list[str]) -> list[tuple[str, str, np.ndarray]]:
    """(condition, enroll_size, codes) per group of fingerprints sharing condition and size.

    `codes` are indices into `names`. Groups are ordered by condition (`co` before `nc`),
    then by enrollment size as a number, `all` last. Names not of the form
    `<ATK>-<co|nc>-<N>` (N a number or `all`) belong to no group.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for code, name in enumerate(names):
        match = FINGERPRINT_NAME.match(name)
        if match:
            groups.setdefault((match["condition"], match["size"]), []).append(code)

    def order(key: tuple[str, str]):
        condition, size = key
        return condition, size == "all", int(size) if size != "all" else 0

    return [(c, s, np.array(groups[(c, s)])) for c, s in sorted(groups, key=order)]
