#!/usr/bin/env python3
"""Stages 4 (cosine scoring) and 5 (pooled EER) at STOPA scale, against the reference approach.

Generates synthetic STOPA-scale evaluation sets (50 fingerprints, extended trial files,
random 160-dim embeddings; see stopa_scale.py), then runs in separate processes, each
reporting its wall time and peak RSS:

- this project's stages 4 and 5 (the stage scripts' code, with `--force`);
- on the smaller set, the reference scripts' approach: for each trial file a pandas read,
  the full (rows x fingerprints) similarity matrix with scores attached by row order, the
  file rewritten as text, then concatenation into one CSV, and stage 5 as pandas filtering
  plus six `compute_eer` calls. Its stage 5 is also run on *our* evaluation CSV, and its
  six EERs must equal ours exactly.

    python benchmarks/bench_scoring.py                      # 3M and 30M rows (about 5 min)
    python benchmarks/bench_scoring.py --rows 3000000       # the comparison only
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]


def child(kind: str, root: str, extra: str = "") -> None:
    """Run one measured step in this process and print its figures as JSON."""
    start = time.perf_counter()
    result = {}
    if kind in ("stage4", "stage5"):
        from sourcetrace.cli import main as stage
        status = stage(4 if kind == "stage4" else 5, ["--config", str(Path(root) / "bench.conf"), "--force", "-q"])
        assert status == 0
    elif kind == "ref4":
        reference_stage4(Path(root))
    elif kind == "ref5":
        result["eers"] = reference_stage5(Path(extra))
    result.update(seconds=time.perf_counter() - start,
                  peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print("RESULT " + json.dumps(result))


def reference_stage4(root: Path) -> None:
    """The published scripts' approach to scoring (re-written here; their code is not public)."""
    import numpy as np
    import pandas as pd
    out = root / "out"
    fps = pd.read_csv(out / "BENCH_fingerprint_avg_emb.csv", index_col=0)
    emb = np.load(out / "BENCH_protocol_trials.npy")
    ids = pd.read_csv(out / "BENCH_protocol_trials.ids.tsv", sep="\t")
    position = {(a, f): i for i, (a, f) in enumerate(zip(ids["ATK"], ids["FileName"]))}
    f_unit = fps.to_numpy(np.float32)
    f_unit /= np.linalg.norm(f_unit, axis=1, keepdims=True)
    rewritten = root / "ref_scored"
    rewritten.mkdir(exist_ok=True)
    for path in sorted((root / "protocols_trials_extended").glob("*_trials.txt")):
        df = pd.read_csv(path, sep=" ")
        e = emb[[position[k] for k in zip(df["ATK"], df["FileName"])]]
        e = e / np.linalg.norm(e, axis=1, keepdims=True)
        similarity = e @ f_unit.T  # the full matrix, one column used
        df["CosScore"] = similarity[:, fps.index.get_loc(path.stem[: -len("_trials")])]
        df.to_csv(rewritten / path.name, sep=" ", index=False)
    frames = [pd.read_csv(p, sep=" ") for p in sorted(rewritten.glob("*_trials.txt"))]
    pd.concat(frames).to_csv(root / "ref_evaluation.csv", index=False)


def reference_stage5(evaluation: Path) -> dict:
    import pandas as pd
    from sourcetrace.metrics import compute_eer
    df = pd.read_csv(evaluation)
    known = ["AA01", "AA03", "AA05", "AA07", "AA10"]

    def pooled(d, label):
        return compute_eer(d[d[label] == True]["CosScore"].to_numpy(),  # noqa: E712
                           d[d[label] == False]["CosScore"].to_numpy())[0]  # noqa: E712

    kn = df[df["ATK"].isin(known)]
    ukn = df[~df["ATK"].isin(known) | (df["IsTargetATK"] == True)]  # noqa: E712
    labels = {"ATK": "IsTargetATK", "AcousticModel": "IsTargetAcousticModel", "VocoderModel": "IsTargetVocoderModel"}
    return {s: {n: pooled(d, c) for n, c in labels.items()} for s, d in (("known", kn), ("unknown", ukn))}


def measure(kind: str, root: Path, extra: str = "", repeats: int = 1) -> dict:
    """Best wall time of `repeats` fresh processes (disk write-back of earlier steps adds noise)."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, __file__, "--child", kind, str(root), extra],
                              capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(lines[-1][len("RESULT "):]))
    best = min(runs, key=lambda r: r["seconds"])
    return dict(best, peak_rss_gb=max(r["peak_rss_gb"] for r in runs))


def prepare(root: Path, rows: int) -> None:
    from stopa_scale import generate
    if (root / "bench.conf").is_file():
        return
    print(f"generating {rows:,} trial rows in {root} ...", flush=True)
    start = time.perf_counter()
    cfg = generate(root, rows)
    config = json.loads((REPO / "config" / "AASIST.conf").read_text())
    config.update(cfg, model_path=str(REPO / "models" / "AASIST_CM.pth"))
    (root / "bench.conf").write_text(json.dumps(config))
    print(f"  generated in {time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[3_000_000, 30_000_000],
                        help="evaluation set sizes; the reference approach runs on the smallest")
    parser.add_argument("--workdir", type=Path, default=HERE / "data",
                        help="where the generated sets are kept between runs (default benchmarks/data)")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference approach")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each step on the smallest set, best time kept (default 3)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    import platform
    import os
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"python {platform.python_version()}")
    rows_list = sorted(args.rows)
    for rows in rows_list:
        root = args.workdir / f"rows{rows}"
        prepare(root, rows)
        repeats = args.repeats if rows == rows_list[0] else 1
        ours4, ours5 = measure("stage4", root, repeats=repeats), measure("stage5", root, repeats=repeats)
        total = ours4["seconds"] + ours5["seconds"]
        print(f"\n{rows:,} rows, this project (best of {repeats}):")
        print(f"  stage 4 {ours4['seconds']:7.1f} s  peak RSS {ours4['peak_rss_gb']:.2f} GB")
        print(f"  stage 5 {ours5['seconds']:7.1f} s  peak RSS {ours5['peak_rss_gb']:.2f} GB")
        print(f"  4 + 5   {total:7.1f} s  peak RSS {max(ours4['peak_rss_gb'], ours5['peak_rss_gb']):.2f} GB")
        if rows != rows_list[0] or args.no_reference:
            continue
        ref4 = measure("ref4", root, repeats=repeats)
        ref5 = measure("ref5", root, str(root / "ref_evaluation.csv"), repeats=repeats)
        check = measure("ref5", root, str(root / "out" / "BENCH_evaluation.csv"))
        ref_total = ref4["seconds"] + ref5["seconds"]
        print(f"{rows:,} rows, reference approach (best of {repeats}):")
        print(f"  stage 4 {ref4['seconds']:7.1f} s  peak RSS {ref4['peak_rss_gb']:.2f} GB")
        print(f"  stage 5 {ref5['seconds']:7.1f} s  peak RSS {ref5['peak_rss_gb']:.2f} GB")
        print(f"  4 + 5   {ref_total:7.1f} s   -> this project is {ref_total / total:.1f}x faster")
        details = json.loads((root / "out" / "BENCH_EERs_pooled" / "pooled_eer_details.json").read_text())
        same = all(details[s][n]["eer"] == check["eers"][s][n] for s in check["eers"] for n in check["eers"][s])
        print("  EERs (reference compute_eer + pandas pooling on our scores) identical to ours:", same)
        for s in ("known", "unknown"):
            print(f"    {s:8s}" + "".join(f"  {n} {100 * details[s][n]['eer']:.4f}%" for n in details[s]))
        if not same:
            raise SystemExit("EER mismatch: " + json.dumps(check["eers"]))


if __name__ == "__main__":
    main()
