#!/usr/bin/env python3
"""Stages 4 (scoring) and 5 (evaluation) with each score back-end, on a STOPA-scale set.

Generates a synthetic evaluation set with stage 1's enrollment matrices (stopa_scale.py:
50 fingerprints, extended trial files, random 160-dim embeddings; per known attack 400 `co`
and `--enroll-all` `nc` enrollment utterances, so the cohort holds 5 x (400 + enroll_all)
distinct utterances), then for each back-end runs, each in its own process, the bodies of
stage 4 (`write_scores`) and of stage 5 (`write_pooled`: pooled EERs, metrics.csv with 200
bootstrap resamples, DET figures, attribution and unknown-source detection), reporting wall
time, CPU time and peak RSS. The runner (locks, records) is left out: it is the same for
every back-end.

    python benchmarks/bench_backends.py                       # 3 million rows
    python benchmarks/bench_backends.py --rows 1000000 --backends cosine,knn
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]


def child(kind: str, root: str, backend: str) -> None:
    from sourcetrace.config import load_config
    from sourcetrace.store import Paths
    cfg = load_config(Path(root) / "bench.conf", [f"backend={backend}"])
    paths = Paths.of(cfg)

    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    start, start_cpu = time.perf_counter(), cpu()
    if kind == "stage4":
        from sourcetrace.stages.score import write_scores
        write_scores(cfg, paths, lambda p: p)
    else:
        from sourcetrace.stages.pool import write_pooled
        from sourcetrace.store.evaluation_table import read_evaluation_arrow
        write_pooled(cfg, paths, paths.evaluation_arrow, read_evaluation_arrow(paths.evaluation_arrow), lambda p: p,
                     show=False)
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - start, "cpu": cpu() - start_cpu,
                                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def measure(kind: str, root: Path, backend: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(root), backend],
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"{kind} {backend} failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--enroll-all", type=int, default=2000, help="nc-all enrollment size per attack")
    parser.add_argument("--backends", default="cosine,centered,asnorm,knn")
    parser.add_argument("--workdir", type=Path, default=HERE / "data")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    from stopa_scale import generate
    root = args.workdir / f"backends_rows{args.rows}_all{args.enroll_all}"
    if not (root / "bench.conf").is_file():
        print(f"generating {args.rows:,} trial rows in {root} ...", flush=True)
        cfg = generate(root, args.rows, enroll_all=args.enroll_all)
        config = json.loads((REPO / "config" / "AASIST.conf").read_text())
        config.update(cfg, model_path=str(REPO / "models" / "AASIST_CM.pth"))
        (root / "bench.conf").write_text(json.dumps(config))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {args.rows:,} rows, nc-all {args.enroll_all}")
    print(f"{'backend':10s}{'stage 4 s':>10s}{'(cpu)':>8s}{'stage 5 s':>11s}{'(cpu)':>8s}{'4 + 5 s':>9s}"
          f"{'x cosine':>10s}{'peak GB 4':>11s}{'peak GB 5':>11s}")
    base = None
    for backend in args.backends.split(","):
        s4, s5 = measure("stage4", root, backend), measure("stage5", root, backend)
        total = s4["seconds"] + s5["seconds"]
        base = base or (total if backend == "cosine" else None)
        ratio = f"{total / base:.2f}" if base else "-"
        print(f"{backend:10s}{s4['seconds']:10.1f}{s4['cpu']:8.1f}{s5['seconds']:11.1f}{s5['cpu']:8.1f}{total:9.1f}"
              f"{ratio:>10s}{s4['peak_rss_gb']:11.2f}{s5['peak_rss_gb']:11.2f}", flush=True)


if __name__ == "__main__":
    main()
