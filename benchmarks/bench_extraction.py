"""Extraction throughput: the network alone versus the whole engine, on the same audio.

For each model, device and input policy it prints

- the network alone on pre-loaded, pre-fitted waveforms, batched exactly as the engine
  batches them (equal lengths only, never padded), for each batch size asked for;
- the engine (`Extractor.extract`: header probing, decoding, batching, chunk files) at the
  best of those batch sizes, or at `--engine-batch-size`;

as utterances/s and audio-seconds/s, and the ratio engine / network alone. Each figure is
the best of `--repeats` passes, the passes of network and engine interleaved, which keeps
out most of the noise of other work on the machine (the spread is printed too).

`--ablation` instead times the network alone at one batch size under each optimisation in
turn (each in a fresh process, since the allocator setting cannot be undone): plain eager
forward with glibc's default allocator, + allocator tuning, + the models' inference route,
+ bfloat16 autocast.

Audio: `--audio-dir` (every .wav/.flac below it), or generated: `--files` FLAC files whose
durations are log-normal (`--median-s`, `--sigma`) clipped to [`--min-s`, `--max-s`].

    python benchmarks/bench_extraction.py                      # AASIST and ResNet-34, CPU (+ GPU)
    python benchmarks/bench_extraction.py --models aasist --policies fixed --batch-sizes 1 2 4
    python benchmarks/bench_extraction.py --ablation --models aasist resnet34

Figures only: this is not a test and asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the seeded ResNet-34 weights

import models  # noqa: E402
from models.aasist import AASIST  # noqa: E402
from models.resnet34 import ResNet34  # noqa: E402
from sourcetrace import extraction  # noqa: E402
from sourcetrace.extraction import device as engine_device  # noqa: E402
from sourcetrace.audio import load_audio  # noqa: E402
from resnet34_seeded import NUM_CLASSES, seeded_state_dict  # noqa: E402
from sourcetrace.extraction import PRECISIONS, Extractor, Utterance  # noqa: E402

MODELS = {  # name: (config file, checkpoint relative to the repository root or None: seeded weights)
    "aasist": ("config/AASIST.conf", "models/AASIST_CM.pth"),
    "resnet34": ("config/ResNet-34.conf", None),
}
SR = 16000


def make_audio(folder: Path, n: int, median_s: float, sigma: float, min_s: float, max_s: float,
               seed: int, rate: int = SR) -> list[Path]:
    """`n` FLAC files of noise shaped like speech (syllable-rate envelope, a few harmonics)."""
    rng = np.random.default_rng(seed)
    durations = np.clip(rng.lognormal(np.log(median_s), sigma, n), min_s, max_s)
    paths = []
    for k, seconds in enumerate(durations):
        t = np.arange(int(seconds * rate)) / rate
        f0 = rng.uniform(90, 220)
        voiced = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6.3)) / h for h in range(1, 6))
        envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 5) * t)) ** 2
        wave = 0.1 * envelope * voiced + 0.01 * rng.standard_normal(t.size)
        path = folder / f"utt_{k:05d}.flac"
        sf.write(path, (wave / max(1.0, np.abs(wave).max())).astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def load_model(name: str, policy: str, device: torch.device) -> torch.nn.Module:
    config, checkpoint = MODELS[name]
    model_config = json.loads((REPO / config).read_text())["model_config"]
    if checkpoint is None:  # the trained ResNet-34 is not public; its speed does not depend on the weights
        model = ResNet34(model_config, NUM_CLASSES, policy)
        model.load_state_dict(seeded_state_dict(model_config), strict=True)
        return model.eval().to(device)
    return models.load_model(model_config, REPO / checkpoint, policy, device)


def plan(inputs: list[torch.Tensor], batch_size: int) -> list[list[int]]:
    """The engine's batching: equal lengths together, in order of length."""
    return extraction.plan_batches([x.shape[-1] for x in inputs], batch_size, [range(len(inputs))])


def time_model(model, inputs: list[torch.Tensor], batch_size: int, device: torch.device,
               precision: str) -> float:
    """Seconds for the network alone over all `inputs` (already on `device`)."""
    dtype = PRECISIONS[precision]
    batches = [torch.stack([inputs[i] for i in b]) for b in plan(inputs, batch_size)]
    with torch.inference_mode(), (torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()):
        model(batches[0])  # warm-up (first call of a shape initialises kernels)
        sync(device)
        start = time.perf_counter()
        for batch in batches:
            embedding, _ = model(batch)
            embedding.float().cpu()  # as the engine does: every batch's embeddings come back
        sync(device)
        return time.perf_counter() - start


def time_engine(model, policy: str, utterances: list[Utterance], batch_size: int, workers: int,
                device: torch.device, precision: str, decoder: str, work: Path, max_forward: int) -> float:
    extractor = Extractor(model, policy, batch_size, workers, device, precision=precision, decoder=decoder,
                          max_forward_samples=max_forward or None)
    start = time.perf_counter()
    result = extractor.extract(utterances, work, desc=f"engine {policy}")
    sync(device)
    seconds = time.perf_counter() - start
    shutil.rmtree(work)  # its embedding cache: the next run must compute again
    assert not result.failed, result.failed
    return seconds


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(n: int, audio_s: float, seconds: float) -> str:
    return f"{n / seconds:8.2f} utt/s {audio_s / seconds:8.1f} audio-s/s"


def spread(times: list[float]) -> str:
    return f"(best of {len(times)}; worst {max(times) / min(times) - 1:+.0%})" if len(times) > 1 else ""


def bench(args, name: str, device: torch.device, paths: list[Path], work: Path) -> None:
    utterances = [Utterance("bench", p.name, p, Path("bench"), k) for k, p in enumerate(paths)]
    waves = [torch.from_numpy(load_audio(p)[0]) for p in paths]
    batch_sizes = args.batch_sizes or ([1, 2, 4, 8] if device.type == "cpu" else [1, 8, 32, 64])
    for policy in args.policies:
        model = load_model(name, policy, device)
        inputs = [model.fit_input(w).to(device) for w in waves]
        audio_s = sum(x.shape[-1] for x in inputs) / SR
        lengths = {x.shape[-1] for x in inputs}
        print(f"\n{name} {policy} on {device} ({torch.get_num_threads()} threads, precision {args.precision}, "
              f"model optimisations {'on' if not args.no_model_opt else 'off'}"
              f"{', no length buckets' if args.no_length_buckets and name == 'aasist' else ''}): {len(inputs)} utterances, "
              f"{audio_s:.1f} s of network input, {len(lengths)} distinct length(s)")
        if len(lengths) == len(inputs) and len(batch_sizes) > 1:
            print("  every length distinct: batches hold one utterance whatever the batch size; "
                  "timing batch size 1 only")
            sizes = [1]
        else:
            sizes = batch_sizes
        # the first pass over a set of lengths pays for creating the convolution kernels of each
        # new shape (and for growing the heap); it is timed on its own, through the engine
        engine_bs = args.engine_batch_size or sizes[0]
        cold = time_engine(model, policy, utterances, engine_bs, args.num_workers, device, args.precision,
                           args.decoder, work, args.max_forward_samples)
        model_times: dict[int, list[float]] = defaultdict(list)
        engine_times: list[float] = []
        for _ in range(args.repeats):  # then network and engine, interleaved, on known shapes
            for bs in sizes:
                model_times[bs].append(time_model(model, inputs, bs, device, args.precision))
            best_bs = args.engine_batch_size or min(sizes, key=lambda b: min(model_times[b]))
            engine_times.append(time_engine(model, policy, utterances, best_bs, args.num_workers, device,
                                            args.precision, args.decoder, work, args.max_forward_samples))
        for bs in sizes:
            print(f"  network alone, batch {bs:3d}: {rate(len(inputs), audio_s, min(model_times[bs]))} "
                  f"{spread(model_times[bs])}")
        best = min(min(model_times[b]) for b in sizes)
        engine_s = min(engine_times)
        probe = Extractor(model, policy, 1, 0, device, decoder=args.decoder,
                          max_forward_samples=args.max_forward_samples or None)
        cap = f", <= {probe.max_forward_samples} samples/pass" if probe.max_forward_samples else ""
        print(f"  engine, batch {best_bs:3d}{cap}, {args.num_workers} {probe.decoder} decoding: "
              f"{rate(len(inputs), audio_s, engine_s)} {spread(engine_times)}")
        print(f"  engine, first pass (batch {engine_bs}, every shape new): {rate(len(inputs), audio_s, cold)}")
        print(f"  engine / network alone (best batch size): {best / engine_s:.3f}")


def model_only(args, name: str, device: torch.device, paths: list[Path]) -> dict:
    """Network alone, one batch size, one policy: for `--ablation`'s subprocesses."""
    policy = args.policies[0]
    model = load_model(name, policy, device)
    inputs = [model.fit_input(torch.from_numpy(load_audio(p)[0])).to(device) for p in paths]
    bs = (args.batch_sizes or [1])[0]
    times = [time_model(model, inputs, bs, device, args.precision) for _ in range(args.repeats)]
    audio_s = sum(x.shape[-1] for x in inputs) / SR
    return {"seconds": min(times), "utterances": len(inputs), "audio_s": audio_s}


def ablation(args, devices: list[torch.device], audio_dir: Path) -> None:
    steps = [("plain eager, default allocator", ["--no-allocator-tuning", "--no-model-opt"]),
             ("+ allocator tuning", ["--no-model-opt"]),
             ("+ model inference route", []),
             ("+ bf16 autocast", ["--precision", "bf16"])]
    for device in devices:
        for name in args.models:
            for policy in args.policies:
                bs = (args.batch_sizes or [1])[0]
                print(f"\nablation: {name} {policy}, network alone, batch {bs}, {device}, "
                      f"{args.threads or torch.get_num_threads()} threads")
                base = None
                for label, flags in steps:
                    if device.type == "cuda" and "--no-allocator-tuning" in flags:
                        continue
                    cmd = [sys.executable, __file__, "--model-only", "--audio-dir", str(audio_dir),
                           "--models", name, "--policies", policy, "--devices", str(device),
                           "--files", str(args.files), "--batch-sizes", str(bs), "--repeats", str(args.repeats),
                           *flags]
                    if args.threads:
                        cmd += ["--threads", str(args.threads)]
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    if done.returncode:
                        print(f"  {label:32s} failed: {done.stderr.strip().splitlines()[-1:]}")
                        continue
                    res = json.loads(done.stdout.strip().splitlines()[-1])
                    base = base or res["seconds"]
                    print(f"  {label:32s} {rate(res['utterances'], res['audio_s'], res['seconds'])}  "
                          f"x{base / res['seconds']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["aasist", "resnet34"])
    parser.add_argument("--policies", nargs="+", choices=["full", "fixed"], default=["full", "fixed"])
    parser.add_argument("--devices", nargs="+", default=None,
                        help="torch devices (default: cpu, and cuda when available)")
    parser.add_argument("--audio-dir", type=Path, help="use these .wav/.flac files instead of generated ones")
    parser.add_argument("--files", type=int, default=40, help="generated files (default 40)")
    parser.add_argument("--median-s", type=float, default=3.0)
    parser.add_argument("--sigma", type=float, default=0.6, help="log-normal sigma of the durations")
    parser.add_argument("--min-s", type=float, default=1.0)
    parser.add_argument("--max-s", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=SR,
                        help="of the generated files (the engine resamples other rates to 16 kHz)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    parser.add_argument("--num-workers", type=int, default=2, help="engine decoding workers (default 2)")
    parser.add_argument("--decoder", choices=extraction.decode.DECODERS, default="auto",
                        help="engine decoding in threads or DataLoader processes (default: auto)")
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        help="network-alone batch sizes (default 1 2 4 8 on CPU, 1 8 32 64 on GPU)")
    parser.add_argument("--engine-batch-size", type=int, help="default: the network's best")
    parser.add_argument("--max-forward-samples", type=int, default=-1,
                        help="engine's limit of input samples per forward pass (default: its own, "
                             "extraction.CPU_FORWARD_SAMPLES on CPU; 0: none)")
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    parser.add_argument("--repeats", type=int, default=2, help="passes per figure, best kept (default 2)")
    parser.add_argument("--no-model-opt", action="store_true",
                        help="plain layer-by-layer forward (AASIST.optimized = ResNet34.optimized = False)")
    parser.add_argument("--no-length-buckets", action="store_true",
                        help="AASIST: no padding of the encoder's time axis to shared lengths (AASIST.bucket = 0)")
    parser.add_argument("--no-allocator-tuning", action="store_true",
                        help="leave glibc's allocator as it is (extraction.tune_cpu_allocator not applied)")
    parser.add_argument("--ablation", action="store_true",
                        help="network alone under each optimisation in turn (batch: first of --batch-sizes)")
    parser.add_argument("--model-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_model_opt:
        AASIST.optimized = ResNet34.optimized = False
    if args.no_length_buckets:
        AASIST.bucket = 0
    if args.no_allocator_tuning:
        engine_device.tune_cpu_allocator = lambda: False  # the engine calls it through its module
    else:
        engine_device.tune_cpu_allocator()
    devices = [torch.device(d) for d in args.devices] if args.devices else (
        [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else []))

    with tempfile.TemporaryDirectory(prefix="bench_extraction_") as tmp:
        tmp = Path(tmp)
        if args.audio_dir:
            paths = sorted(p for p in args.audio_dir.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
            paths = paths[: args.files]
            audio_dir = args.audio_dir
        else:
            audio_dir = tmp / "audio"
            audio_dir.mkdir()
            paths = make_audio(audio_dir, args.files, args.median_s, args.sigma, args.min_s, args.max_s, args.seed,
                               args.sample_rate)
        if args.model_only:
            print(json.dumps(model_only(args, args.models[0], devices[0], paths)))
            return
        seconds = [sf.info(str(p)).duration for p in paths]
        print(f"{len(paths)} files, {sum(seconds):.1f} s of audio, durations {min(seconds):.2f} to "
              f"{max(seconds):.2f} s (median {statistics.median(seconds):.2f} s); torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads; allocator tuned: {engine_device.tune_cpu_allocator()}")
        if args.ablation:
            ablation(args, devices, audio_dir)
            return
        for device in devices:
            for name in args.models:
                bench(args, name, device, paths, tmp / "work")


if __name__ == "__main__":
    main()
