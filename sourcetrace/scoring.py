"""Cosine scoring of trial embeddings against fingerprints.

A row's score is cos(fingerprint, trial) = f.t / (|f| |t|), computed in float64 and stored
as float32 (the precision of the embeddings). A zero-norm vector has no direction: its
cosine with anything is defined as 0.0 (as scikit-learn's `cosine_similarity` does), so
scores are never NaN.
"""
from __future__ import annotations

import numpy as np


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm in float64; zero rows stay zero."""
    matrix = np.asarray(matrix, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def similarity(fingerprints: np.ndarray, trials: np.ndarray, block: int = 65536) -> np.ndarray:
    """(trial utterances x fingerprints) cosine matrix, computed in float64, stored as float32.

    Stage 4 computes it once and gathers one entry per trial row, so the utterance-level work
    is done once however many fingerprints score an utterance.
    """
    f = unit_rows(fingerprints)
    out = np.empty((len(trials), len(f)), dtype=np.float32)
    for start in range(0, len(trials), block):
        out[start:start + block] = unit_rows(trials[start:start + block]) @ f.T
    return out
