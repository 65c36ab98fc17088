"""Extraction throughput of one process versus torchrun ranks sharing its plan, on CPU.

Runs `tests/extract_driver.py` (AASIST_CM, `nb_samp` 12000 for `fixed`) on generated FLAC
files (durations log-normal as in bench_extraction.py), as

- one process with `--threads` intra-op threads (default: all cores), and one with as many
  threads as each rank of the largest world gets (whose bytes every run is compared with),
- `torchrun --standalone --nproc_per_node=R` for each R of `--ranks`, each rank with
  cores // R threads (what `sourcetrace.ranks.init_world` gives it),

and prints utterances/s and audio-seconds/s of the extraction itself (planning, decoding,
network, chunk files, waiting for every rank, assembly; not interpreter start, model
loading or the rendezvous), best of `--repeats`, and whether every run gave the same bytes
as one process with one thread per rank. Each run starts from an empty work folder.

    python benchmarks/bench_distributed.py                        # full, 1 process vs 2 ranks
    python benchmarks/bench_distributed.py --policy fixed --files 60

Figures only: this is not a test and asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "extract_driver.py"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_extraction import make_audio  # noqa: E402


def run(audio: Path, tmp: Path, args, ranks: int, threads: int) -> tuple[float, bytes]:
    """Seconds of extraction reported by rank 0, and the embeddings' bytes."""
    work, out = tmp / "work", tmp / "out.npz"
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    launcher = [sys.executable] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    done = subprocess.run(launcher + [str(DRIVER), str(audio), str(work), str(out), "--policy", args.policy,
                                      "--batch-size", str(args.batch_size), "--chunk-size", str(args.chunk_size),
                                      "--num-workers", str(args.num_workers)],
                          capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode:
        sys.exit(done.stderr)
    seconds = float(re.search(r"extracted \d+ utterance\(s\) in ([\d.]+) s", done.stderr).group(1))
    return seconds, np.load(out)["embeddings"].tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--median-s", type=float, default=2.5)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--policy", default="full", choices=["full", "fixed"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--chunk-size", type=int, default=4, help="utterances per chunk, the unit ranks share")
    parser.add_argument("--num-workers", type=int, default=1, help="decoding threads per process")
    parser.add_argument("--ranks", type=int, nargs="+", default=[2])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="of the single process")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench_distributed_") as tmp:
        tmp = Path(tmp)
        (tmp / "audio").mkdir()
        paths = make_audio(tmp / "audio", args.files, args.median_s, args.sigma, 1.0, 8.0, seed=0)
        import soundfile as sf
        audio_s = sum(sf.info(str(p)).duration for p in paths)
        print(f"{len(paths)} files, {audio_s:.1f} s of audio; AASIST_CM, policy {args.policy}, batch "
              f"{args.batch_size}, chunks of {args.chunk_size}, {args.num_workers} decoding thread(s) per process, "
              f"{cores} cores; best of {args.repeats}")
        per_rank = max(1, cores // max(args.ranks))  # the threads of each rank of the largest world
        settings = list(dict.fromkeys([(1, per_rank), (1, args.threads)] + [(r, max(1, cores // r)) for r in args.ranks]))
        reference = None  # bytes of one process with `per_rank` threads, the first setting
        times: dict[tuple[int, int], list[float]] = {s: [] for s in settings}
        same = {s: True for s in settings}
        for _ in range(args.repeats):  # settings interleaved: other load on the machine hits all alike
            for ranks, threads in settings:
                seconds, data = run(tmp / "audio", tmp, args, ranks, threads)
                times[(ranks, threads)].append(seconds)
                reference = reference or data
                same[(ranks, threads)] &= data == reference
        for (ranks, threads), values in times.items():
            best = min(values)
            label = "1 process" if ranks == 1 else f"{ranks} ranks"
            print(f"  {label:9s} x {threads} thread(s): {len(paths) / best:6.2f} utt/s, {audio_s / best:6.1f} "
                  f"audio-s/s ({best:.2f} s; all runs {', '.join(f'{v:.2f}' for v in values)}); bytes of 1 process "
                  f"x {per_rank} thread(s): {'same' if same[(ranks, threads)] else 'differ'}")


if __name__ == "__main__":
    main()
