"""trace_audio's cost beyond extraction: the whole trace versus the extraction engine alone.

On `--files` generated FLAC files (durations log-normal, `--median-s`, `--sigma`, clipped to
[`--min-s`, `--max-s`]) and a system whose stages 2 and 5 are current (default
`config/demo.conf`: run `./demo.sh` or its stages first), each repeat times, interleaved:

- engine: `Extractor.extract` of the same files into an empty work folder (the model
  already loaded);
- trace: `sourcetrace.trace.trace_audio` with an empty embedding cache (the system's
  `.<system>_work/stagetrace` is emptied first, so its cached embeddings are lost): argument expansion,
  the up-to-date checks of stages 1-5, model loading, extraction, fingerprints, the attacks'
  labels from the trial protocols, stage 5's threshold, scoring and the records.

It prints utterances/s of each, the overhead beyond extraction measured inside the trace
itself (its whole time minus the time of its own `Extractor.extract` call, over the
latter: immune to the load of other programs between the two runs), the ratio trace /
engine across the two runs, and a second trace of the same files, served by the cache. Best
of `--repeats`.

    python benchmarks/bench_trace.py --files 1000 --device cpu

Figures only: this is not a test and asserts nothing.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from bench_extraction import make_audio  # noqa: E402
from sourcetrace.config import load_config  # noqa: E402
from sourcetrace.extraction import Extractor  # noqa: E402
from sourcetrace.ranks import World  # noqa: E402
from sourcetrace.runner import Context, StageConfig  # noqa: E402
from sourcetrace.stages.extractor import build_extractor  # noqa: E402
from sourcetrace.store import Paths  # noqa: E402
from sourcetrace.trace import TOOL, expand, trace_audio  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "config" / "demo.conf"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--median-s", type=float, default=1.0)
    parser.add_argument("--sigma", type=float, default=0.3)
    parser.add_argument("--min-s", type=float, default=0.5)
    parser.add_argument("--max-s", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    cfg = load_config(args.config, device=args.device)
    paths = Paths.of(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        audio = Path(tmp) / "audio"
        audio.mkdir()
        files = make_audio(audio, args.files, args.median_s, args.sigma, args.min_s, args.max_s, seed=0)
        import soundfile as sf
        seconds = sum(sf.info(str(f)).duration for f in files)
        utterances = expand([str(audio)], "fail")
        extractor = build_extractor(Context(TOOL, StageConfig(cfg, TOOL), paths, World(), False, "bench", {}))
        inside: list[float] = []
        extract = Extractor.extract

        def timed(self, *a, **k):  # the trace's own extraction, timed
            start = time.perf_counter()
            try:
                return extract(self, *a, **k)
            finally:
                inside.append(time.perf_counter() - start)
        engine, whole, within, cached = [], [], [], []
        for _ in range(args.repeats):
            work = Path(tmp) / "work"
            shutil.rmtree(work, ignore_errors=True)
            start = time.perf_counter()
            extract(extractor, utterances, work, desc="engine")
            engine.append(time.perf_counter() - start)
            shutil.rmtree(paths.work(TOOL.number), ignore_errors=True)
            Extractor.extract = timed
            start = time.perf_counter()
            traced = trace_audio(cfg, [str(audio)])
            whole.append(time.perf_counter() - start)
            within.append(inside[-1])
            Extractor.extract = extract
            assert len(traced.records) == len(files)
            start = time.perf_counter()
            trace_audio(cfg, [str(audio)])
            cached.append(time.perf_counter() - start)
        best = min(range(args.repeats), key=lambda r: whole[r])
        e, w, x = min(engine), whole[best], within[best]
        print(f"{cfg['system']} on {args.device}, {len(files)} files, {seconds:.0f} s of audio, "
              f"batch_size {cfg['batch_size']}, best of {args.repeats}")
        print(f"engine alone:  {e:7.1f} s  {len(files) / e:6.1f} utt/s")
        print(f"trace:         {w:7.1f} s  {len(files) / w:6.1f} utt/s, of which its extraction {x:.1f} s: "
              f"overhead beyond extraction {w - x:.2f} s = {100 * (w - x) / x:.2f} %")
        print(f"trace / engine alone (two runs, other programs' load included): {w / e:.3f}")
        print(f"trace again, embeddings cached: {min(cached):.2f} s")
        print(f"(all runs: engine {', '.join(f'{t:.1f}' for t in engine)} s; trace "
              f"{', '.join(f'{t:.1f}' for t in whole)} s)")


if __name__ == "__main__":
    main()
