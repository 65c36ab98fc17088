"""The score back-ends of stage 4 (config key `backend`), as pure functions on embeddings.

Notation: t a trial embedding, f a fingerprint (the mean of its enrollment embeddings,
stage 2), cos(x, y) = x.y / (|x| |y|) (0 when either has zero norm). The *cohort* is the
distinct enrollment embeddings of the known attacks (stage 1; every (ATK, FileName) once,
its first row in sorted protocol-file order), each with its attack. Every back-end returns
the (trial utterances x fingerprints) matrix, computed in float64 and stored as float32.

- `cosine`: cos(t, f), the STOPA score (`similarity`).
- `centered`: cos(t - mu, f - mu), mu the mean of the cohort.
- `asnorm`: adaptive symmetric score normalisation (as WeSpeaker's `score_norm.py`).
- `knn`: mean of the k highest cosines to the fingerprint's own enrollment embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import BACKENDS
from .cosine import blocks, similarity, unit_rows

__all__ = ["BACKENDS", "Enrollment", "asnorm", "centered", "knn", "score_matrix"]


@dataclass(frozen=True)
class Enrollment:
    """What the back-ends other than `cosine` read from stage 1.

    `cohort` (n x D): the distinct enrollment embeddings of the known attacks;
    `cohort_attacks` (n): the attack of each; `members`: per fingerprint, in the order of the
    fingerprint matrix, the embeddings of its protocol file's rows; `fingerprint_attacks`:
    the attack of each fingerprint (its name up to the first `-`).
    """
    cohort: np.ndarray
    cohort_attacks: np.ndarray
    members: list[np.ndarray]
    fingerprint_attacks: list[str]


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """The min(n, columns) largest values of each row (in no particular order)."""
    columns = scores.shape[1]
    if n >= columns:
        return scores
    return np.partition(scores, columns - n, axis=1)[:, columns - n:]


def _stats(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation of each row's top-n values; a standard
    deviation of 0 (one value, or all tied) is returned as 1, so the z-score is s - mean."""
    top = _top(scores, n)
    mean, sd = top.mean(axis=1), top.std(axis=1)
    return mean, np.where(sd > 0, sd, 1.0)


def centered(fingerprints: np.ndarray, trials: np.ndarray, cohort: np.ndarray, block: int = 8192) -> np.ndarray:
    """score = cos(t - mu, f - mu), mu = the mean of the cohort (the distinct enrollment
    embeddings of all known attacks): cosine about the enrollment data's centre instead of the
    origin, which removes the direction every embedding shares."""
    cohort = np.asarray(cohort, dtype=np.float64)
    if not len(cohort):
        raise ValueError("centered needs enrollment embeddings of the known attacks (the cohort is empty)")
    mu = cohort.mean(axis=0)
    f = unit_rows(np.asarray(fingerprints, dtype=np.float64) - mu)
    out = np.empty((len(trials), len(f)), dtype=np.float32)
    for start, t in blocks(trials, block, center=mu):
        out[start:start + len(t)] = unit_rows(t) @ f.T
    return out


def _rows_per_block(columns: int, block: int) -> int:
    """Trial rows per block so that a (rows x columns) float64 cosine block stays near 256 MB."""
    return max(64, min(block, (1 << 25) // max(columns, 1)))


def asnorm(fingerprints: np.ndarray, fingerprint_attacks: list[str], trials: np.ndarray, cohort: np.ndarray,
           cohort_attacks, top_n: int = 100, block: int = 8192) -> np.ndarray:
    """Adaptive symmetric normalisation (AS-norm, as WeSpeaker's `score_norm.py`):

        s = cos(t, f); C_f = the cohort embeddings whose attack is not f's attack;
        mu_e, sd_e = mean and population standard deviation of the `top_n` highest cos(f, c), c in C_f;
        mu_t, sd_t = the same of the `top_n` highest cos(t, c), c in C_f;
        score = ((s - mu_e) / sd_e + (s - mu_t) / sd_t) / 2.

    All of C_f when it has fewer than `top_n` members; a standard deviation of 0 counts as 1.
    ValueError when some fingerprint's C_f is empty (a single known attack).

    The top `top_n` of C_f are the top `top_n` of the union of each other attack's own top
    `top_n`, so each trial's cohort scores are partitioned once per attack, not once per
    excluded attack.
    """
    f = np.asarray(fingerprints, dtype=np.float64)
    cohort = np.asarray(cohort, dtype=np.float64)
    cohort_attacks = np.asarray(cohort_attacks)
    attacks = sorted(set(fingerprint_attacks))
    masks = [cohort_attacks != a for a in attacks]
    empty = [a for a, m in zip(attacks, masks) if not m.any()]
    if empty:
        raise ValueError(f"asnorm: no cohort for the fingerprints of {', '.join(empty)} "
                         "(it needs enrollment embeddings of another known attack)")
    column = np.array([attacks.index(a) for a in fingerprint_attacks], dtype=np.int64)
    f, cohort = unit_rows(f), unit_rows(cohort)
    fc = f @ cohort.T
    mu_e, sd_e = np.empty(len(f)), np.empty(len(f))
    for j, a in enumerate(column):
        m, s = _stats(fc[j:j + 1, masks[a]], top_n)
        mu_e[j], sd_e[j] = m[0], s[0]
    # the cohort ordered by attack, so that each attack's columns are one slice of a block
    order = np.argsort(cohort_attacks, kind="stable")
    cohort, ordered = cohort[order], cohort_attacks[order]
    group_attack, starts = np.unique(ordered, return_index=True)
    bounds = [*starts.tolist(), len(ordered)]
    out = np.empty((len(trials), len(f)), dtype=np.float32)
    for start, t in blocks(trials, _rows_per_block(len(cohort), block)):
        t = unit_rows(t)
        s = t @ f.T
        tc = t @ cohort.T
        tops = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            group, keep = tc[:, lo:hi], min(top_n, hi - lo)
            if keep < hi - lo:
                group.partition(hi - lo - keep, axis=1)  # in place: tc is not read again
            tops.append(group[:, hi - lo - keep:])
        mu_t, sd_t = np.empty((len(t), len(attacks))), np.empty((len(t), len(attacks)))
        for a, attack in enumerate(attacks):
            others = np.concatenate([top for top, b in zip(tops, group_attack) if b != attack], axis=1)
            mu_t[:, a], sd_t[:, a] = _stats(others, top_n)
        out[start:start + len(t)] = ((s - mu_e) / sd_e + (s - mu_t[:, column]) / sd_t[:, column]) / 2
    return out


def knn(members: list[np.ndarray], trials: np.ndarray, k: int = 5, block: int = 8192) -> np.ndarray:
    """score = the mean of the `k` highest cos(t, e) over the enrollment embeddings e of the
    fingerprint's own protocol file (its utterances, not their mean); all of them when it has
    fewer than `k`. ValueError for a fingerprint without enrollment embeddings.

    Fingerprints share utterances (STOPA's smaller enrollments are subsets of the larger), so
    each distinct embedding (equal bytes) is scored once and gathered per fingerprint.
    """
    if not members or any(len(m) == 0 for m in members):
        raise ValueError("knn: a fingerprint has no enrollment embeddings")
    every = np.ascontiguousarray(np.concatenate(members))
    row_bytes = every.view(np.dtype((np.void, every.dtype.itemsize * every.shape[1]))).ravel()
    _, first, inverse = np.unique(row_bytes, return_index=True, return_inverse=True)
    # distinct rows in order of first appearance: a fingerprint listing the first N utterances
    # of a larger one (STOPA's enrollment sizes) then reads one contiguous slice
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    distinct = unit_rows(every[first[order]])
    bounds = np.cumsum([0] + [len(m) for m in members])
    columns = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        column = rank[inverse.ravel()[lo:hi]]
        contiguous = np.array_equal(column, np.arange(column[0], column[0] + len(column)))
        columns.append(slice(int(column[0]), int(column[0]) + len(column)) if contiguous else column)
    # Partitioning a slice in place only permutes values inside it, so every slice that holds
    # it whole, or none of it, keeps its values: when the slices nest or are disjoint
    # (STOPA's do), the smallest first can all be partitioned in place, without copies.
    # Scattered columns are gathered (copied) first, before any value has moved.
    spans = [(c.start, c.stop) for c in columns if isinstance(c, slice)]
    laminar = all(b1 <= a2 or b2 <= a1 or (a1 <= a2 and b2 <= b1) or (a2 <= a1 and b1 <= b2)
                  for i, (a1, b1) in enumerate(spans) for a2, b2 in spans[i + 1:])
    order = sorted(range(len(columns)), key=lambda j: (isinstance(columns[j], slice), len(members[j])))
    out = np.empty((len(trials), len(members)), dtype=np.float32)
    for start, t in blocks(trials, _rows_per_block(len(distinct), block)):
        c = unit_rows(t) @ distinct.T
        for j in order:
            column, width = columns[j], len(members[j])
            keep = min(k, width)
            if isinstance(column, slice) and laminar:
                view = c[:, column]
                if keep < width:
                    view.partition(width - keep, axis=1)
                top = view[:, width - keep:]
            else:
                top = _top(c[:, column], k)
            out[start:start + len(t), j] = top.mean(axis=1)
    return out


def score_matrix(backend: str, fingerprints: np.ndarray, trials: np.ndarray, enrollment: Enrollment | None = None,
                 *, asnorm_top_n: int = 100, knn_k: int = 5) -> np.ndarray:
    """The (trial utterances x fingerprints) scores of `backend` (one of `BACKENDS`);
    `enrollment` is needed by every back-end but `cosine`."""
    if backend == "cosine":
        return similarity(fingerprints, trials)
    if enrollment is None:
        raise ValueError(f"backend {backend!r} needs the enrollment embeddings")
    if backend == "centered":
        return centered(fingerprints, trials, enrollment.cohort)
    if backend == "asnorm":
        return asnorm(fingerprints, enrollment.fingerprint_attacks, trials, enrollment.cohort,
                      enrollment.cohort_attacks, asnorm_top_n)
    if backend == "knn":
        return knn(enrollment.members, trials, knn_k)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
