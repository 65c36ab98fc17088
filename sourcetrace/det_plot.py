"""DET figures (NIST / ASVspoof style): normal-deviate axes with percent ticks, in grey levels.

Drawn with matplotlib's object interface on the Agg canvas, so nothing depends on (or
changes) a display or pyplot's global state.
"""
from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .store import atomic_path

TICKS = (0.1, 0.5, 2, 5, 10, 20, 40, 60, 80, 90, 95, 98, 99.5, 99.9)
LIMITS = (0.05, 99.95)  # percent
# line colour (grey level), dash pattern, EER marker: told apart without colour
STYLES = (("0.0", "-", "o"), ("0.45", "--", "s"), ("0.0", ":", "^"), ("0.3", "-.", "D"),
          ("0.55", (0, (6, 2, 1, 2, 1, 2)), "v"))
_EDGE = 1e-5  # 0 and 1 are drawn at the frame


def deviate(p) -> np.ndarray:
    """Standard normal deviate of probabilities (clipped just inside (0, 1))."""
    inv = NormalDist().inv_cdf
    return np.array([inv(x) for x in np.clip(np.asarray(p, dtype=float), _EDGE, 1 - _EDGE)])


def plot_det(path: Path, title: str, curves: list[tuple[str, np.ndarray, np.ndarray, float]]) -> None:
    """Write a PNG of DET curves; `curves`: (label, p_miss, p_fa, eer fraction) each, at
    most five. The EER of each curve is marked on the diagonal and given in the legend."""
    if len(curves) > len(STYLES):
        raise ValueError(f"at most {len(STYLES)} curves per figure")
    figure = Figure(figsize=(5.6, 5.6))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    low, high = deviate(np.array(LIMITS) / 100)
    ax.plot([low, high], [low, high], color="0.75", linewidth=0.8)
    for (label, p_miss, p_fa, eer), (grey, dashes, marker) in zip(curves, STYLES):
        ax.plot(deviate(p_fa), deviate(p_miss), color=grey, linestyle=dashes, linewidth=1.5)
        d = deviate([eer])
        ax.plot(d, d, color=grey, linestyle=dashes, linewidth=1.5, marker=marker, markersize=7,
                markerfacecolor="white", markeredgecolor=grey, label=f"{label} (EER {100 * eer:.2f} %)")
    ticks = deviate(np.array(TICKS) / 100)
    names = [f"{t:g}" for t in TICKS]
    ax.set_xticks(ticks, names, fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.grid(color="0.88", linewidth=0.6)
    ax.set_xlabel("false alarm probability (%)")
    ax.set_ylabel("miss probability (%)")
    ax.set_title(title, fontsize=10)
    if curves:
        ax.legend(loc="upper right", fontsize=8, framealpha=1.0)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
