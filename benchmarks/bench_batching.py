"""Batch sizes and CPU throughput of the `full` policy with and without exact batching.

Two parts:

1. The plan alone (no audio, no network): `--plan-utterances` utterance lengths (one plan
   per corpus size) drawn from a
   STOPA-like distribution (log-normal durations, median `--median-s`, log-sd `--sigma`,
   clipped to [`--min-s`, `--max-s`]), in samples at 16 kHz, optionally rounded to a multiple
   of `--quantum` samples (vocoders emit whole hops, e.g. 256 samples: equal lengths are then
   likelier). For each `--plan-batch-sizes` it prints, for equal-length batching
   (`exact_batching: false`) and exact batching (`true`), the number of batches, the mean
   batch size, the share of utterances in batches of one, and the padding (padded samples /
   real samples, 0 for equal lengths).
2. CPU throughput of the network on `--utterances` generated waveforms of the same
   distribution, pre-loaded (no decoding), through the engine's own batching
   (`plan_batches` and `Extractor._forward`, so the engine's CPU sample cap per forward pass
   applies), both ways, as utterances/s and audio seconds/s (best of `--repeats`, the two
   ways interleaved; the spread is printed too).

    python benchmarks/bench_batching.py                            # defaults: 560k plan, CPU timing
    python benchmarks/bench_batching.py --models aasist --utterances 16 --repeats 2

Figures only: this is not a test and asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the seeded ResNet-34 weights

import models  # noqa: E402
from models.resnet34 import ResNet34  # noqa: E402
from resnet34_seeded import NUM_CLASSES, seeded_state_dict  # noqa: E402
from sourcetrace.extraction import Extractor, device as engine_device  # noqa: E402
from sourcetrace.extraction.plan import EXACT_MAX_PADDING, plan_batches  # noqa: E402

SR = 16000


def draw_lengths(n: int, median_s: float, sigma: float, min_s: float, max_s: float, quantum: int,
                 seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.lognormal(np.log(median_s), sigma, n), min_s, max_s)
    samples = np.maximum(quantum, np.round(seconds * SR / quantum).astype(int) * quantum)
    return samples.tolist()


def plan_figures(lengths: list[int], batch_size: int, exact: bool) -> dict:
    batches = plan_batches(lengths, batch_size, [range(len(lengths))], EXACT_MAX_PADDING if exact else None)
    sizes = np.array([len(b) for b in batches])
    real = sum(lengths)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return {"batches": len(batches), "mean_batch": float(sizes.mean()),
            "in_batches_of_one": float(sizes[sizes == 1].sum() / len(lengths)),
            "padding": padded / real - 1}


def load(name: str):
    if name == "aasist":
        cfg = json.loads((REPO / "config" / "AASIST.conf").read_text())
        return models.load_model(cfg["model_config"], REPO / cfg["model_path"], "full")
    cfg = json.loads((REPO / "config" / "ResNet-34.conf").read_text())
    model = ResNet34(cfg["model_config"], NUM_CLASSES, "full")
    model.load_state_dict(seeded_state_dict(), strict=True)
    return model.eval()


def time_once(model, waves: list[torch.Tensor], batch_size: int, exact: bool) -> float:
    extractor = Extractor(model, "full", batch_size, 0, "cpu", exact_batching=exact)
    lengths = [w.numel() for w in waves]
    batches = plan_batches(lengths, batch_size, [range(len(waves))], EXACT_MAX_PADDING if extractor.exact else None)
    out = np.zeros((len(waves), model.embedding_dim), dtype=np.float32)
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            extractor._forward([(i, waves[i]) for i in batch], out)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--median-s", type=float, default=3.0)
    parser.add_argument("--sigma", type=float, default=0.5, help="log-normal sigma of the durations")
    parser.add_argument("--min-s", type=float, default=0.5)
    parser.add_argument("--max-s", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plan-utterances", type=int, nargs="+", default=[560_000, 5_000],
                        help="corpus sizes planned (STOPA has about 560k trials; one plan each)")
    parser.add_argument("--plan-batch-sizes", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--quantum", type=int, nargs="+", default=[1, 256],
                        help="lengths rounded to multiples of this many samples (one plan each)")
    parser.add_argument("--models", nargs="*", choices=["aasist", "resnet34"], default=["aasist", "resnet34"])
    parser.add_argument("--utterances", type=int, default=16, help="generated waveforms for the CPU timing")
    parser.add_argument("--timing-max-s", type=float, default=8.0, help="longest timed waveform (seconds)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch_size of the CPU timing")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    args = parser.parse_args()

    print(f"lengths: log-normal, median {args.median_s} s, sigma {args.sigma}, clipped to "
          f"[{args.min_s}, {args.max_s}] s; exact batching: longest <= {1 + EXACT_MAX_PADDING:g} x shortest")
    print("\n1. plans")
    print(f"{'utterances':>10} {'quantum':>7} {'batch_size':>10} {'batching':>8} {'batches':>9} {'mean size':>9} "
          f"{'in size 1':>9} {'padding':>8}")
    for n in args.plan_utterances:
        for quantum in args.quantum:
            lengths = draw_lengths(n, args.median_s, args.sigma, args.min_s, args.max_s, quantum, args.seed)
            for batch_size in args.plan_batch_sizes:
                for exact in (False, True):
                    f = plan_figures(lengths, batch_size, exact)
                    print(f"{n:>10} {quantum:>7} {batch_size:>10} {'exact' if exact else 'equal':>8} "
                          f"{f['batches']:>9} {f['mean_batch']:>9.2f} {f['in_batches_of_one']:>9.1%} "
                          f"{f['padding']:>8.2%}")

    if not args.models:
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    engine_device.tune_cpu_allocator()  # as the engine does on CPU
    lengths = draw_lengths(args.utterances, args.median_s, args.sigma, max(args.min_s, 0.5),
                           min(args.max_s, args.timing_max_s), 1, args.seed + 1)
    gen = torch.Generator().manual_seed(args.seed)
    waves = [0.1 * torch.randn(n, generator=gen) for n in lengths]
    audio_s = sum(lengths) / SR
    print(f"\n2. CPU throughput: {len(waves)} utterances, {audio_s:.1f} s of audio, batch_size {args.batch_size}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'model':>9} {'batching':>8} {'utt/s':>7} {'audio s/s':>9} {'spread':>7}")
    for name in args.models:
        model = load(name)
        time_once(model, waves[:2], args.batch_size, True)  # warm-up
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for exact in (False, True):
                times[exact].append(time_once(model, waves, args.batch_size, exact))
        for exact in (False, True):
            best = min(times[exact])
            spread = (statistics.median(times[exact]) - best) / best
            print(f"{name:>9} {'exact' if exact else 'equal':>8} {len(waves) / best:>7.2f} {audio_s / best:>9.2f} "
                  f"{spread:>7.1%}")


if __name__ == "__main__":
    main()
