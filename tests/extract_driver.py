"""Run the extraction engine on every audio file under a folder, alone or under torchrun.

Used by tests/test_extraction.py and benchmarks/bench_distributed.py; AASIST_CM with
`nb_samp` 12000 (fast on CPU).

    python tests/extract_driver.py AUDIO_DIR WORK OUT.npz [--policy full] ...
    python -m torch.distributed.run --standalone --nproc_per_node=2 tests/extract_driver.py ...

Rank 0 writes OUT.npz (`embeddings`, `failed` as JSON) and then removes the work (cache) folder;
an `ExtractionError` prints `error: <message>` and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sourcetrace import extraction, ranks  # noqa: E402
from sourcetrace.extraction import Extractor, ExtractionError, Utterance  # noqa: E402


def utterances_in(audio_dir: Path) -> list[Utterance]:
    """Every .wav/.flac under `audio_dir`, sorted, as rows 2, 3, ... of `audio_dir/list.txt`."""
    paths = sorted(p for p in Path(audio_dir).rglob("*") if p.suffix in (".wav", ".flac"))
    protocol = Path(audio_dir) / "list.txt"
    return [Utterance(p.parent.name, p.name, p, protocol, line) for line, p in enumerate(paths, start=2)]


def extractor(policy: str = "full", batch_size: int = 2, chunk_size: int = 3, num_workers: int = 1,
              on_error: str = "fail", max_seconds: float = extraction.MAX_SECONDS, nb_samp: int = 12000,
              world: ranks.World = ranks.World()) -> Extractor:
    import models
    config = json.loads((REPO / "config" / "AASIST.conf").read_text())["model_config"]
    model = models.load_model({**config, "nb_samp": nb_samp}, REPO / "models" / "AASIST_CM.pth", policy)
    return Extractor(model, policy, batch_size, num_workers, "cpu", on_error=on_error, chunk_size=chunk_size,
                     max_seconds=max_seconds, world=world)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("audio_dir", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--policy", default="full")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--chunk-size", type=int, default=3)
    parser.add_argument("--num-workers", type=int, default=1)
    parser.add_argument("--on-error", default="fail")
    parser.add_argument("--nb-samp", type=int, default=12000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    world = ranks.init_world("cpu")
    engine = extractor(args.policy, args.batch_size, args.chunk_size, args.num_workers, args.on_error,
                       nb_samp=args.nb_samp, world=world)
    utterances = utterances_in(args.audio_dir)
    start = time.perf_counter()
    try:
        result = engine.extract(utterances, args.work, desc=f"rank {world.rank}")
    except ExtractionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result is not None:
        logging.info("extracted %d utterance(s) in %.3f s", len(utterances), time.perf_counter() - start)
        import numpy as np
        np.savez(args.out, embeddings=result.embeddings, failed=json.dumps(result.failed))
        shutil.rmtree(args.work)
    ranks.shutdown(world)
    return 0


if __name__ == "__main__":
    sys.exit(main())
