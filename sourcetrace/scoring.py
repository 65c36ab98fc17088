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


def similarity(fingerprints: np.ndarray, trials: np.ndarray, block: int = 8192) -> np.ndarray:
    """(trial utterances x fingerprints) cosine matrix, computed in float64, stored as float32.

    Stage 4 computes it once and gathers one entry per trial row, so the utterance-level work
    is done once however many fingerprints score an utterance.
    """
    f = np.asarray(fingerprints, dtype=np.float64)
    f_norm = _norms(f)
    out = np.empty((len(trials), len(f)), dtype=np.float32)
    for start in range(0, len(trials), block):
        t = np.asarray(trials[start:start + block], dtype=np.float64)
        denominator = np.outer(_norms(t), f_norm)
        dots = t @ f.T
        out[start:start + block] = np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)
    return out
