"""The extraction loop: decode, fit, run the network, write finished chunks; assemble.

`Extractor.extract` makes the plan of every utterance (`plan.py`), keeps the batches with an
utterance the embedding cache lacks (`cache.py`), runs them in chunks and assembles one
embedding per utterance from the cache. Under torchrun the ranks share the pending chunks
(balanced by audio length); each writes its finished chunks to the shared cache folder, and
rank 0 assembles once every rank is done. The plan is made over all utterances, so a run
resumed after a kill computes the very batches the uninterrupted run would have. Whatever
the number of ranks, the outputs are the bytes a single process computes on the same
device type (on CPU, with as many intra-op threads per rank as that process had: oneDNN's
convolutions block their work by thread count, which moves the last bits).

Speed: decoding overlaps the network (`decode.py`). On CPU the engine keeps large freed
blocks in the process heap (`device.tune_cpu_allocator`): the network's feature maps are tens of
MB per utterance, and handing them back to the kernel after every forward and faulting them
in again costs about as much as the network itself. On CUDA, batches go to the GPU from
pinned memory while the previous batch's embeddings come back asynchronously. `precision`
`bf16` or `fp16` runs the network under `torch.autocast` (embeddings within cosine 0.999 of
float32); the default `fp32` runs it as is.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict, deque
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.hparams import DEFAULT_MAX_SECONDS

from ..audio import SAMPLE_RATE, to_model_rate
from ..ranks import World
from ..testhooks import kill_point
from . import device as devices
from .cache import EmbeddingCache, audio_key
from .decode import DECODERS, MIN_SHARED_MEMORY, decoded_batches, processes_fit, shared_memory_bytes
from .device import PRECISIONS
from .plan import EXACT_MAX_PADDING, BatchPlan, group_chunks, make_plan, share_chunks
from .types import Extraction, ExtractionError, Utterance, fail

log = logging.getLogger(__name__)

# On CPU one forward pass takes at most this many input samples (16 s at 16 kHz; always at
# least one utterance): bigger ones only add memory traffic. Measured on 2 cores
# (benchmarks/bench_extraction.py): AASIST on 4 s inputs runs batches of 1 to 4 alike and
# batches of 8 to 16 up to 40 % slower; ResNet-34 gains from batching short inputs
# (1 s: x1.6 from 1 to 16 per pass) and is flat from 4 x 4 s on.
CPU_FORWARD_SAMPLES = 16 * 16000
# AASIST under `full` needs about 0.95 GB per minute of audio on CPU (9.4 GB for a 10-minute
# file): 300 s stays under 5 GB, within a 24 GB machine with room for the rest of the run.
MAX_SECONDS = DEFAULT_MAX_SECONDS


class Extractor:
    """Runs one model over lists of utterances with one input policy, in this process or
    shared among the ranks of `world`.

    `max_seconds`: under `full` and `reference`, longer utterances are an error (or a skip
    under `on_error: skip`) before any decoding; None for no limit. `decoder` and
    `max_forward_samples` are for tests and benchmarks: decoding in "threads" or
    "processes" (default: threads on CPU, processes on CUDA), and the most input samples
    per forward pass (-1: `CPU_FORWARD_SAMPLES` on CPU, no limit on GPUs; None: no limit;
    as batches only stack independent rows, this changes no embedding). `exact_batching`:
    under `full`, with a model that takes `lengths`, batch utterances of nearby lengths,
    zero-padded, each embedded as if alone (`plan.plan_batches`); False: only utterances of
    exactly the same length share a batch. Either way an embedding is the utterance's own up
    to float rounding."""

    def __init__(self, model, policy: str, batch_size: int, num_workers: int, device: torch.device | str, *,
                 on_error: str = "fail", chunk_size: int = 512, precision: str = "fp32",
                 max_seconds: float | None = MAX_SECONDS, world: World = World(),
                 decoder: str = "auto", max_forward_samples: int | None = -1, exact_batching: bool = True):
        if precision not in PRECISIONS:
            raise ExtractionError(f"precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder {decoder!r}; expected one of {DECODERS}")
        self.model = model
        self.policy = policy
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = torch.device(device)
        self.on_error = on_error
        self.chunk_size = chunk_size
        self.precision = precision
        self.max_seconds = max_seconds
        self.world = world
        self.decoder = decoder if decoder != "auto" else ("processes" if self.device.type == "cuda" else "threads")
        if decoder == "auto" and self.decoder == "processes" and num_workers > 0 and not processes_fit():
            log.warning("/dev/shm holds only %d MB (a container's default?): decoding in threads, not worker "
                        "processes; give it %d MB or more (docker run --shm-size=1g) for processes",
                        (shared_memory_bytes() or 0) >> 20, MIN_SHARED_MEMORY >> 20)
            self.decoder = "threads"
        if precision == "fp16" and self.device.type == "cpu":
            log.warning("precision fp16 on CPU is many times slower than fp32; bf16 is the fast one there")
        self.max_forward_samples = (max_forward_samples if max_forward_samples != -1 else
                                    CPU_FORWARD_SAMPLES if self.device.type == "cpu" else None)
        self._inflight: deque = deque()  # CUDA batches whose embeddings are on their way back
        self.exact = bool(exact_batching and policy == "full" and getattr(model, "takes_lengths", False))
        devices.set_float32_math(self.device, precision)

    def extract(self, utterances: list[Utterance], work: Path, segments: list[range] | None = None,
                desc: str = "") -> Extraction | None:
        """Embed `utterances` (batches of `reference` stay within each of `segments`), reusing
        the embeddings cached in the folder `work` (see `cache.py`) and adding the new ones.

        `work` must be keyed by what an embedding depends on besides its audio (the stage's
        work folder is). Returns the complete `Extraction` on rank 0 and None on the other
        ranks; every utterance is either embedded or in `failed`, never a NaN row."""
        segments = segments or [range(len(utterances))]
        world, desc = self.world, desc or "extracting"
        cache = EmbeddingCache(work)
        setup = None
        if world.is_main:
            try:
                plan = make_plan(utterances, self.model, self.policy, self.batch_size, self.chunk_size,
                                 segments, self.on_error, self.max_seconds,
                                 EXACT_MAX_PADDING if self.exact else None)
                keys = self._keys(utterances, plan)
                cache.prepare()
                embedded, failures = cache.load(self.model.embedding_dim)
                known = embedded.keys() | failures.keys()
                pending = [batch for chunk in plan.chunks for batch in chunk if any(keys[i] not in known for i in batch)]
                setup = (BatchPlan(group_chunks(pending, self.chunk_size), plan.failed, plan.lengths), keys)
            except ExtractionError as exc:
                setup = str(exc)
        setup = world.broadcast(setup)
        if isinstance(setup, str):  # rank 0 reports it; the others only stop
            raise ExtractionError(setup) if world.is_main else SystemExit(2)
        todo, keys = setup
        mine = share_chunks(list(range(len(todo.chunks))), todo.weights, world.size)[world.rank]
        cached = len(utterances) - len(todo.failed) - sum(todo.size(k) for k in range(len(todo.chunks)))
        if world.is_main and cached:
            log.info("%s: %d utterance(s) already embedded in %s, reused", desc, cached, cache.work)
        if world.is_main and world.distributed:
            log.info("%s: %d chunk(s) to extract, shared among %d ranks", desc, len(todo.chunks), world.size)
        with tqdm(total=len(utterances) - len(todo.failed), initial=cached, desc=desc, unit="utt",
                  dynamic_ncols=True, disable=None if world.is_main else True) as bar:
            progress = _Progress(bar, cache, todo, keys, set(mine)) if world.distributed else None
            self._run(utterances, todo, keys, mine, cache, bar, progress)
            if world.distributed:
                _wait_for_ranks(world, progress)
        if not world.is_main:
            return None
        return self._assemble(utterances, todo.failed, keys, cache)

    def _keys(self, utterances: list[Utterance], plan: BatchPlan) -> list[str | None]:
        """Each utterance's cache key (None where the plan already failed it): its audio, and
        under `reference` the audio of its batch, in order (padding depends on it)."""
        keys = [None if i in plan.failed else audio_key(u) for i, u in enumerate(utterances)]
        if self.policy == "reference":
            for chunk in plan.chunks:
                for batch in chunk:
                    context = hashlib.sha256("\n".join(keys[i] for i in batch).encode()).hexdigest()[:16]
                    for i in batch:
                        keys[i] = f"{keys[i]}\tbatch {context}"
        return keys

    def _assemble(self, utterances: list[Utterance], planned_failures: dict[int, str], keys: list,
                  cache: EmbeddingCache) -> Extraction:
        dim = self.model.embedding_dim
        embedded, failures = cache.load(dim)
        out = np.empty((len(utterances), dim), dtype=np.float32)
        failed = dict(planned_failures)
        for i, key in enumerate(keys):
            if i in failed:
                out[i] = np.nan
            elif key in embedded:
                out[i] = embedded[key]
            elif key in failures:
                fail(utterances, failed, i, failures[key], self.on_error)
                out[i] = np.nan
            else:  # a rank lost its work: never commit a row nobody computed
                raise ExtractionError(f"{utterances[i].where}: {utterances[i].path} was not extracted (its chunk "
                                      f"is missing from {cache.work}); run the stage again")
        cache.compact({k for k in keys if k is not None}, embedded, failures, dim)
        return Extraction(out, failed)

    def _run(self, utterances: list[Utterance], todo: BatchPlan, keys: list, mine: list[int], cache: EmbeddingCache,
             bar, progress: "_Progress | None") -> None:
        """Extract the chunks `mine` of `todo`, writing each to the cache when finished."""
        batches = [batch for k in mine for batch in todo.chunks[k]]
        batch_chunk = [k for k in mine for _ in todo.chunks[k]]
        remaining = {k: len(todo.chunks[k]) for k in mine}
        if self.device.type == "cpu":
            devices.tune_cpu_allocator()
        written, resampled_rates = 0, set()
        rows = None
        self._inflight.clear()
        with torch.inference_mode():
            for b, (indices, waves) in enumerate(decoded_batches(utterances, batches, self.num_workers, self.decoder)):
                k = batch_chunk[b]
                if rows is None:  # a chunk starts
                    chunk_indices = [i for batch in todo.chunks[k] for i in batch]
                    slot = {i: s for s, i in enumerate(chunk_indices)}
                    rows = np.full((len(chunk_indices), self.model.embedding_dim), np.nan, dtype=np.float32)
                    chunk_failed: dict[int, str] = {}
                ready = []
                for i, item in zip(indices, waves):
                    if isinstance(item, str):
                        fail(utterances, chunk_failed, i, item, self.on_error)
                        continue
                    wave, rate = np.asarray(item[0]), item[1]  # DataLoader workers hand back tensors
                    if not np.any(wave):
                        log.warning("%s: every sample is zero (silent, or stereo channels that cancel when mixed "
                                    "to mono); its embedding says nothing about its source", utterances[i].path)
                    if rate != SAMPLE_RATE and rate not in resampled_rates:
                        resampled_rates.add(rate)
                        log.info("resampling %d Hz audio to 16000 Hz (first: %s)", rate, utterances[i].path)
                    x = self.model.fit_input(torch.as_tensor(to_model_rate(wave, rate)))
                    if x.shape[-1] < self.model.min_samples:
                        fail(utterances, chunk_failed, i, f"{utterances[i].path}: too short for the model "
                             f"({x.shape[-1]} samples at 16 kHz; at least {self.model.min_samples} needed)",
                             self.on_error)
                        continue
                    ready.append((slot[i], x))
                self._forward(ready, rows)
                bar.update(len(indices))
                remaining[k] -= 1
                if remaining[k] == 0:
                    self._collect(rows)
                    for i in chunk_indices:
                        if i not in chunk_failed and not np.isfinite(rows[slot[i]]).all():
                            fail(utterances, chunk_failed, i, "the network gave a non-finite embedding (NaN or inf)",
                                 self.on_error)
                    cache.write([keys[i] for i in chunk_indices], rows,
                                {slot[i]: reason for i, reason in chunk_failed.items()})
                    rows = None
                    written += 1
                    kill_point(f"chunk-{written}")
                if progress is not None:
                    progress.update()
            self._collect(rows)

    def _forward(self, ready: list[tuple[int, torch.Tensor]], out: np.ndarray) -> None:
        """Embeddings of `ready` (row of `out`, input) into those rows of `out`."""
        if not ready:
            return
        for rows, batch, lengths in self._passes(ready):
            self._pass(rows, batch, lengths, out)

    def _pass(self, rows: list[int], batch: torch.Tensor, lengths: torch.Tensor | None, out: np.ndarray) -> None:
        """One forward pass. Out of GPU memory, it runs as two halves (rows are independent,
        so no embedding changes), and later passes take at most half as many samples."""
        try:
            embedding = self._embed(batch, lengths)
        except torch.OutOfMemoryError:
            if len(rows) == 1:
                raise
            embedding = None
        if embedding is None:  # outside the handler, whose traceback holds the failed attempt's tensors
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            cap = batch.numel() // 2
            if not self.max_forward_samples or cap < self.max_forward_samples:
                log.warning("out of %s memory on a pass of %d inputs (%d samples); passes now take at most "
                            "%d samples", self.device.type.upper(), len(rows), batch.numel(), cap)
                self.max_forward_samples = cap
            half = len(rows) // 2
            for part in (slice(0, half), slice(half, None)):
                self._pass(rows[part], batch[part], None if lengths is None else lengths[part], out)
            return
        if self.device.type != "cuda":
            out[rows] = embedding.float().numpy()
            return
        # copy back without waiting; collected once the batch after the next is queued on the GPU
        host, done = self._copy_back(embedding)
        self._collect(out, keep=1)
        self._inflight.append((rows, host, done))

    def _embed(self, batch: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """The network on one pass's inputs (from pinned memory on CUDA), under `precision`."""
        dtype = PRECISIONS[self.precision]
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        with (torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()):
            args = (batch.to(self.device, non_blocking=True),)
            if lengths is not None:
                args += (lengths.to(self.device),)
            embedding, _ = self.model(*args)
        return embedding

    def _copy_back(self, embedding: torch.Tensor) -> tuple[torch.Tensor, "torch.cuda.Event"]:
        """Start copying a GPU pass's embeddings into pinned host memory: (buffer, event
        recorded after the copy; the buffer is ready once it has completed)."""
        host = torch.empty(embedding.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(embedding.float(), non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.device))
        return host, done

    def _passes(self, ready: list[tuple[int, torch.Tensor]]) -> list[tuple[list[int], torch.Tensor, torch.Tensor | None]]:
        """The forward passes of one batch: (rows of `out`, inputs, true lengths or None),
        each pass at most `max_forward_samples` of (padded) input, or one utterance."""
        cap = self.max_forward_samples
        if self.exact:  # shortest first; each pass padded to its own longest only
            ready = sorted(ready, key=lambda item: item[1].shape[-1])
            passes, start = [], 0
            while start < len(ready):
                stop = start + 1
                while stop < len(ready) and (not cap or (stop + 1 - start) * ready[stop][1].shape[-1] <= cap):
                    stop += 1
                part = ready[start:stop]
                longest = part[-1][1].shape[-1]
                batch = torch.zeros(len(part), longest)
                for row, (_, x) in enumerate(part):
                    batch[row, : x.shape[-1]] = x
                lengths = torch.tensor([x.shape[-1] for _, x in part])
                passes.append(([i for i, _ in part], batch, None if lengths[0] == longest else lengths))
                start = stop
            return passes
        if self.policy == "reference":
            groups = [ready]
        else:  # equal lengths by plan; regroup in case a header misreported a length
            by_len: dict[int, list] = defaultdict(list)
            for i, x in ready:
                by_len[x.shape[-1]].append((i, x))
            groups = list(by_len.values())
        passes = []
        for group in groups:
            longest = max(x.shape[-1] for _, x in group)
            if all(x.shape[-1] == longest for _, x in group):
                batch = torch.stack([x for _, x in group])
            else:  # `reference`: zero-padded to the longest
                batch = torch.zeros(len(group), longest)
                for row, (_, x) in enumerate(group):
                    batch[row, : x.shape[-1]] = x
            rows = [i for i, _ in group]
            step = max(1, cap // longest) if cap else len(rows)
            passes += [(rows[k:k + step], batch[k:k + step], None) for k in range(0, len(rows), step)]
        return passes

    def _collect(self, out: np.ndarray | None, keep: int = 0) -> None:
        """Write the embeddings of all but the `keep` most recent GPU batches into `out`."""
        while len(self._inflight) > keep:
            rows, host, done = self._inflight.popleft()
            done.synchronize()
            out[rows] = host.numpy()


class _Progress:
    """Rank 0's bar also counts the chunks other ranks finish (seen in the cache folder, at
    most every `every` seconds)."""

    def __init__(self, bar, cache: EmbeddingCache, todo: BatchPlan, keys: list, mine: set[int], every: float = 2.0):
        self.bar, self.cache, self.every, self.last = bar, cache, every, 0.0
        self.theirs = {k: [keys[i] for batch in todo.chunks[k] for i in batch]
                       for k in range(len(todo.chunks)) if k not in mine}

    def update(self) -> None:
        if self.bar.disable or time.monotonic() - self.last < self.every:
            return
        self.last = time.monotonic()
        for k, members in list(self.theirs.items()):
            if self.cache.has(members):
                self.bar.update(len(members))
                del self.theirs[k]


def _wait_for_ranks(world: World, progress: _Progress) -> None:
    """Return once every rank has written its chunks; rank 0 keeps its bar moving meanwhile."""
    import torch.distributed as dist

    if not world.is_main:
        world.barrier()
        return
    everyone = dist.barrier(async_op=True)
    while not everyone.is_completed():
        progress.update()
        time.sleep(0.2)
    everyone.wait()
    progress.every = 0.0
    progress.update()
