"""Time stage 5's evaluation (`write_evaluation`) on a STOPA-scale synthetic set of rows.

    python benchmarks/bench_evaluation.py              # 30 million rows (about 3 GB of RAM)
    python benchmarks/bench_evaluation.py --rows 300000

The rows: the 50 fingerprints of STOPA (five known attacks x co 1/10/100/400, nc
1/10/100/400/1000/all), trial attacks AA01..AA10 in equal shares (half of them known), labels
from a STOPA-like attack table with architecture labels, float32 cosine scores that rise
with each shared attribute and with the enrollment size. They are generated in one process
and written to a temporary folder; `write_evaluation` runs in a second process that only
loads them, so its wall time and peak RSS (`resource.getrusage`) are its own, inputs
included; CPU time (user + system) is given beside the wall time because the machine is
shared. Every metric, every group, both DET figures, 200 bootstrap resamples.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from stopa_scale import CONDITIONS, KNOWN, TABLE  # noqa: E402  (benchmarks/ is this script's folder)

LABEL_FIELDS = {"ATK": None, "AcousticModel": 0, "VocoderModel": 1, "AmArchit": 2, "VmArchit": 3}
SHIFT = {"ATK": 0.10, "AcousticModel": 0.06, "VocoderModel": 0.04, "AmArchit": 0.02, "VmArchit": 0.02}


def generate(folder: Path, total_rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    attacks = list(TABLE)
    names = [f"{a}-{c}-{n}" for a in KNOWN for c, n in CONDITIONS]
    per_fp = total_rows // len(names)
    n = per_fp * len(names)
    scores = np.empty(n, np.float32)
    trial_attack = rng.integers(0, len(attacks), n).astype(np.int8)
    fingerprint = np.repeat(np.arange(len(names), dtype=np.int32), per_fp)
    labels = {name: np.empty(n, bool) for name in LABEL_FIELDS}
    for code, name in enumerate(names):
        rows = slice(code * per_fp, (code + 1) * per_fp)
        own = attacks.index(name.split("-")[0])
        size = name.rsplit("-", 1)[1]
        quality = 0.6 + 0.1 * np.log10(2000 if size == "all" else int(size))  # larger enrollment, better
        ta = trial_attack[rows]
        score = rng.normal(0.10, 0.12, per_fp)
        for label, field in LABEL_FIELDS.items():
            same = np.array([a == own if field is None else TABLE[attacks[a]][field] == TABLE[attacks[own]][field]
                             for a in range(len(attacks))])[ta]
            labels[label][rows] = same
            score += quality * SHIFT[label] * same
        scores[rows] = np.clip(score, -1, 1)
    is_known = np.isin(np.array(attacks)[trial_attack], KNOWN)
    np.savez(folder / "rows.npz", scores=scores, is_known=is_known, fingerprint=fingerprint,
             **{f"label_{k}": v for k, v in labels.items()})
    (folder / "names.json").write_text(json.dumps(names))


def run(folder: Path) -> dict:
    from sourcetrace.evaluation import EvaluationRows, write_evaluation

    data = np.load(folder / "rows.npz")
    rows = EvaluationRows(scores=data["scores"].astype(np.float64), is_known=data["is_known"],
                          labels={k: data[f"label_{k}"] for k in LABEL_FIELDS}, fingerprint=data["fingerprint"],
                          fingerprint_names=json.loads((folder / "names.json").read_text()))
    del data
    def cpu():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    start, start_cpu = time.perf_counter(), cpu()
    write_evaluation(folder / "out", rows, unknown_filter="reference", dcf_operating_points=[[0.01, 1, 1], [0.1, 1, 1]],
                     bootstrap_resamples=200, bootstrap_seed=0)
    wall, cpu_s = time.perf_counter() - start, cpu() - start_cpu
    lines = (folder / "out" / "metrics.csv").read_text().splitlines()
    return {"rows": int(rows.scores.size), "metrics_rows": len(lines) - 1, "wall_s": round(wall, 1), "cpu_s": round(cpu_s, 1),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=30_000_000)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # the timed child process
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run(args.run)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), args.rows)
        done = subprocess.run([sys.executable, __file__, "--run", tmp], capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr)
        result = json.loads(done.stdout)
    print(f"write_evaluation on {result['rows']:,} rows ({result['metrics_rows']} metrics.csv rows, "
          f"200 resamples, 2 DET figures): {result['wall_s']} s wall, {result['cpu_s']} s CPU, "
          f"peak RSS {result['peak_rss_gb']} GB")


if __name__ == "__main__":
    main()
