"""Build a small STOPA-like corpus of real synthetic speech.

    python -m mini_stopa.generate --out mini_stopa/corpus --seed 2025 --overwrite

Every utterance: text -> offline TTS front-end (acoustic model) -> WORLD analysis at 16 kHz ->
one of several vocoders -> 16-bit FLAC. The attack table, file names, texts, speakers and all
protocol files follow from the seed and the sizes alone (see mini_stopa/design.py); the audio
follows from them and the pinned engine versions. See mini_stopa/README.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile as sf

from mini_stopa.design import ATTACKS, END_TO_END, Plan, Sizes, Utterance, make_plan, trial_labels

FS = 16000
TARGET_DBFS = -20.0
PEAK = 0.95
GENERATED = ["wav", "protocols_fingerprint_extraction", "protocols_trials_extended",
             "protocols_train", "attacks.tsv", "utterances.tsv", "generation.json"]
TRIAL_HEADER = ("AbstractModel FileName AcousticModel VocoderModel ATK IsTargetATK "
                "IsTargetAcousticModel IsTargetVocoderModel IsTargetAmArchit IsTargetVmArchit")
ENROLL_HEADER = "SPEAKER FileName TEXT_ID ATK"


def utterance_seed(seed: int, file_name: str) -> int:
    """A per-utterance seed independent of processing order."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{file_name}".encode()).digest()[:4], "little")


def trim(x: np.ndarray, margin_s: float = 0.08, floor_db: float = -40.0) -> np.ndarray:
    """Cut leading/trailing silence: keep the span of 10 ms frames within `floor_db` of the loudest."""
    n = 160
    frames = len(x) // n
    if frames == 0:
        return x
    e = 10 * np.log10(np.mean(x[: frames * n].reshape(frames, n) ** 2, axis=1) + 1e-12)
    active = np.nonzero(e > e.max() + floor_db)[0]
    m = int(margin_s * FS)
    return x[max(0, active[0] * n - m): min(len(x), (active[-1] + 1) * n + m)]


def normalise(x: np.ndarray) -> np.ndarray:
    """Scale to TARGET_DBFS RMS, limited so the peak stays at or below PEAK."""
    rms = np.sqrt(np.mean(x**2))
    if not np.isfinite(rms) or rms == 0:
        raise ValueError("silent or non-finite audio")
    g = 10 ** (TARGET_DBFS / 20) / rms
    g = min(g, PEAK / np.max(np.abs(x)))
    return x * g


# ---------------------------------------------------------------------------- workers

_FRONTENDS = None


def _init_worker() -> None:
    global _FRONTENDS
    from mini_stopa.frontends import FrontEnds
    _FRONTENDS = FrontEnds()


def render(args: tuple[Utterance, int, str]) -> tuple[str, float]:
    """Synthesise, vocode and write one utterance; returns (file name, seconds of audio)."""
    from mini_stopa.vocoders import VOCODER_FUNCS, analyse

    utt, seed, out_dir = args
    atk = utt.attack
    useed = utterance_seed(seed, utt.file_name)
    rng = np.random.default_rng(useed)
    x = trim(_FRONTENDS.synth(atk.am, utt.text, utt.speaker, utt.stretch, useed))
    if atk.vm in END_TO_END:  # end to end: the front-end's own synthesiser made the waveform
        y = x
    else:
        y = VOCODER_FUNCS[atk.vm](analyse(normalise(x)), rng)
    y = normalise(np.asarray(y, dtype=np.float64))
    if not np.all(np.isfinite(y)):
        raise RuntimeError(f"{utt.file_name}: vocoder {atk.vm} produced non-finite samples")
    path = Path(out_dir) / "wav" / utt.atk / utt.split / utt.file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), y, FS, subtype="PCM_16", format="FLAC")
    return utt.file_name, len(y) / FS


# ---------------------------------------------------------------------------- protocols


def write_tables(plan: Plan, out: Path) -> None:
    rows = ["ATK\tAcousticModel\tVocoderModel\tAmArchit\tVmArchit\tRole"]
    rows += [f"{a.atk}\t{a.am}\t{a.vm}\t{a.am_archit}\t{a.vm_archit}\t{a.role}" for a in ATTACKS]
    (out / "attacks.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    rows = ["FileName\tATK\tSplit\tSpeaker\tTextId\tStretch\tText"]
    rows += [f"{u.file_name}\t{u.atk}\t{u.split}\t{u.speaker}\t{u.text_id}\t{u.stretch}\t{u.text}"
             for u in plan.utterances]
    (out / "utterances.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def write_protocols(plan: Plan, out: Path) -> None:
    enroll_dir = out / "protocols_fingerprint_extraction"
    trials_dir = out / "protocols_trials_extended"
    train_dir = out / "protocols_train"
    for d in (enroll_dir, trials_dir, train_dir):
        d.mkdir(parents=True, exist_ok=True)
    for fp, utts in plan.enrollment.items():
        atk, cond, _ = fp.split("-")
        lines = [ENROLL_HEADER] + [f"{u.speaker} {u.file_name} {u.text_id} {u.atk}" for u in utts]
        (enroll_dir / f"{fp}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        lines = [TRIAL_HEADER]
        for t in plan.trials[cond]:
            labels = " ".join(str(b) for b in trial_labels(atk, t.atk))
            lines.append(f"{fp} {t.file_name} {t.attack.am} {t.attack.vm} {t.atk} {labels}")
        (trials_dir / f"{fp}_trials.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # ASVspoof style: SPEAKER FILE - ATTACK LABEL, FILE without extension (audio: FILE.flac).
    lines = [f"{u.speaker} {Path(u.file_name).stem} - {u.atk} spoof" for u in plan.train]
    (train_dir / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _tool_version(cmd: list[str]) -> str:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    return (res.stdout or res.stderr).strip().splitlines()[0] if (res.stdout or res.stderr) else "unknown"


def _debian_version(pkg: str) -> str:
    return _tool_version(["dpkg-query", "-W", "-f=${Version}", pkg])


def write_generation_info(out: Path, seed: int, sizes: Sizes) -> None:
    debs = ["espeak-ng", "flite", "festival", "festvox-kallpc16k", "festvox-us-slt-hts"]
    pips = ["numpy", "scipy", "soundfile", "pyworld", "pysptk", "hibari-tts", "onnxruntime"]
    info = {
        "seed": seed,
        "sizes": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(sizes).items()},
        "debian_packages": {p: _debian_version(p) for p in debs},
        "python_packages": {p: metadata.version(p) for p in pips},
    }
    (out / "generation.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- CLI


def _int_list(s: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in s.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}")
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return tuple(sorted(set(vals)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    d = Sizes()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="corpus folder to create")
    p.add_argument("--seed", type=int, default=2025, help="seed of texts, speakers and all randomness")
    p.add_argument("--trials-per-attack", type=int, default=d.trials_per_attack,
                   help="trial utterances per evaluation attack (= number of trial sentences)")
    p.add_argument("--co-sizes", type=_int_list, default=d.co_sizes,
                   help="enrollment sizes with content overlap")
    p.add_argument("--nc-sizes", type=_int_list, default=d.nc_sizes,
                   help="enrollment sizes without content overlap (an 'all' set is added)")
    p.add_argument("--nc-all", type=int, default=d.nc_all, help="size of the nc 'all' set")
    p.add_argument("--nc-pool", type=int, default=d.nc_pool, help="sentences reserved for nc enrollment")
    p.add_argument("--train-per-attack", type=int, default=d.train_per_attack)
    p.add_argument("--train-pool", type=int, default=d.train_pool, help="sentences reserved for training")
    p.add_argument("--jobs", type=int, default=max(1, mp.cpu_count()), help="worker processes")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the generated parts of an existing corpus folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    sizes = Sizes(a.trials_per_attack, a.co_sizes, a.nc_sizes, a.nc_all, a.nc_pool,
                  a.train_per_attack, a.train_pool)
    try:
        plan = make_plan(a.seed, sizes)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out: Path = a.out
    existing = [n for n in GENERATED if (out / n).exists()]
    if existing and not a.overwrite:
        print(f"error: {out} already holds {', '.join(existing)}; pass --overwrite to replace them",
              file=sys.stderr)
        return 2
    for n in existing:
        p = out / n
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.time()
    jobs = [(u, a.seed, str(out)) for u in plan.utterances]
    total_s = 0.0
    with mp.get_context("fork").Pool(a.jobs, initializer=_init_worker) as pool:
        for i, (name, dur) in enumerate(pool.imap_unordered(render, jobs, chunksize=2), 1):
            total_s += dur
            if i % 50 == 0 or i == len(jobs):
                print(f"  {i}/{len(jobs)} utterances ({time.time() - t0:.0f} s)", flush=True)
    write_tables(plan, out)
    write_protocols(plan, out)
    write_generation_info(out, a.seed, sizes)
    size_mb = sum(p.stat().st_size for p in (out / "wav").rglob("*.flac")) / 1e6
    print(f"{len(jobs)} utterances, {total_s / 60:.1f} min of audio, {size_mb:.1f} MB FLAC, "
          f"{len(plan.enrollment)} fingerprints, in {time.time() - t0:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
