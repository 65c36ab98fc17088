"""Stage 5's figures, in grey levels: DET curves (NIST / ASVspoof style: normal-deviate axes
with percent ticks), the attribution confusion matrix and the known-vs-unknown score
distributions of unknown-source detection.

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
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)


def plot_confusion(path: Path, title: str, true: np.ndarray, predicted: np.ndarray, names: list[str]) -> None:
    """Confusion matrix: one row per true class, one column per predicted class (the classes
    of either), each cell the share of the row's trials, with its count."""
    classes = sorted(set(np.asarray(true).tolist()) | set(np.asarray(predicted).tolist()))
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, ([index[c] for c in np.asarray(true).tolist()],
                       [index[c] for c in np.asarray(predicted).tolist()]), 1)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = 1.6 + 0.55 * max(len(classes), 2)
    figure = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if not classes:
        ax.text(0.5, 0.5, "no known-attack trials", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        _save(figure, path)
        return
    image = ax.imshow(shares, cmap="Greys", vmin=0, vmax=1)
    labels = [names[c] for c in classes]
    ax.set_xticks(range(len(classes)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), labels, fontsize=8)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if counts[i, j]:
                ax.text(j, i, f"{100 * shares[i, j]:.0f}%\n({counts[i, j]})", ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's trials")
    _save(figure, path)


def plot_detection_scores(path: Path, title: str, known: np.ndarray, unknown: np.ndarray, metrics: dict) -> None:
    """Histograms (densities) of the detection scores of known- and unknown-attack trials, with
    the EER threshold; `metrics` is the pooled row of unknown_detection.csv."""
    figure = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    both = np.concatenate([known, unknown])
    if both.size:
        edges = np.linspace(both.min(), both.max() if both.max() > both.min() else both.min() + 1, 41)
        for scores, label, grey, fill in ((known, "known attacks", "0.1", False), (unknown, "unknown attacks", "0.55", True)):
            if scores.size:
                ax.hist(scores, bins=edges, density=True, histtype="stepfilled" if fill else "step", color=grey,
                        alpha=0.6 if fill else 1.0, linewidth=1.5, label=f"{label} ({scores.size})")
    if metrics.get("eer_threshold") is not None:
        ax.axvline(metrics["eer_threshold"], color="0.0", linestyle="--", linewidth=1.0,
                   label=f"EER threshold (EER {metrics['eer']:.2f} %, AUROC {metrics['auroc']:.3f})")
    ax.set_xlabel("detection score (highest score over the condition's fingerprints)")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=10)
    if both.size:
        ax.legend(fontsize=8, framealpha=1.0)
    _save(figure, path)
