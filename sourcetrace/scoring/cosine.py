"""Cosine scoring of trial embeddings against fingerprints.

A row's score is cos(fingerprint, trial) = f.t / (|f| |t|), computed in float64 and stored
as float32 (the precision of the embeddings). A zero-norm vector has no direction: its
cosine with anything is defined as 0.0 (as scikit-learn's `cosine_similarity` does), so
scores are never NaN.
"""
from __future__ import annotations

import numpy as np


def _norms(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float64)
    return np.sqrt(np.einsum("ij,ij->i", matrix, matrix))


def cosines(t: np.ndarray, f: np.ndarray, f_norm: np.ndarray | None = None) -> np.ndarray:
    """float64 cos(t_i, f_j) of every row pair of two float64 matrices (0 for a zero-norm row)."""
    f_norm = _norms(f) if f_norm is None else f_norm
    denominator = np.outer(_norms(t), f_norm)
    dots = t @ f.T
    return np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """float64 rows scaled to unit length (a zero row stays zero, so its cosines are 0).

    `unit_rows(t) @ unit_rows(f).T` is the cosine matrix in one matrix product, without the
    full-size denominator `cosines` forms; it differs from `cosines` in the last float64 bits
    only, far below the float32 the scores are stored in. The back-ends other than `cosine`
    use it (`similarity` keeps its own arithmetic, so STOPA's scores stay byte-identical).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = _norms(matrix)
    return matrix / np.where(norms > 0, norms, 1.0)[:, None]


def blocks(trials: np.ndarray, block: int = 8192, center: np.ndarray | None = None):
    """(start, float64 rows) of `trials` in blocks of `block` rows, minus `center` when given:
    the float64 copy of a STOPA-size trial matrix never exists whole."""
    for start in range(0, len(trials), block):
        t = np.asarray(trials[start:start + block], dtype=np.float64)
        yield start, t if center is None else t - center


def similarity(fingerprints: np.ndarray, trials: np.ndarray, block: int = 8192) -> np.ndarray:
    """(trial utterances x fingerprints) cosine matrix, computed in float64, stored as float32.

    Stage 4 computes it once and gathers one entry per trial row, so the utterance-level work
    is done once however many fingerprints score an utterance.
    """
    f = np.asarray(fingerprints, dtype=np.float64)
    f_norm = _norms(f)
    out = np.empty((len(trials), len(f)), dtype=np.float32)
    for start, t in blocks(trials, block):
        out[start:start + len(t)] = cosines(t, f, f_norm)
    return out
