"""A synthetic STOPA-scale evaluation set: 50 fingerprints, extended trial files, random embeddings.

Writes what stages 4 and 5 read, in the pipeline's own formats, under one folder:

    protocols_trials_extended/<ATK>-<co|nc>-<N>_trials.txt   (10 columns, space separated)
    protocols_fingerprint_extraction/<ATK>-<co|nc>-<N>.txt    (one row each: stage 4 lists them)
    out/<system>_fingerprint_avg_emb.csv                       (50 x 160)
    out/<system>_protocol_trials.npy + .ids.tsv                (every trial utterance)

Trial labels follow a STOPA-like attack table (five known attacks with five acoustic models,
unknown attacks sharing an acoustic model with one known attack, shared vocoders).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

SYSTEM = "BENCH"
KNOWN = ["AA01", "AA03", "AA05", "AA07", "AA10"]
CONDITIONS = [("co", n) for n in ("1", "10", "100", "400")] + [("nc", n) for n in ("1", "10", "100", "400", "1000", "all")]
TABLE = {  # attack: (AM, VM, AM family, VM family)
    "AA01": ("am1", "vm1", "tts", "gan"), "AA02": ("am1", "vm2", "tts", "ar"),
    "AA03": ("am2", "vm2", "tts", "ar"), "AA04": ("am2", "vm3", "tts", "gan"),
    "AA05": ("am3", "vm3", "vc", "gan"), "AA06": ("am3", "vm4", "vc", "flow"),
    "AA07": ("am4", "vm1", "tts", "gan"), "AA08": ("am4", "vm5", "tts", "dsp"),
    "AA09": ("am5", "vm4", "vc", "flow"), "AA10": ("am5", "vm5", "vc", "dsp"),
}
HEADER = ["AbstractModel", "FileName", "AcousticModel", "VocoderModel", "ATK", "IsTargetATK",
          "IsTargetAcousticModel", "IsTargetVocoderModel", "IsTargetAmArchit", "IsTargetVmArchit"]


def generate(root, total_rows: int, n_utterances: int | None = None, dim: int = 160, seed: int = 0,
             enroll_all: int | None = None) -> dict:
    """Write the evaluation set under `root`; returns a config dict for the stages.

    Each trial file draws its rows from `n_utterances` trial utterances (default 1.25 x a
    file's rows, so files share most utterances, as STOPA's conditions do). With
    `enroll_all`, also stage 1's matrices (`out/<system>_embeddings/`): per known attack a
    pool of 400 `co` and `enroll_all` `nc` enrollment utterances, `<co|nc>-N` the first N of
    its pool, `nc-all` the whole `nc` pool; the fingerprints are then their means.
    """
    rng = np.random.default_rng(seed)
    n_utterances = n_utterances or int(1.25 * total_rows / (len(KNOWN) * len(CONDITIONS)))
    attacks = list(TABLE)
    utt_attack = rng.integers(0, len(attacks), n_utterances)
    files = pa.array([f"{attacks[a]}_{i:07d}.flac" for i, a in enumerate(utt_attack)])
    col = {k: pa.array([TABLE[a][j] for a in attacks]) for j, k in enumerate(("am", "vm", "amf", "vmf"))}
    atk_names = pa.array(attacks)
    words = pa.array(["False", "True"])
    trial_dir = root / "protocols_trials_extended"
    enroll_dir = root / "protocols_fingerprint_extraction"
    out = root / "out"
    for d in (trial_dir, enroll_dir, out):
        d.mkdir(parents=True, exist_ok=True)
    fingerprints = [f"{a}-{c}-{n}" for a in KNOWN for c, n in CONDITIONS]
    per_file = total_rows // len(fingerprints)
    for fp in fingerprints:
        fa = attacks.index(fp.split("-")[0])
        rows = np.sort(rng.choice(n_utterances, per_file, replace=False))
        ua = utt_attack[rows]
        same = lambda j: np.array([TABLE[attacks[a]][j] == TABLE[attacks[fa]][j] for a in range(len(attacks))])[ua]  # noqa: E731
        flags = [ua == fa, same(0), same(1), same(2), same(3)]
        table = pa.table([pa.array(np.full(per_file, fp)), files.take(rows), col["am"].take(ua), col["vm"].take(ua),
                          atk_names.take(ua)] + [words.take(f.astype(np.int8)) for f in flags], names=HEADER)
        pacsv.write_csv(table, trial_dir / f"{fp}_trials.txt",
                        pacsv.WriteOptions(delimiter=" ", quoting_style="none", quoting_header="none"))
        (enroll_dir / f"{fp}.txt").write_text(f"SPEAKER FileName TEXT ATK\ns {fp}_0.flac t {fp.split('-')[0]}\n")
    # fingerprints near their attack's direction so that scores carry some signal
    centres = rng.standard_normal((len(attacks), dim))
    fp_matrix = (centres[[attacks.index(f.split("-")[0]) for f in fingerprints]]
                 + rng.standard_normal((len(fingerprints), dim))).astype(np.float32)
    lines = ["file," + ",".join(map(str, range(dim)))]
    lines += [f + "," + ",".join(str(v) for v in row) for f, row in zip(fingerprints, fp_matrix)]
    (out / f"{SYSTEM}_fingerprint_avg_emb.csv").write_text("\n".join(lines) + "\n")
    if enroll_all:
        fp_matrix = _enrollment(rng, out / f"{SYSTEM}_embeddings", fingerprints, centres, attacks, enroll_all)
        lines = ["file," + ",".join(map(str, range(dim)))]
        lines += [f + "," + ",".join(str(v) for v in row) for f, row in zip(fingerprints, fp_matrix)]
        (out / f"{SYSTEM}_fingerprint_avg_emb.csv").write_text("\n".join(lines) + "\n")
    emb = (centres[utt_attack] + 2 * rng.standard_normal((n_utterances, dim))).astype(np.float32)
    np.save(out / f"{SYSTEM}_protocol_trials.npy", emb)
    with open(out / f"{SYSTEM}_protocol_trials.ids.tsv", "w") as handle:
        handle.write("ATK\tFileName\n")
        handle.writelines(f"{attacks[a]}\t{f}\n" for a, f in zip(utt_attack, files.to_pylist()))
    return {"system": SYSTEM, "trial_protocol_dir": str(trial_dir), "enroll_protocol_dir": str(enroll_dir),
            "output_dir": str(out), "known_attacks": KNOWN}


def _enrollment(rng, folder, fingerprints, centres, attacks, enroll_all: int) -> np.ndarray:
    """Stage 1's matrices of every fingerprint (see `generate`); returns the fingerprints (means)."""
    folder.mkdir(parents=True, exist_ok=True)
    pools = {}
    for attack in KNOWN:
        centre = centres[attacks.index(attack)]
        for condition, size in (("co", 400), ("nc", enroll_all)):
            emb = (centre + 2 * rng.standard_normal((size, centre.size))).astype(np.float32)
            pools[(attack, condition)] = (emb, [f"{attack}_{condition}_{i:05d}.flac" for i in range(size)])
    means = []
    for fp in fingerprints:
        attack, condition, n = fp.split("-")
        emb, names = pools[(attack, condition)]
        count = len(names) if n == "all" else int(n)
        np.save(folder / f"{fp}.npy", emb[:count])
        (folder / f"{fp}.ids.tsv").write_text("ATK\tFileName\n" + "".join(f"{attack}\t{x}\n" for x in names[:count]))
        means.append(emb[:count].mean(axis=0, dtype=np.float64).astype(np.float32))
    return np.stack(means)
