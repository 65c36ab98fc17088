"""Training throughput (utterances/s) of the full-size recipes, one process and several.

For each architecture (the recipe of `config/AASIST.conf` and `config/ResNet-34.conf`,
full-size models and crops: 64600 samples, 350 frames) it generates `--files` synthetic
4-second utterances of three classes under benchmarks/data/ (git-ignored), then runs
`train_model.py` for `--epochs` epochs with `--batch-size`, first in one process, then under
`torchrun --nproc_per_node=N` for each N of `--procs` (gloo on CPU). The figure is the
`utterances_per_s` column of history.csv for the last epoch (the first one also builds the
kernels): utterances trained per second of the epoch's training steps, all ranks together.

    python benchmarks/bench_training.py                        # both, CPU, 1 and 2 processes
    python benchmarks/bench_training.py --models resnet34 --procs 1 --device cuda

Figures only: this is not a test and asserts nothing.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "benchmarks" / "data" / "training"
CONFIGS = {"aasist": "config/AASIST.conf", "resnet34": "config/ResNet-34.conf"}


def make_data(files: int, seconds: float) -> Path:
    """`files` utterances (a harmonic tone over noise, pitch by class) and their protocol."""
    protocol = DATA / f"train_{files}.txt"
    if protocol.is_file():
        return protocol
    rng = np.random.default_rng(0)
    lines = []
    for i in range(files):
        attack = f"AA{11 + i % 3}"
        t = np.arange(int(seconds * 16000)) / 16000
        wave = 0.2 * np.sin(2 * np.pi * (120 + 60 * (i % 3)) * t) + 0.02 * rng.standard_normal(len(t))
        path = DATA / attack / f"B_{i:05d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave.astype(np.float32), 16000)
        lines.append(f"bench B_{i:05d} - {attack} spoof")
    protocol.write_text("\n".join(lines) + "\n")
    return protocol


def run(model: str, procs: int, args, protocol: Path) -> dict:
    out = DATA / f"out_{model}_{procs}"
    shutil.rmtree(out, ignore_errors=True)
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"]
                if procs > 1 else [sys.executable])
    sets = {"output_dir": str(out), "database_path": str(DATA), "train_protocol": str(protocol),
            "train_audio": "{database_path}/{attack}/{file}.flac", "dev_fraction": 0, "system": f"bench_{model}",
            "precision": args.precision, "train.epochs": args.epochs, "train.batch_size": args.batch_size,
            "train.num_workers": args.workers}
    command = launcher + ["train_model.py", "--config", CONFIGS[model], "--device", args.device, "-q"]
    for key, value in sets.items():
        command += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)}\n{done.stderr[-3000:]}")
    with open(out / f"bench_{model}_training" / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    return {"model": model, "procs": procs, "utt_s": float(rows[-1]["utterances_per_s"]),
            "epoch_s": float(rows[-1]["seconds"]), "wall_s": time.perf_counter() - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(CONFIGS), default=["aasist", "resnet34"])
    parser.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--files", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers per process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    args = parser.parse_args()
    protocol = make_data(args.files, args.seconds)
    print(f"{args.files} utterances of {args.seconds} s, batch {args.batch_size} (all ranks), {args.epochs} epochs, "
          f"{args.device}, {args.precision}, {os.cpu_count()} CPU cores; last epoch:")
    print(f"{'model':10} {'procs':>5} {'utt/s':>8} {'epoch s':>8} {'wall s':>8}")
    for model in args.models:
        for procs in args.procs:
            r = run(model, procs, args, protocol)
            print(f"{r['model']:10} {r['procs']:5d} {r['utt_s']:8.2f} {r['epoch_s']:8.1f} {r['wall_s']:8.1f}")


if __name__ == "__main__":
    main()
