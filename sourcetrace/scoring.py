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


def cosine_scores(fingerprints: np.ndarray, trials: np.ndarray, fp_index: np.ndarray,
                  trial_index: np.ndarray) -> np.ndarray:
    """Score of row k = cos(fingerprints[fp_index[k]], trials[trial_index[k]]), float32.

    One (trial utterances x fingerprints) product, then a gather per scored row: the
    utterance-level work is done once however many fingerprints score an utterance.
    """
    similarity = unit_rows(trials) @ unit_rows(fingerprints).T
    return similarity[trial_index, fp_index].astype(np.float32)
