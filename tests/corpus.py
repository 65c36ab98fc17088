"""A small STOPA-format corpus generated for tests: synthetic audio, real protocol formats.

Five attacks from three acoustic models and three vocoders; by default AA01, AA03 and AA05
are known (enrolled). Each attack's audio is a few harmonic tones over noise whose pitch
depends on the acoustic model and whose noise colour depends on the vocoder, with lengths
spread over `min_s`..`max_s`, so the pipeline's scores are not meaningless.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ATTACKS = {  # attack: (acoustic model, vocoder, AM architecture, VM architecture)
    "AA01": ("am1", "vm1", "tacotron", "hifigan"),
    "AA02": ("am1", "vm2", "tacotron", "wavenet"),
    "AA03": ("am2", "vm2", "fastpitch", "wavenet"),
    "AA04": ("am3", "vm1", "tacotron", "hifigan"),
    "AA05": ("am3", "vm3", "tacotron", "griffinlim"),
}
KNOWN = ["AA01", "AA03", "AA05"]
TRIAL_HEADER = ("AbstractModel FileName AcousticModel VocoderModel ATK IsTargetATK IsTargetAcousticModel "
                "IsTargetVocoderModel IsTargetAmArchit IsTargetVmArchit")


@dataclass
class Corpus:
    root: Path
    database: Path
    enroll_dir: Path
    trial_dir: Path
    fingerprints: list[str]


def _tone(rng: np.random.Generator, attack: str, seconds: float) -> np.ndarray:
    am, vm, _, _ = ATTACKS[attack]
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    f0 = {"am1": 110.0, "am2": 180.0, "am3": 250.0}[am] * rng.uniform(0.9, 1.1)
    wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
    noise = rng.standard_normal(n)
    if vm == "vm2":
        noise = np.cumsum(noise) / 30
        noise -= noise.mean()
    elif vm == "vm3":
        noise = np.diff(noise, prepend=0.0)
    wave = 0.3 * wave / 2.3 + 0.05 * noise
    return (wave / max(1.0, np.abs(wave).max() * 1.05)).astype(np.float32)


def make_corpus(root: Path, enroll_per_attack: int = 4, trials_per_attack: int = 3, sizes=(1, 3),
                min_s: float = 0.4, max_s: float = 1.2, seed: int = 0, sample_rate: int = 16000) -> Corpus:
    """Write audio under `root/db/wav/<ATK>/{dev,eval}/` and the two protocol folders."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    database = root / "db"
    enroll_dir = root / "protocols_fingerprint_extraction"
    trial_dir = root / "protocols_trials_extended"
    enroll_dir.mkdir(parents=True)
    trial_dir.mkdir(parents=True)

    def write(attack: str, split: str, name: str) -> None:
        path = database / "wav" / attack / split / name
        path.parent.mkdir(parents=True, exist_ok=True)
        wave = _tone(rng, attack, rng.uniform(min_s, max_s))
        if sample_rate != 16000:
            import torch, torchaudio.functional as AF
            wave = AF.resample(torch.from_numpy(wave), 16000, sample_rate).numpy()
        sf.write(path, wave, sample_rate, subtype="PCM_16")

    trials = []
    for attack in ATTACKS:
        for i in range(trials_per_attack):
            name = f"{attack}_E_{i:04d}.wav"
            write(attack, "eval", name)
            trials.append((attack, name))
    fingerprints = []
    for attack in KNOWN:
        dev = [f"{attack}_D_{i:04d}.wav" for i in range(enroll_per_attack)]
        for name in dev:
            write(attack, "dev", name)
        for condition in ("co", "nc"):
            for size in [*sizes, "all"] if condition == "nc" else sizes:
                fp = f"{attack}-{condition}-{size}"
                fingerprints.append(fp)
                chosen = dev if size == "all" else dev[:size]
                lines = ["SPEAKER FileName TEXT ATK"] + [f"spk{j % 2} {n} t{j} {attack}" for j, n in enumerate(chosen)]
                (enroll_dir / f"{fp}.txt").write_text("\n".join(lines) + "\n")
                # co and nc conditions score different trial subsets, in different orders
                rows = trials[::-1] if condition == "co" else trials[: len(trials) - 1]
                am, vm, am_arch, vm_arch = ATTACKS[attack]
                lines = [TRIAL_HEADER]
                for t_attack, name in rows:
                    tam, tvm, tam_arch, tvm_arch = ATTACKS[t_attack]
                    flags = [t_attack == attack, tam == am, tvm == vm, tam_arch == am_arch, tvm_arch == vm_arch]
                    lines.append(" ".join([fp, name, tam, tvm, t_attack] + [str(f) for f in flags]))
                (trial_dir / f"{fp}_trials.txt").write_text("\n".join(lines) + "\n")
    return Corpus(root, database, enroll_dir, trial_dir, fingerprints)


MINI_STOPA = Path(__file__).resolve().parents[1] / "mini_stopa" / "corpus"


def mini_stopa_subset(root: Path, known: list[str], per_attack: int = 3) -> tuple[Path, Path]:
    """Enrollment and trial protocol folders under `root` for a subset of the bundled Mini-STOPA:
    fingerprints `<ATK>-co-1` and `<ATK>-nc-5` of each `known` attack, each trial file cut to
    its first `per_attack` rows of every evaluation attack. Returns (enroll_dir, trial_dir)."""
    enroll, trials = root / "enroll", root / "trials"
    enroll.mkdir()
    trials.mkdir()
    for attack in known:
        for fp in (f"{attack}-co-1", f"{attack}-nc-5"):
            (enroll / f"{fp}.txt").write_text((MINI_STOPA / "protocols_fingerprint_extraction" / f"{fp}.txt").read_text())
            lines = (MINI_STOPA / "protocols_trials_extended" / f"{fp}_trials.txt").read_text().splitlines()
            seen: dict[str, int] = {}
            kept = [lines[0]]
            for line in lines[1:]:
                atk = line.split()[4]
                seen[atk] = seen.get(atk, 0) + 1
                if seen[atk] <= per_attack:
                    kept.append(line)
            (trials / f"{fp}_trials.txt").write_text("\n".join(kept) + "\n")
    return enroll, trials


def reference_eer(target, nontarget) -> float:
    """The ASVspoof / AASIST `compute_eer` in percent, rounded to 2 decimals, written out here
    independently of the library."""
    scores = np.concatenate([target, nontarget])
    labels = np.concatenate([np.ones(len(target)), np.zeros(len(nontarget))])
    order = np.argsort(scores, kind="mergesort")
    labels = labels[order]
    tar_trial_sums = np.cumsum(labels)
    nontarget_trial_sums = len(nontarget) - (np.arange(1, len(scores) + 1) - tar_trial_sums)
    frr = np.concatenate((np.atleast_1d(0), tar_trial_sums / len(target)))
    far = np.concatenate((np.atleast_1d(1), nontarget_trial_sums / len(nontarget)))
    i = np.argmin(np.abs(frr - far))
    return round(float(np.mean((frr[i], far[i]))) * 100, 2)


def pooled_reference_eers(evaluation_csv, known_attacks, labels: dict) -> dict:
    """({scenario: [EER % of each label in `labels` (name -> IsTarget column)]}, number of rows)
    of an evaluation CSV, pooled as the published scripts pool (unknown: ATK not known or
    IsTargetATK true)."""
    with open(evaluation_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    scores = np.array([float(r["CosScore"]) for r in rows])
    known = np.array([r["ATK"] in known_attacks for r in rows])
    targets = {name: np.array([r[column] == "True" for r in rows]) for name, column in labels.items()}
    found = {}
    for scenario in ("known", "unknown"):
        keep = known if scenario == "known" else ~known | targets["ATK"]
        found[scenario] = [reference_eer(scores[keep][targets[n][keep]], scores[keep][~targets[n][keep]])
                           for n in labels]
    return found, len(rows)
