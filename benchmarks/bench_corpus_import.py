"""How long `python -m sourcetrace.corpus` takes on an MLAAD-sized manifest.

    python benchmarks/bench_corpus_import.py [--sources 24] [--dev 200] [--eval 400]

Writes MLAAD-style protocol files (`train.csv`, `dev.csv`, `eval.csv`) for `--sources` known
and as many unknown sources, with empty audio files (the importer only checks that they
exist), then imports them with STOPA's default sizes in a subprocess and prints the wall
time, the number of fingerprints and of trial rows written, and the protocols' size.
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", type=int, default=24, help="known sources (as many unknown ones)")
    parser.add_argument("--dev", type=int, default=200, help="dev (enrollment) utterances per known source")
    parser.add_argument("--eval", type=int, default=400, help="eval (trial) utterances per source")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, protocols = Path(tmp) / "MLAAD", Path(tmp) / "protocols"
        protocols.mkdir()
        sources = [f"tts_models/xx/model-{i:02d}" for i in range(2 * args.sources)]
        splits = {"train": [(s, 2) for s in sources[:args.sources]],
                  "dev": [(s, args.dev) for s in sources[:args.sources]],
                  "eval": [(s, args.eval) for s in sources]}
        for split, plan in splits.items():
            with open(protocols / f"{split}.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["path", "model_name", "architecture"])
                for source, n in plan:
                    for i in range(n):
                        path = f"fake/{source.replace('/', '_')}/{split}_{i:05d}.wav"
                        (root / path).parent.mkdir(parents=True, exist_ok=True)
                        (root / path).touch()
                        writer.writerow([path, source, f"arch{sources.index(source) % 5}"])
        out = Path(tmp) / "imported"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "sourcetrace.corpus", "mlaad", str(protocols), "--audio-root",
                               str(root), "--out", str(out)], cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            sys.exit(done.stderr)
        fingerprints = len(list((out / "protocols_fingerprint_extraction").iterdir()))
        trial_files = list((out / "protocols_trials_extended").iterdir())
        rows = sum(f.read_bytes().count(b"\n") - 1 for f in trial_files)
        size = sum(f.stat().st_size for f in trial_files) / 2**20
        print(f"{2 * args.sources} sources ({args.sources} known), {args.dev} dev and {args.eval} eval utterances "
              f"each: {seconds:.1f} s; {fingerprints} fingerprints, {rows} trial rows, {size:.0f} MiB of trial files")


if __name__ == "__main__":
    main()
