"""One prepared GPU check: everything a GPU must confirm, in one process, one PASS/FAIL line each.

    python benchmarks/gpu_check.py                          # on the GPU (cuda), under 8 minutes on one H100/H200
    python benchmarks/gpu_check.py --device cpu --tiny      # the same checks at toy size (the test suite runs this)

Checks, in order (`--only NAME ...` runs some of them):

- `parity`: AASIST_CM on the golden inputs and the seeded ResNet-34 on its golden inputs, on
  the device in fp32, against the golden outputs (1e-3, as the tests) and against this
  machine's CPU (1e-4, relative to the embedding's size for the seeded ResNet-34).
- `precision`: bf16 and fp16 (under `torch.autocast`) against fp32 on the device: cosine of
  every embedding >= 0.999.
- `throughput`: utterances/s, audio seconds/s and peak GPU memory of AASIST and ResNet-34 on
  pre-loaded waveforms of a STOPA-like length distribution (log-normal, median 3 s), through
  the engine's own batching (`plan_batches`, `Extractor._forward`), under `full` with and
  without exact batching, `fixed` and `reference`, at several batch sizes, in fp32 and bf16.
  A configuration that runs out of GPU memory is recorded as such (a figure, not a FAIL).
- `pipeline`: stages 1-5 for AASIST_CM on Mini-STOPA (`--tiny`: a small generated corpus) with
  `--device DEVICE` and with `--device cpu`: the pooled EERs must agree (0.05 points).
- `training`: one epoch of the demo ResNet-34 (`config/demo_ResNet-34.conf`) in bf16.
- `torchrun`: the same under `torchrun --nproc_per_node=1` (NCCL on CUDA, gloo on CPU).

Prints one line per check, `PASS name: ...` or `FAIL name: ...`, writes every figure to the
JSON file `--out` (default `gpu_check.json` in the current directory) and exits 1 on any FAIL
(2 when a module it needs is missing: the imports are checked first).

Bringing `soundfile` to a GPU machine without network: the pipeline needs the `soundfile`
package (it bundles libsndfile in its manylinux wheel) and its dependency `cffi` (with
`pycparser`). On any machine with network, download the wheels for the GPU machine's Python
and platform, copy the folder along with the repository, and install from it there:

    pip download soundfile --only-binary=:all: --python-version 3.12 \\
        --platform manylinux2014_x86_64 -d wheels/          # on a machine with network
    pip install --no-index --find-links wheels/ soundfile   # on the GPU machine
"""
from __future__ import annotations

import importlib.util
import sys

NEEDED = ("torch", "torchaudio", "numpy", "soundfile", "pyarrow", "tqdm", "matplotlib")


def _check_imports() -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        how = (" (no network? see this script's docstring: bring the soundfile wheel along)"
               if "soundfile" in missing else "")
        print(f"error: missing Python package(s): {', '.join(missing)}{how}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    _check_imports()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # golden fixtures' helpers, seeded ResNet-34, generated corpus

import models  # noqa: E402
from models.resnet34 import ResNet34  # noqa: E402
from resnet34_seeded import CONFIG as RESNET_SEEDED, NUM_CLASSES, seeded_state_dict  # noqa: E402
from sourcetrace.extraction import Extractor  # noqa: E402
from sourcetrace.extraction import device as engine_device  # noqa: E402
from sourcetrace.extraction.plan import EXACT_MAX_PADDING, plan_batches  # noqa: E402

SR = 16000
FIXTURES = REPO / "tests" / "fixtures"
CHECKS = ("parity", "precision", "throughput", "pipeline", "training", "torchrun")


class Failed(Exception):
    """A check's finding: printed as its FAIL line."""


# ----------------------------------------------------------------------------- models and inputs

def aasist(policy: str = "full", device="cpu"):
    cfg = json.loads((REPO / "config" / "AASIST.conf").read_text())
    return models.load_model(cfg["model_config"], REPO / cfg["model_path"], policy, device)


def resnet34(policy: str = "fixed", device="cpu"):
    model = ResNet34(RESNET_SEEDED, NUM_CLASSES, policy)
    model.load_state_dict(seeded_state_dict(), strict=True)
    return model.eval().to(device)


def golden_inputs(tiny: bool) -> dict:
    """name -> (model factory, list of waveforms, golden embeddings or None)."""
    a = np.load(FIXTURES / "aasist_golden_outputs.npz")
    r = np.load(FIXTURES / "resnet34_seeded_golden.npz")
    a_waves = [torch.from_numpy(x) for x in a["inputs"]]
    r_waves = [torch.from_numpy(r[f"input{i}"].astype(np.float32) / 32768) for i in range(3)]
    a_gold, r_gold = a["AASIST_CM_emb"], r["emb"]
    if tiny:  # one golden input of each (4 s; 2.5 s)
        a_waves, a_gold, r_waves, r_gold = a_waves[:1], a_gold[:1], r_waves[:1], r_gold[:1]
    return {"AASIST_CM": (aasist, a_waves, a_gold), "ResNet-34 (seeded)": (resnet34, r_waves, r_gold)}


def embed(model, waves, device, precision="fp32") -> np.ndarray:
    dtype = engine_device.PRECISIONS[precision]
    rows = []
    with torch.inference_mode():
        for w in waves:
            context = torch.autocast(torch.device(device).type, dtype=dtype) if dtype else _null()
            with context:
                e, _ = model(w.unsqueeze(0).to(device))
            rows.append(e.float().cpu().numpy()[0])
    return np.stack(rows)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------- checks

def check_parity(args) -> dict:
    engine_device.set_float32_math(args.device, "fp32")
    figures, bad = {}, []
    for name, (factory, waves, gold) in golden_inputs(args.tiny).items():
        on_device = embed(factory(device=args.device), waves, args.device)
        on_cpu = embed(factory(device="cpu"), waves, "cpu") if torch.device(args.device).type != "cpu" else on_device
        scale = max(1.0, float(np.abs(on_cpu).max()))
        vs_golden, vs_cpu = float(np.abs(on_device - gold).max()), float(np.abs(on_device - on_cpu).max())
        figures[name] = {"max_abs_vs_golden": vs_golden, "max_abs_vs_cpu": vs_cpu, "embedding_scale": scale}
        if vs_golden > 1e-3 * scale or vs_cpu > 1e-4 * scale:
            bad.append(f"{name}: {vs_golden:.2e} from golden, {vs_cpu:.2e} from CPU")
    if bad:
        raise Failed("; ".join(bad))
    return figures


def check_precision(args) -> dict:
    figures, bad = {}, []
    for name, (factory, waves, _) in golden_inputs(args.tiny).items():
        model = factory(device=args.device)
        if args.tiny:  # 1 s of each: fp16 is slow on CPU
            waves = [w[:SR] for w in waves]
        engine_device.set_float32_math(args.device, "fp32")
        ref = embed(model, waves, args.device)
        for precision in ("bf16", "fp16"):
            low = embed(model, waves, args.device, precision)
            cos = (low * ref).sum(1) / (np.linalg.norm(low, axis=1) * np.linalg.norm(ref, axis=1))
            figures[f"{name} {precision}"] = {"min_cosine": float(cos.min())}
            if not np.isfinite(low).all() or cos.min() < 0.999:
                bad.append(f"{name} {precision}: cosine {cos.min():.5f}")
    if bad:
        raise Failed("; ".join(bad))
    return figures


def stopa_like_lengths(n: int, seed: int, median_s: float, low_s: float, high_s: float) -> list[int]:
    rng = np.random.default_rng(seed)
    return (np.clip(rng.lognormal(np.log(median_s), 0.5, n), low_s, high_s) * SR).astype(int).tolist()


def run_network(model, waves, policy: str, batch_size: int, device, precision: str, exact: bool) -> dict:
    """The engine's batching and forward passes on pre-loaded waveforms: utt/s, audio s/s, peak memory."""
    extractor = Extractor(model, policy, batch_size, 0, device, precision=precision, exact_batching=exact)
    fitted = [model.fit_input(w) for w in waves]
    lengths = [x.shape[-1] for x in fitted]
    batches = plan_batches(None if policy == "reference" else lengths, batch_size, [range(len(waves))],
                           EXACT_MAX_PADDING if extractor.exact else None)
    out = np.zeros((len(waves), model.embedding_dim), dtype=np.float32)
    cuda = extractor.device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            extractor._forward([(i, fitted[i]) for i in batch], out)
        extractor._collect(out)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if not np.isfinite(out).all():
        raise Failed(f"non-finite embeddings under {policy}, batch {batch_size}, {precision}")
    return {"utt_per_s": len(waves) / seconds, "audio_s_per_s": sum(w.numel() for w in waves) / SR / seconds,
            "mean_batch": len(waves) / len(batches),
            "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}


def check_throughput(args) -> dict:
    lengths = stopa_like_lengths(3, 0, 0.5, 0.3, 1.0) if args.tiny else stopa_like_lengths(384, 0, 3.0, 0.5, 20.0)
    batch_sizes = [2] if args.tiny else [16, 64, 256]
    gen = torch.Generator().manual_seed(0)
    waves = [0.1 * torch.randn(k, generator=gen) for k in lengths]
    figures, lines = {}, []
    for name, factory in (("AASIST", aasist), ("ResNet-34", resnet34)):
        runs = [("full", "exact", bs) for bs in batch_sizes] + [("full", "equal", batch_sizes[-1])] \
            + [("fixed", "", bs) for bs in batch_sizes] \
            + [("reference", "", bs) for bs in batch_sizes if bs <= 64]
        for policy, how, bs in runs:
            model = factory(policy, args.device)
            if not args.tiny:  # warm-up: first calls build kernels and caches
                run_network(model, waves[:2], policy, 2, args.device, "fp32", how != "equal")
            for precision in ("fp32", "bf16"):
                key = f"{name} {policy}{' ' + how if how else ''} batch {bs} {precision}"
                try:
                    figures[key] = run_network(model, waves, policy, bs, args.device, precision, how != "equal")
                except torch.OutOfMemoryError:
                    figures[key] = {"out_of_memory": True}
                    torch.cuda.empty_cache()
                f = figures[key]
                lines.append(f"  {key}: " + ("out of memory" if "out_of_memory" in f else
                                             f"{f['utt_per_s']:.1f} utt/s, {f['audio_s_per_s']:.0f} audio-s/s, "
                                             f"mean batch {f['mean_batch']:.1f}"
                                             + (f", peak {f['peak_gpu_gb']:.2f} GB" if f["peak_gpu_gb"] else "")))
    print("\n".join(lines))
    return figures


def _run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise Failed(f"{' '.join(Path(c).name if os.sep in c else c for c in cmd[:4])} ... exit {done.returncode}: "
                     + " | ".join(tail))
    return done


def _pipeline_config(args, work: Path) -> Path:
    cfg = json.loads((REPO / "config" / "demo.conf").read_text())
    for key in ("database_path", "enroll_protocol_dir", "trial_protocol_dir"):
        cfg[key] = str(REPO / cfg[key])
    if args.tiny:  # a small generated corpus in the STOPA layout (tests/corpus.py)
        from corpus import KNOWN, make_corpus
        corpus = make_corpus(work / "corpus", enroll_per_attack=3, trials_per_attack=2, sizes=(1, 2),
                             min_s=0.3, max_s=0.6)
        cfg.update(database_path=str(corpus.database), enroll_protocol_dir=str(corpus.enroll_dir),
                   trial_protocol_dir=str(corpus.trial_dir), known_attacks=KNOWN, bootstrap_resamples=0)
    cfg.update(model_path=str(REPO / cfg["model_path"]), output_dir=str(work / "out"))
    path = work / "pipeline.conf"
    path.write_text(json.dumps(cfg))
    return path


def check_pipeline(args) -> dict:
    from sourcetrace.registry import STAGES
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config = _pipeline_config(args, work)
        eers = {}
        for device in dict.fromkeys([args.device, "cpu"]):
            start = time.perf_counter()
            for number in range(1, 6):
                _run([sys.executable, str(REPO / STAGES[number].script), "--config", str(config), "--quiet",
                      "--device", device, "--set", f"output_dir={work / ('out-' + device.replace(':', '_'))}"], REPO)
            details = json.loads(next((work / f"out-{device.replace(':', '_')}").glob(
                "*_EERs_pooled/pooled_eer_details.json")).read_text())
            eers[device] = {f"{scenario} {label}": details[scenario][label]["eer_percent"]
                            for scenario in ("known", "unknown") for label in details[scenario]}
            eers[device]["seconds"] = time.perf_counter() - start
    ref = eers["cpu"]
    worst = max(abs(eers[args.device][k] - ref[k]) for k in ref if k != "seconds")
    figures = {"eer_percent": eers, "max_abs_difference_points": worst}
    if worst > 0.05:
        raise Failed(f"EERs on {args.device} differ from the CPU run's by up to {worst:.3f} points")
    return figures


def _training_cmd(args, work: Path, launcher: list[str]) -> list[str]:
    cmd = launcher + [str(REPO / "train_model.py"), "--config", str(REPO / "config" / "demo_ResNet-34.conf"),
                      "--quiet", "--device", args.device, "--set", f"output_dir={work}", "--set", "train.epochs=1",
                      "--set", "precision=bf16",
                      "--set", f"database_path={REPO / 'mini_stopa' / 'corpus'}",
                      "--set", f"train_protocol={REPO / 'mini_stopa' / 'corpus' / 'protocols_train' / 'train.txt'}"]
    if args.tiny:  # a toy ResNet-34 (tests/test_training.py's) and short crops
        cmd += ["--set", 'model_config={"architecture": "ResNet34", "n_mels": 40, "blocks": [1, 1, 1, 1], '
                '"channels": [4, 4, 8, 8], "embedding_dim": 16}', "--set", "train.crop_frames=50"]
    return cmd


def _one_epoch(args, launcher: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        _run(_training_cmd(args, work, launcher), REPO, {"OMP_NUM_THREADS": "1"} if args.tiny else None)
        seconds = time.perf_counter() - start
        history = next(work.glob("*_training/history.csv")).read_text().strip().splitlines()
        best = list(work.glob("*_training/best.pth"))
        if len(history) != 2 or not best:
            raise Failed(f"expected one epoch in history.csv and best.pth; got {len(history) - 1} row(s)")
        row = dict(zip(history[0].split(","), history[1].split(",")))
        losses = {k: float(v) for k, v in row.items() if "loss" in k}
        if not all(np.isfinite(v) for v in losses.values()):
            raise Failed(f"non-finite loss: {losses}")
        return {"seconds": seconds, **row}


def check_training(args) -> dict:
    return _one_epoch(args, [sys.executable])


def check_torchrun(args) -> dict:
    return _one_epoch(args, [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1"])


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--tiny", action="store_true", help="toy sizes (for CPU and the test suite)")
    parser.add_argument("--only", nargs="+", choices=CHECKS, help="run these checks only")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="JSON file of figures")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: CUDA is not available (torch {torch.__version__}, "
              f"CUDA build {torch.version.cuda}); use --device cpu --tiny for the toy run", file=sys.stderr)
        return 2
    report = {"device": args.device, "tiny": args.tiny, "torch": torch.__version__, "python": sys.version.split()[0],
              "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "checks": {}}
    failed = 0
    for name in args.only or CHECKS:
        start = time.perf_counter()
        try:
            figures, status, note = globals()[f"check_{name}"](args), "PASS", ""
        except Failed as exc:
            figures, status, note = {}, "FAIL", str(exc)
        except Exception as exc:  # a crash is a finding too: keep going with the other checks
            figures, status = {"traceback": traceback.format_exc()}, "FAIL"
            note = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        seconds = time.perf_counter() - start
        failed += status == "FAIL"
        report["checks"][name] = {"status": status, "note": note, "seconds": round(seconds, 1), "figures": figures}
        print(f"{status} {name}: {note or 'ok'} ({seconds:.1f} s)", flush=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # after every check: a crash keeps the rest
    print(f"{'FAIL' if failed else 'PASS'}: {len(report['checks']) - failed} of {len(report['checks'])} checks "
          f"passed; figures in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
