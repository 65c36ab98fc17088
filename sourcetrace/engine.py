"""The extraction engine shared by stage 1 (enrollment) and stage 3 (trials).

Given utterances, a model and an input policy, it returns one embedding per utterance:

- `full` and `fixed`: every batch stacks inputs of *exactly* the same length (after the
  model's per-utterance `fit_input`), so no input is ever padded and an utterance's
  embedding does not depend on its batch neighbours, the batch size or the worker count.
  Utterances are grouped by length from the file headers before any decoding.
- `reference`: batches are consecutive utterances in the given order, within each
  `segment` (one protocol file), zero-padded to the longest: the published STOPA scripts'
  behaviour, kept to reproduce their numbers, batch dependence included.

Decoding overlaps the network. On CPU it runs in `num_workers` threads of this process
(libsndfile releases the GIL): worker processes would compete with the network's own
intra-op threads for the same cores and pay for passing every waveform between processes.
Workers only decode; audio at other rates is resampled to 16 kHz in the main thread.
On CUDA it runs in `num_workers` DataLoader processes, and batches go to the GPU from
pinned memory while the previous batch's embeddings come back asynchronously. On CPU the
engine also keeps large freed blocks in the process heap (`tune_cpu_allocator`): the
network's feature maps are tens of MB per utterance, and handing them back to the kernel
after every forward and faulting them in again costs about as much as the network itself.

`precision` `bf16` or `fp16` runs the network under `torch.autocast` (embeddings within
cosine 0.999 of float32); the default `fp32` runs it as is.

Results are written in chunks to a work folder as they complete; a run that is killed
resumes from the finished chunks and, the plan being deterministic, ends with the same
bytes as an uninterrupted run.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import sys
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .audio import SAMPLE_RATE, AudioError, decode_audio, probe_length, to_model_rate
from .errors import StageError
from .store import atomic_path

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
DECODERS = ("auto", "threads", "processes")
# On CPU one forward pass takes at most this many input samples (16 s at 16 kHz; always at
# least one utterance): bigger ones only add memory traffic. Measured on 2 cores
# (benchmarks/bench_extraction.py): AASIST on 4 s inputs runs batches of 1 to 4 alike and
# batches of 8 to 16 up to 40 % slower; ResNet-34 gains from batching short inputs
# (1 s: x1.6 from 1 to 16 per pass) and is flat from 4 x 4 s on.
CPU_FORWARD_SAMPLES = 16 * 16000
_allocator_tuned = False


def tune_cpu_allocator() -> bool:
    """Keep large freed blocks in this process's heap (glibc only; once per process).

    glibc serves every allocation above 32 MiB with a fresh mmap and unmaps it on free, so
    each forward pass of a convolutional network on a few seconds of audio faults in its
    feature maps page by page again: for AASIST on CPU that kernel time is about as long
    as the network's own. Allocating from the heap and not trimming it removes that; the
    price is that the process keeps its peak memory until it exits. Returns whether the
    setting is in effect."""
    global _allocator_tuned
    if _allocator_tuned or not sys.platform.startswith("linux"):
        return _allocator_tuned
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
        _allocator_tuned = bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        _allocator_tuned = False
    log.debug("CPU allocator tuned: %s", _allocator_tuned)
    return _allocator_tuned


@dataclass(frozen=True)
class Utterance:
    attack: str
    file: str
    path: Path
    protocol: Path  # the protocol file and 1-based line that listed it first
    line: int

    @property
    def source(self) -> str:
        return f"{self.protocol}:{self.line}"

    @property
    def key(self) -> tuple[str, str]:
        return (self.attack, self.file)


@dataclass
class Extraction:
    """Embeddings in utterance order; rows of failed utterances are NaN and listed in `failed`."""

    embeddings: np.ndarray
    failed: dict[int, str] = field(default_factory=dict)
    work: Path | None = None  # chunk folder; the caller removes it once its outputs are committed


def resolve_device(name: str) -> torch.device:
    if name in ("auto", "", None):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise StageError(f"device {name!r} is not a valid torch device (try cpu, cuda, cuda:1, auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StageError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


class _BatchAudio(Dataset):
    """Dataset of whole batches: item b is (indices, [waveform or error message])."""

    def __init__(self, utterances: list[Utterance], batches: list[list[int]]):
        self.utterances = utterances
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int):
        return self.batches[b], _decode(self.utterances, self.batches[b])


def _decode(utterances: list[Utterance], indices: list[int]) -> list:
    """(waveform at the file's own rate, rate) or an error message for each of `indices`.

    Resampling is left to the main thread: it is a torch operation, and one started in a
    decoding thread would bring up a second team of intra-op threads next to the
    network's, on the same cores."""
    waves = []
    for i in indices:
        try:
            waves.append(decode_audio(utterances[i].path))
        except AudioError as exc:
            waves.append(str(exc))
    return waves


def _decode_in_threads(utterances: list[Utterance], batches: list[list[int]], workers: int):
    """Yield (indices, decoded) per batch, in order; `workers` threads decode ahead."""
    if workers == 0:
        for batch in batches:
            yield batch, _decode(utterances, batch)
        return
    ahead = max(4 * workers, 8)  # batches decoded ahead of the network
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        queue: deque = deque()
        todo = iter(batches)
        try:
            for batch in todo:
                queue.append((batch, pool.submit(_decode, utterances, batch)))
                if len(queue) >= ahead:
                    break
            while queue:
                batch, future = queue.popleft()
                for nxt in todo:
                    queue.append((nxt, pool.submit(_decode, utterances, nxt)))
                    break
                yield batch, future.result()
        finally:
            for _, future in queue:
                future.cancel()


def _check_exist(utterances: list[Utterance], on_error: str, failed: dict[int, str]) -> None:
    missing = [i for i, u in enumerate(utterances) if not u.path.is_file()]
    if not missing:
        return
    if on_error == "skip":
        failed.update({i: "audio file not found" for i in missing})
        return
    shown = "\n".join(f"  {utterances[i].source}: {utterances[i].path}" for i in missing[:20])
    more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
    raise StageError(f"{len(missing)} audio file(s) not found (check database_path and the audio "
                     f"path templates):\n{shown}{more}")


def _fitted_length_fn(model):
    cache: dict[int, int] = {}

    def fitted(n: int) -> int:
        if n not in cache:
            cache[n] = int(model.fit_input(torch.empty(n)).shape[-1])
        return cache[n]
    return fitted


def plan_batches(lengths: list[int] | None, batch_size: int, segments: list[range]) -> list[list[int]]:
    """Batches of indices. With `lengths`: equal-length groups (sorted by length, then index);
    without: consecutive indices within each segment."""
    if lengths is None:
        return [list(seg[i:i + batch_size]) for seg in segments for i in range(0, len(seg), batch_size)]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, n in enumerate(lengths):
        if n >= 0:
            by_length[n].append(i)
    return [idx[i:i + batch_size] for n in sorted(by_length) for idx in [by_length[n]]
            for i in range(0, len(idx), batch_size)]


def _chunks(batches: list[list[int]], chunk_size: int) -> list[list[list[int]]]:
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


def _save_chunk(path: Path, indices: list[int], rows: np.ndarray, failed: dict[int, str]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, indices=np.asarray(indices, dtype=np.int64), rows=rows,
                     failed=json.dumps({str(k): v for k, v in failed.items()}))


def _load_chunk(path: Path):
    with np.load(path) as z:
        failed = {int(k): v for k, v in json.loads(str(z["failed"])).items()}
        return z["indices"], z["rows"], failed


class Extractor:
    """Runs one model over lists of utterances with one input policy."""

    def __init__(self, model, policy: str, batch_size: int, num_workers: int, device: torch.device,
                 on_error: str = "fail", signature: str = "", chunk_size: int = 512,
                 precision: str = "fp32", decoder: str = "auto", max_forward_samples: int | None = -1,
                 max_seconds: float | None = None, world=None):
        if precision not in PRECISIONS:
            raise StageError(f"precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder {decoder!r}; expected one of {DECODERS}")
        self.model = model
        self.policy = policy
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = torch.device(device)
        self.on_error = on_error
        self.signature = signature  # model identity, for naming resumable work
        self.chunk_size = chunk_size
        self.precision = precision
        # decoding threads on CPU, processes on CUDA (see the module doc)
        self.decoder = decoder if decoder != "auto" else ("processes" if self.device.type == "cuda" else "threads")
        if precision == "fp16" and self.device.type == "cpu":
            log.warning("precision fp16 on CPU is many times slower than fp32; bf16 is the fast one there")
        self._inflight: deque = deque()  # CUDA batches whose embeddings are on their way back
        # a planned batch goes through the network in passes of at most this many samples
        # (-1: CPU_FORWARD_SAMPLES on CPU, no limit on GPUs; None: no limit); as batches only
        # stack independent rows, this changes no embedding
        self.max_forward_samples = (max_forward_samples if max_forward_samples != -1 else
                                    CPU_FORWARD_SAMPLES if self.device.type == "cpu" else None)

    def _lengths(self, utterances: list[Utterance], failed: dict[int, str]) -> list[int] | None:
        if self.policy == "reference":
            return None
        fitted = _fitted_length_fn(self.model)
        if fitted(16000) == fitted(1_000_000):  # the policy makes every input the same length
            return [-1 if i in failed else fitted(16000) for i in range(len(utterances))]

        def probe(i: int) -> int | str:
            if i in failed:
                return -1
            try:
                return fitted(probe_length(utterances[i].path))
            except AudioError as exc:
                return str(exc)
        with ThreadPoolExecutor(8) as pool:
            probed = list(pool.map(probe, range(len(utterances))))
        for i, value in enumerate(probed):
            if isinstance(value, str):
                self._fail(utterances, failed, i, value)
                probed[i] = -1
        return probed

    def _fail(self, utterances: list[Utterance], failed: dict[int, str], i: int, reason: str) -> None:
        if self.on_error == "fail":
            raise StageError(f"{utterances[i].source}: {reason}")
        failed[i] = reason

    def _work_dir(self, work_root: Path, utterances: list[Utterance], segments: list[range]) -> Path:
        h = hashlib.sha256()
        h.update(json.dumps([self.signature, self.policy, self.batch_size, self.chunk_size, str(self.device),
                             self.precision,
                             [(u.attack, u.file, str(u.path)) for u in utterances],
                             [(s.start, s.stop) for s in segments]]).encode())
        return work_root / h.hexdigest()[:16]

    def extract(self, utterances: list[Utterance], work_root: Path, segments: list[range] | None = None,
                desc: str = "extracting") -> Extraction:
        segments = segments or [range(len(utterances))]
        failed: dict[int, str] = {}
        _check_exist(utterances, self.on_error, failed)
        batches = plan_batches(self._lengths(utterances, failed), self.batch_size, segments)
        batches = [kept for b in batches if (kept := [i for i in b if i not in failed])]

        dim = self.model.embedding_dim
        out = np.full((len(utterances), dim), np.nan, dtype=np.float32)
        work = self._work_dir(work_root, utterances, segments)
        work.mkdir(parents=True, exist_ok=True)
        chunks = _chunks(batches, self.chunk_size)
        pending: list[int] = []
        for k in range(len(chunks)):
            chunk_file = work / f"chunk_{k:06d}.npz"
            if chunk_file.is_file():
                indices, rows, chunk_failed = _load_chunk(chunk_file)
                out[indices] = rows
                failed.update(chunk_failed)
            else:
                pending.append(k)
        pending_set = set(pending)
        resumed = sum(len(b) for k in range(len(chunks)) if k not in pending_set for b in chunks[k])
        if resumed:
            log.info("%s: resuming, %d utterance(s) already done in %s", desc, resumed, work)

        batch_chunk = [k for k in pending for _ in chunks[k]]
        todo = [b for k in pending for b in chunks[k]]
        if self.device.type == "cpu":
            tune_cpu_allocator()
        if self.decoder == "threads":
            loader = _decode_in_threads(utterances, todo, self.num_workers)
        else:
            loader = DataLoader(_BatchAudio(utterances, todo), batch_size=None, shuffle=False,
                                num_workers=self.num_workers, prefetch_factor=4 if self.num_workers else None,
                                persistent_workers=False)
        chunk_indices: list[int] = []
        chunk_failed: dict[int, str] = {}
        remaining = {k: len(chunks[k]) for k in pending}
        resampled_rates: set[int] = set()
        self._inflight.clear()
        with tqdm(total=len(utterances) - len(failed), initial=resumed, desc=desc, unit="utt",
                  dynamic_ncols=True, disable=None) as bar, torch.inference_mode():
            for b, (indices, waves) in enumerate(loader):
                ready = []
                for i, item in zip(indices, waves):
                    if isinstance(item, str):
                        self._fail(utterances, chunk_failed, i, item)
                        continue
                    wave, rate = item
                    if rate != SAMPLE_RATE and rate not in resampled_rates:
                        resampled_rates.add(rate)
                        log.info("resampling %d Hz audio to 16000 Hz (first: %s)", rate, utterances[i].path)
                    x = self.model.fit_input(torch.as_tensor(to_model_rate(np.asarray(wave), rate)))
                    if x.shape[-1] < self.model.min_samples:
                        self._fail(utterances, chunk_failed, i,
                                   f"{utterances[i].path}: too short for the model ({x.shape[-1]} samples "
                                   f"at 16 kHz; at least {self.model.min_samples} needed)")
                        continue
                    ready.append((i, x))
                self._forward(ready, out)
                chunk_indices.extend(indices)
                bar.update(len(indices))
                k = batch_chunk[b]
                remaining[k] -= 1
                if remaining[k] == 0:
                    self._collect(out)
                    _save_chunk(work / f"chunk_{k:06d}.npz", chunk_indices, out[chunk_indices], chunk_failed)
                    failed.update(chunk_failed)
                    chunk_indices, chunk_failed = [], {}
            self._collect(out)
        return Extraction(out, failed, work)

    def _forward(self, ready: list[tuple[int, torch.Tensor]], out: np.ndarray) -> None:
        if not ready:
            return
        if self.policy == "reference":
            groups = [ready]
        else:  # equal lengths by plan; regroup in case a header misreported a length
            by_len: dict[int, list] = defaultdict(list)
            for i, x in ready:
                by_len[x.shape[-1]].append((i, x))
            groups = list(by_len.values())
        cuda = self.device.type == "cuda"
        dtype = PRECISIONS[self.precision]
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
            step = max(1, self.max_forward_samples // longest) if self.max_forward_samples else len(rows)
            passes += [(rows[k:k + step], batch[k:k + step]) for k in range(0, len(rows), step)]
        for rows, batch in passes:
            if cuda:
                batch = batch.pin_memory()
            with (torch.autocast(self.device.type, dtype=dtype) if dtype is not None else nullcontext()):
                embedding, _ = self.model(batch.to(self.device, non_blocking=True))
            if not cuda:
                out[rows] = embedding.float().numpy()
                continue
            # copy back without waiting; collected once the next batch is queued on the GPU
            host = torch.empty(embedding.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(embedding.float(), non_blocking=True)
            done = torch.cuda.Event()
            done.record(torch.cuda.current_stream(self.device))
            self._collect(out, keep=1)
            self._inflight.append((rows, host, done))

    def _collect(self, out: np.ndarray, keep: int = 0) -> None:
        """Write the embeddings of all but the `keep` most recent GPU batches into `out`."""
        while len(self._inflight) > keep:
            rows, host, done = self._inflight.popleft()
            done.synchronize()
            out[rows] = host.numpy()
