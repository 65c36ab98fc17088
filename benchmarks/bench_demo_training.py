"""What `./demo.sh --train` shows, with its spread over seeds: the pooled EERs of the
ResNet-34 trained on Mini-STOPA's training attacks (config/demo_ResNet-34.conf) and of the
same network untrained (its seeded initialisation), for each of `--seeds`.

For each seed S it runs, as subprocesses, in `--out`/seed_S (git-ignored):

1. `train_model.py --config CONFIG --set train.seed=S` (timed);
2. the five stages with the trained `best.pth`;
3. the five stages with the untrained network of the same seed
   (`sourcetrace.training.stage.save_untrained`, system `<system>_untrained`).

It prints each run's pooled EER row, then per cell the mean and range (min-max) over the
seeds, for the trained and the untrained network, and the trained-minus-untrained difference
with how many seeds it is negative in (training helps). The README's training section quotes
this output.

    python benchmarks/bench_demo_training.py                      # seeds 1234 1 2 (about 20 min, 2 cores)
    python benchmarks/bench_demo_training.py --seeds 7 --set train.epochs=2

Figures only: this is not a test and asserts nothing.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sourcetrace.config import load_config  # noqa: E402
from sourcetrace.registry import STAGES  # noqa: E402
from sourcetrace.report import pooled_row  # noqa: E402
from sourcetrace.training.stage import save_untrained  # noqa: E402

CELLS = ("kn ATK", "kn AM", "kn VM", "unk ATK", "unk AM", "unk VM")
W = 20  # column width


def cpu() -> str:
    """The CPU's model name (Linux), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


ENV = dict(os.environ)


def run(command: list[str], log: Path) -> float:
    began = time.perf_counter()
    with open(log, "a") as handle:
        done = subprocess.run(command, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, text=True, env=ENV)
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}; see {log}")
    return time.perf_counter() - began


def stages(config: str, sets: list[str], log: Path) -> float:
    flags = [x for s in sets for x in ("--set", s)]
    return sum(run([sys.executable, STAGES[n].script, "--config", config, "-q", *flags], log) for n in range(1, 6))


def best_epoch(history: Path) -> tuple[int, int, float]:
    """(epoch of the lowest dev loss, epochs, dev accuracy there)."""
    with open(history) as handle:
        rows = list(csv.DictReader(handle))
    dev = [(float(r["dev_loss"]), int(r["epoch"]), float(r["dev_accuracy"])) for r in rows if r["dev_loss"]]
    if not dev:
        return len(rows), len(rows), float("nan")
    _, epoch, accuracy = min(dev)
    return epoch, len(rows), accuracy


def shown(path: str) -> str:
    """`path` relative to the repository when it is inside it."""
    return os.path.relpath(path, REPO) if Path(path).is_relative_to(REPO) else path


def row(name: str, values) -> str:
    return f"{name:28}" + "".join(f"{v:>{W}.2f}" for v in values)


def summary(name: str, runs: list[tuple[float, ...]]) -> str:
    """Per cell: mean (min..max) over the runs."""
    cells = list(zip(*runs))
    return f"{name:28}" + "".join(f"{f'{sum(c) / len(c):.2f} ({min(c):.1f}..{max(c):.1f})':>{W}}" for c in cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/demo_ResNet-34.conf",
                        help="the system to train (default: the demo's; relative to here or to the repository)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1234, 1, 2], help="train.seed of each run")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "data" / "demo_training",
                        help="where each seed's outputs and log go (seed_S/)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of every run (OMP_NUM_THREADS); default: torch's (the cores)")
    parser.add_argument("--nproc", type=int, default=1,
                        help="train data-parallel in N processes (torchrun, gloo on CPU; N must divide the batch)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for training and the stages (repeatable)")
    args = parser.parse_args()
    # paths given relative to where it is started; the demo config's own paths are relative to the repository
    config = Path(args.config) if Path(args.config).is_file() else REPO / args.config
    args.config, args.out = str(config.resolve()), args.out.resolve()
    os.chdir(REPO)
    if args.threads:
        ENV["OMP_NUM_THREADS"] = str(args.threads)
    trained, untrained, times = [], [], []
    load = os.getloadavg()[0]
    for seed in args.seeds:
        out = (args.out / f"seed_{seed}").resolve()
        out.mkdir(parents=True, exist_ok=True)
        log = out / "log.txt"
        log.write_text("")
        base = [*args.set, f"output_dir={out}", f"train.seed={seed}"]
        cfg = load_config(args.config, base)
        system = cfg["system"]
        flags = [x for s in base for x in ("--set", s)]
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}"]
                    if args.nproc > 1 else [sys.executable])
        t_train = run([*launcher, "train_model.py", "--config", args.config, "-q", "--force", *flags], log)
        best = out / f"{system}_training" / "best.pth"
        t_stages = stages(args.config, [*base, f"model_path={best}"], log)
        raw = out / "untrained.pth"
        save_untrained(cfg, raw)
        stages(args.config, [*base, f"model_path={raw}", f"system={system}_untrained"], log)
        epoch, epochs, accuracy = best_epoch(out / f"{system}_training" / "history.csv")
        trained.append(pooled_row(out, system))
        untrained.append(pooled_row(out, f"{system}_untrained"))
        times.append((t_train, t_stages))
        print(f"seed {seed}: training {t_train:.0f} s (best dev loss at epoch {epoch}/{epochs}, dev accuracy "
              f"{accuracy:.3f}), its five stages {t_stages:.0f} s", flush=True)
    threads = args.threads or "default"
    print(f"\n{cpu()}, {os.cpu_count()} CPU cores, intra-op threads: {threads}, training processes: {args.nproc}, "
          f"load {load:.1f} at the start; "
          f"config {shown(args.config)}" + "".join(f" --set {s}" for s in args.set))
    print("training s: " + ", ".join(f"{t:.0f}" for t, _ in times) + "; stages with the trained network s: "
          + ", ".join(f"{t:.0f}" for _, t in times))
    print(f"\n{'pooled EER (%)':28}" + "".join(f"{c:>{W}}" for c in CELLS))
    for seed, t, u in zip(args.seeds, trained, untrained):
        print(row(f"trained, seed {seed}", t))
        print(row(f"untrained, seed {seed}", u))
    print(f"\n{f'mean (min..max), {len(args.seeds)} seeds':28}" + "".join(f"{c:>{W}}" for c in CELLS))
    print(summary("trained", trained))
    print(summary("untrained", untrained))
    diffs = [tuple(a - b for a, b in zip(t, u)) for t, u in zip(trained, untrained)]
    print(summary("trained - untrained", diffs))
    print(f"{'seeds where training helps':28}" + "".join(
        f"{f'{sum(d[i] < 0 for d in diffs)} of {len(diffs)}':>{W}}" for i in range(len(CELLS))))


if __name__ == "__main__":
    main()
