"""The extraction plan: which utterances go through the network, in which batches and chunks.

The plan depends only on the utterances, the model's input policy and the sizes asked for,
never on timing or on the number of processes, so a resumed run, or a run shared among
torchrun's ranks, works through the same chunks as an uninterrupted single process.

- `full` and `fixed`: batches of inputs of exactly the same length (after the model's
  per-utterance `fit_input`, from the file headers, before any decoding), so no input is
  ever padded and an embedding does not depend on its batch neighbours.
- `full` with exact batching (`max_padding`; models that take `lengths`): batches of
  inputs of nearby lengths (sorted by length, the longest at most `1 + max_padding` times
  the shortest), zero-padded, each embedded as if alone (`models/masking.py`), so batches
  fill even where no two utterances have the same length.
- `reference`: consecutive utterances within each segment (one protocol file), as the
  published STOPA scripts batched them.

Consecutive batches form chunks of at least `chunk_size` utterances: the unit of resumable
work and of sharing among ranks.
"""
from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from ..audio import SAMPLE_RATE, AudioError, probe_length
from .types import ExtractionError, Utterance, fail

PROBE_THREADS = 8  # header reads are I/O-bound: more threads than cores pay on network file systems


@dataclass
class BatchPlan:
    """`chunks[k]` is a list of batches, each a list of utterance indices; `failed` holds the
    utterances left out before decoding (under `on_error: skip`); `lengths[i]` is utterance
    i's input length in samples (None where lengths are not probed)."""

    chunks: list[list[list[int]]]
    failed: dict[int, str]
    lengths: list[int] | None = None

    def size(self, k: int) -> int:
        return sum(map(len, self.chunks[k]))

    def weight(self, chunk: list[list[int]]) -> int:
        """A chunk's input length in samples (its number of utterances without lengths)."""
        return sum(1 if self.lengths is None else max(1, self.lengths[i]) for batch in chunk for i in batch)

    @property
    def weights(self) -> list[int]:
        return [self.weight(chunk) for chunk in self.chunks]


def make_plan(utterances: list[Utterance], model, policy: str, batch_size: int, chunk_size: int,
              segments: list[range], on_error: str, max_seconds: float | None,
              max_padding: float | None = None) -> BatchPlan:
    """Check that every file exists, read lengths from the headers, batch and chunk.

    Under `full` and `reference` an utterance longer than `max_seconds` (None: no limit) is
    an error naming its protocol line, or a skip; `fixed` cuts every input to one length and
    is exempt. `max_padding` (not None: exact batching, `full` only) is `plan_batches`'."""
    failed: dict[int, str] = {}
    _check_exist(utterances, on_error, failed)
    limit = None if policy == "fixed" or max_seconds is None else max_seconds * SAMPLE_RATE
    lengths = _probe(utterances, model, policy, failed, on_error, limit)
    batches = plan_batches(None if policy == "reference" else lengths, batch_size, segments,
                           max_padding if policy == "full" else None)
    batches = [kept for b in batches if (kept := [i for i in b if i not in failed])]
    return BatchPlan(group_chunks(batches, chunk_size), failed, lengths)


def _check_exist(utterances: list[Utterance], on_error: str, failed: dict[int, str]) -> None:
    missing = [i for i, u in enumerate(utterances) if not u.path.is_file()]
    if not missing:
        return
    if on_error == "skip":
        failed.update({i: "audio file not found" for i in missing})
        return
    shown = "\n".join(f"  {utterances[i].where}: {utterances[i].path}" for i in missing[:20])
    more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    raise ExtractionError(f"{len(missing)} audio file(s) not found (check database_path and the audio "
                          f"path templates):\n{shown}{more}")


def fitted_length_fn(model):
    """n -> length of `model.fit_input` of n samples (cached: lengths repeat)."""
    cache: dict[int, int] = {}

    def fitted(n: int) -> int:
        if n not in cache:
            cache[n] = int(model.fit_input(torch.empty(n)).shape[-1])
        return cache[n]
    return fitted


def _probe(utterances: list[Utterance], model, policy: str, failed: dict[int, str], on_error: str,
           limit: float | None) -> list[int] | None:
    """Model input length of each utterance (-1 where failed), or None where not needed.

    `fixed` inputs all have one length and are not probed. Under `reference` the lengths
    only serve the `max_seconds` check, and an unreadable header is left for decoding to
    report, as it always was."""
    fitted = fitted_length_fn(model)
    if policy == "fixed" or fitted(SAMPLE_RATE) == fitted(1_000_000):  # every input the same length
        return [-1 if i in failed else fitted(SAMPLE_RATE) for i in range(len(utterances))]
    if policy == "reference" and limit is None:
        return None

    def probe(i: int) -> int | str | None:
        if i in failed:
            return None
        try:
            return probe_length(utterances[i].path)
        except AudioError as exc:
            return str(exc)
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        probed = list(pool.map(probe, range(len(utterances))))
    lengths = []
    for i, n in enumerate(probed):
        if isinstance(n, str) and policy != "reference":
            fail(utterances, failed, i, n, on_error)
        elif isinstance(n, int) and limit is not None and n > limit:
            fail(utterances, failed, i, f"{utterances[i].path}: {n / SAMPLE_RATE:.1f} s of audio, longer than "
                 f"max_seconds ({limit / SAMPLE_RATE:g} s) allows under input_policy {policy}; raise max_seconds "
                 f"if the machine has the memory", on_error)
        lengths.append(fitted(n) if isinstance(n, int) and i not in failed else -1)
    return lengths


# exact batching: a batch's longest input is at most this much longer than its shortest
# (a fraction of it), so at most 1/6 of a batch's input is padding; on a corpus of many
# utterances the neighbours in length order are far closer and the padding far less
EXACT_MAX_PADDING = 0.2


def plan_batches(lengths: list[int] | None, batch_size: int, segments: list[range],
                 max_padding: float | None = None) -> list[list[int]]:
    """Batches of indices. With `lengths`: equal-length groups (sorted by length, then index;
    negative lengths left out), or with `max_padding` as well, runs of at most `batch_size`
    in that order, each run's longest at most `(1 + max_padding)` times its shortest (runs
    are cut greedily: a run takes the next index while both limits allow); without
    `lengths`: consecutive indices within each segment."""
    if lengths is None:
        return [list(seg[i:i + batch_size]) for seg in segments for i in range(0, len(seg), batch_size)]
    if max_padding is not None:
        batches: list[list[int]] = []
        for i in sorted((i for i, n in enumerate(lengths) if n >= 0), key=lambda i: (lengths[i], i)):
            if batches and len(batches[-1]) < batch_size and lengths[i] <= (1 + max_padding) * lengths[batches[-1][0]]:
                batches[-1].append(i)
            else:
                batches.append([i])
        return batches
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(lengths):
        if n >= 0:
            by_length[n].append(i)
    return [idx[i:i + batch_size] for n in sorted(by_length) for idx in [by_length[n]]
            for i in range(0, len(idx), batch_size)]


def group_chunks(batches: list[list[int]], chunk_size: int) -> list[list[list[int]]]:
    """Consecutive batches grouped into chunks of at least `chunk_size` utterances."""
    chunks, current, count = [], [], 0
    for batch in batches:
        current.append(batch)
        count += len(batch)
        if count >= chunk_size:
            chunks.append(current)
            current, count = [], 0
    if current:
        chunks.append(current)
    return chunks


def share_chunks(pending: list[int], weights: list[int], ranks: int) -> list[list[int]]:
    """Chunk numbers of each rank: heaviest chunk first to the least-loaded rank (ties to the
    lower chunk number and rank), each rank's list in ascending order. Deterministic."""
    loads, shares = [0] * ranks, [[] for _ in range(ranks)]
    for k in sorted(pending, key=lambda k: (-weights[k], k)):
        r = min(range(ranks), key=lambda r: (loads[r], r))
        loads[r] += weights[k]
        shares[r].append(k)
    return [sorted(share) for share in shares]
