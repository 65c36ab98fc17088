"""Decoding ahead of the network: threads of this process on CPU, DataLoader processes on CUDA.

On CPU, threads (libsndfile releases the GIL): worker processes would compete with the
network's own intra-op threads for the same cores and pay for passing every waveform
between processes. On CUDA, `num_workers` DataLoader processes. Workers only decode, at the
file's own rate; resampling is left to the main thread (see `decode_batch`).

DataLoader processes hand their waveforms over through `/dev/shm`; a container's default
64 MB there ends in "Bus error", so the engine decodes in threads where it is smaller than
`MIN_SHARED_MEMORY` (`processes_fit`).
"""
from __future__ import annotations

import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from torch.utils.data import DataLoader, Dataset

from ..audio import AudioError, decode_audio
from .types import Utterance

DECODERS = ("auto", "threads", "processes")
# a batch of 8 utterances of 30 s is 15 MB of float32, and each worker keeps 2 batches ahead
MIN_SHARED_MEMORY = 1 << 30


def shared_memory_bytes(path: str = "/dev/shm") -> int | None:
    """Size of the shared-memory file system (None where there is none, as on macOS)."""
    try:
        return shutil.disk_usage(path).total
    except OSError:
        return None


def processes_fit() -> bool:
    """Whether DataLoader worker processes can hand batches over through shared memory."""
    size = shared_memory_bytes()
    return size is None or size >= MIN_SHARED_MEMORY


def decode_batch(utterances: list[Utterance], indices: list[int]) -> list:
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


class _BatchAudio(Dataset):
    """Dataset of whole batches: item b is (indices, [waveform or error message])."""

    def __init__(self, utterances: list[Utterance], batches: list[list[int]]):
        self.utterances = utterances
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, b: int):
        return self.batches[b], decode_batch(self.utterances, self.batches[b])


def decoded_batches(utterances: list[Utterance], batches: list[list[int]], workers: int, decoder: str):
    """Yield (indices, decoded) per batch of `batches`, in order, decoded ahead by `workers`
    threads (`decoder` "threads") or DataLoader processes ("processes")."""
    if decoder == "processes":
        return iter(DataLoader(_BatchAudio(utterances, batches), batch_size=None, shuffle=False,
                               num_workers=workers, prefetch_factor=4 if workers else None,
                               persistent_workers=False))
    return _in_threads(utterances, batches, workers)


def _in_threads(utterances: list[Utterance], batches: list[list[int]], workers: int):
    if workers == 0:
        for batch in batches:
            yield batch, decode_batch(utterances, batch)
        return
    ahead = max(4 * workers, 8)  # batches decoded ahead of the network
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        queue: deque = deque()
        todo = iter(batches)
        try:
            for batch in todo:
                queue.append((batch, pool.submit(decode_batch, utterances, batch)))
                if len(queue) >= ahead:
                    break
            while queue:
                batch, future = queue.popleft()
                for nxt in todo:
                    queue.append((nxt, pool.submit(decode_batch, utterances, nxt)))
                    break
                yield batch, future.result()
        finally:
            for _, future in queue:
                future.cancel()
