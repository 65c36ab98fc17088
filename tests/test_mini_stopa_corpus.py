"""The committed mini-STOPA corpus (mini_stopa/corpus) is complete and self-consistent.

Needs only numpy and soundfile: it reads the files the generator left, it does not run it.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

CORPUS = Path(__file__).resolve().parents[1] / "mini_stopa" / "corpus"
ENROLL_DIR = CORPUS / "protocols_fingerprint_extraction"
TRIALS_DIR = CORPUS / "protocols_trials_extended"
TRAIN_PROTOCOL = CORPUS / "protocols_train" / "train.txt"

KNOWN = {"AA01", "AA03", "AA05", "AA07", "AA10"}
UNKNOWN = {"AA02", "AA04", "AA06", "AA08", "AA09"}
TRAIN = {"AA11", "AA12", "AA13", "AA14", "AA15", "AA16"}
ATTACK_COLUMNS = ["ATK", "AcousticModel", "VocoderModel", "AmArchit", "VmArchit", "Role"]
TRIAL_HEADER = ["AbstractModel", "FileName", "AcousticModel", "VocoderModel", "ATK", "IsTargetATK",
                "IsTargetAcousticModel", "IsTargetVocoderModel", "IsTargetAmArchit", "IsTargetVmArchit"]
FINGERPRINT_NAME = re.compile(r"^(AA\d\d)-(co|nc)-(\d+|all)$")
MAX_CORPUS_BYTES = 25 * 1000 * 1000  # issue 25: "keep the corpus under about 25 MB"


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Whitespace-separated protocol: (header, rows)."""
    lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines[0], lines[1:]


@lru_cache(maxsize=None)
def attacks() -> dict[str, dict[str, str]]:
    return {r["ATK"]: r for r in _tsv(CORPUS / "attacks.tsv")}


@lru_cache(maxsize=None)
def manifest() -> dict[str, dict[str, str]]:
    return {r["FileName"]: r for r in _tsv(CORPUS / "utterances.tsv")}


@lru_cache(maxsize=None)
def enrollment() -> dict[str, list[list[str]]]:
    out = {}
    for p in sorted(ENROLL_DIR.glob("*.txt")):
        header, rows = _table(p)
        assert header[1] == "FileName" and header[3] == "ATK", p.name
        out[p.stem] = rows
    return out


@lru_cache(maxsize=None)
def trials() -> dict[str, list[dict[str, str]]]:
    out = {}
    for p in sorted(TRIALS_DIR.glob("*_trials.txt")):
        header, rows = _table(p)
        assert header == TRIAL_HEADER, p.name
        out[p.name[: -len("_trials.txt")]] = [dict(zip(header, r, strict=True)) for r in rows]
    return out


@lru_cache(maxsize=None)
def train_rows() -> list[list[str]]:
    return [ln.split() for ln in TRAIN_PROTOCOL.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _audio_paths() -> set[Path]:
    paths = set()
    for fp, rows in enrollment().items():
        paths |= {CORPUS / "wav" / r[3] / "dev" / r[1] for r in rows}
    for rows in trials().values():
        paths |= {CORPUS / "wav" / r["ATK"] / "eval" / r["FileName"] for r in rows}
    paths |= {CORPUS / "wav" / r[3] / "train" / f"{r[1]}.flac" for r in train_rows()}
    return paths


# ---------------------------------------------------------------------------- attack table


def test_attack_table_has_sixteen_attacks_with_the_stopa_roles():
    table = attacks()
    assert list(table) == [f"AA{i:02d}" for i in range(1, 17)]
    assert all(list(r) == ATTACK_COLUMNS for r in table.values())
    roles = {role: {a for a, r in table.items() if r["Role"] == role} for role in ("known", "unknown", "train")}
    assert roles == {"known": KNOWN, "unknown": UNKNOWN, "train": TRAIN}


def test_unseen_components_of_the_unknown_attacks_are_in_no_known_or_training_attack():
    """The unknown scenario's unseen AM (festival-kal-lpc-diphone) and VMs (istft, klatt) stay
    unseen: no known (enrolled) or training attack uses them."""
    seen = [r for r in attacks().values() if r["Role"] in ("known", "train")]
    assert not {r["AcousticModel"] for r in seen} & {"festival-kal-lpc-diphone"}
    assert not {r["VocoderModel"] for r in seen} & {"istft", "klatt"}


def test_known_attacks_have_pairwise_different_acoustic_models():
    ams = [attacks()[a]["AcousticModel"] for a in sorted(KNOWN)]
    assert len(set(ams)) == len(ams) == 5


def test_some_known_attacks_share_a_vocoder_but_not_an_acoustic_model():
    # As in STOPA (known ATK and known VM EERs differ), the VM labels of the known scenario must
    # not collapse onto the ATK labels: at least two known attacks share a vocoder, while the
    # known attacks keep pairwise different acoustic models.
    table = attacks()
    known = sorted(KNOWN)
    ams = [table[a]["AcousticModel"] for a in known]
    assert len(set(ams)) == len(ams)
    by_vm = {}
    for a in known:
        by_vm.setdefault(table[a]["VocoderModel"], []).append(a)
    assert any(len(atks) >= 2 for atks in by_vm.values()), by_vm
    # The trial files then have known-attack trials where IsTargetVocoderModel != IsTargetATK.
    differs = [r for rows in trials().values() for r in rows
               if r["ATK"] in KNOWN and r["IsTargetVocoderModel"] != r["IsTargetATK"]]
    assert differs


def test_each_model_has_one_architecture_family():
    for column, family in (("AcousticModel", "AmArchit"), ("VocoderModel", "VmArchit")):
        families = {}
        for r in attacks().values():
            families.setdefault(r[column], set()).add(r[family])
        assert all(len(f) == 1 for f in families.values()), column


def test_unknown_attacks_cover_the_required_open_set_cases():
    table = attacks()
    known_am = {table[a]["AcousticModel"] for a in KNOWN}
    known_vm = {table[a]["VocoderModel"] for a in KNOWN}
    known_pairs = {(table[a]["AcousticModel"], table[a]["VocoderModel"]) for a in KNOWN}
    cases = set()
    for a in UNKNOWN:
        am, vm = table[a]["AcousticModel"], table[a]["VocoderModel"]
        assert (am, vm) not in known_pairs, a
        cases.add(("seen" if am in known_am else "unseen", "seen" if vm in known_vm else "unseen"))
    assert cases == {("seen", "seen"), ("unseen", "seen"), ("seen", "unseen"), ("unseen", "unseen")}


def test_no_attack_uses_a_voice_with_research_only_training_data():
    # piper's lessac voice and its fine-tunes (e.g. joe) come from the research-only Blizzard 2013
    # Lessac data; the corpus must not contain their audio (see mini_stopa/README.md, licences).
    restricted = ("piper", "lessac", "joe")
    names = {r[c] for r in attacks().values() for c in ("AcousticModel", "VocoderModel")}
    assert not [n for n in names if any(w in n.lower() for w in restricted)]
    packages = json.loads((CORPUS / "generation.json").read_text(encoding="utf-8"))["python_packages"]
    assert not [p for p in packages if any(w in p.lower() for w in restricted)]


# ---------------------------------------------------------------------------- enrollment


def test_enrollment_files_are_named_after_known_attacks_and_list_only_their_attack():
    fps = enrollment()
    assert fps
    conditions = {}
    for fp, rows in fps.items():
        m = FINGERPRINT_NAME.match(fp)
        assert m, f"{fp}: expected <ATK>-<co|nc>-<N>"
        atk, cond, n = m.groups()
        assert atk in KNOWN
        assert rows and all(r[3] == atk for r in rows), fp
        if n != "all":
            assert len(rows) == int(n), fp
        assert len({r[1] for r in rows}) == len(rows), f"{fp}: repeated utterance"
        conditions.setdefault(atk, set()).add(f"{cond}-{n}")
    assert set(conditions) == KNOWN
    assert len({frozenset(c) for c in conditions.values()}) == 1, "every known attack has the same sizes"


def test_smaller_enrollment_sets_are_subsets_of_larger_ones():
    groups = {}
    for fp, rows in enrollment().items():
        atk, cond, n = FINGERPRINT_NAME.match(fp).groups()
        groups.setdefault((atk, cond), []).append({r[1] for r in rows})
    for key, sets in groups.items():
        sets.sort(key=len)
        assert all(a <= b for a, b in zip(sets, sets[1:])), key


def test_enrollment_utterances_are_dev_utterances_of_their_attack():
    m = manifest()
    for fp, rows in enrollment().items():
        for r in rows:
            assert m[r[1]]["Split"] == "dev" and m[r[1]]["ATK"] == r[3], (fp, r[1])
            assert m[r[1]]["TextId"] == r[2] and m[r[1]]["Speaker"] == r[0], (fp, r[1])


def test_co_enrollment_shares_sentences_with_its_trials_and_nc_does_not():
    m = manifest()
    for fp, rows in enrollment().items():
        cond = FINGERPRINT_NAME.match(fp).group(2)
        enrolled = {m[r[1]]["TextId"] for r in rows}
        trial_texts = {m[t["FileName"]]["TextId"] for t in trials()[fp]}
        if cond == "co":
            assert enrolled <= trial_texts, fp
        else:
            assert not enrolled & trial_texts, fp


# ---------------------------------------------------------------------------- trials


def test_one_trial_file_per_fingerprint_with_its_own_abstract_model():
    assert set(trials()) == set(enrollment())
    for fp, rows in trials().items():
        assert rows and all(r["AbstractModel"] == fp for r in rows), fp


def test_trials_cover_every_evaluation_attack_from_the_eval_split():
    m = manifest()
    for fp, rows in trials().items():
        assert {r["ATK"] for r in rows} == KNOWN | UNKNOWN, fp
        assert len({r["FileName"] for r in rows}) == len(rows), f"{fp}: repeated trial"
        for r in rows:
            assert m[r["FileName"]]["Split"] == "eval" and m[r["FileName"]]["ATK"] == r["ATK"]


def test_trial_labels_follow_from_the_attack_table():
    table = attacks()
    for fp, rows in trials().items():
        f = table[fp.split("-")[0]]
        for r in rows:
            t = table[r["ATK"]]
            assert (r["AcousticModel"], r["VocoderModel"]) == (t["AcousticModel"], t["VocoderModel"])
            expected = {
                "IsTargetATK": f["ATK"] == t["ATK"],
                "IsTargetAcousticModel": f["AcousticModel"] == t["AcousticModel"],
                "IsTargetVocoderModel": f["VocoderModel"] == t["VocoderModel"],
                "IsTargetAmArchit": f["AmArchit"] == t["AmArchit"],
                "IsTargetVmArchit": f["VmArchit"] == t["VmArchit"],
            }
            assert {k: r[k] for k in expected} == {k: str(v) for k, v in expected.items()}, (fp, r)


def test_known_scenario_has_targets_and_non_targets_for_every_label():
    for fp, rows in trials().items():
        for col in TRIAL_HEADER[5:]:
            values = {r[col] for r in rows}
            assert values == {"True", "False"}, (fp, col)


# ---------------------------------------------------------------------------- training


def test_training_protocol_is_asvspoof_style_for_the_training_attacks():
    rows = train_rows()
    assert rows
    m = manifest()
    for r in rows:
        assert len(r) == 5 and r[2] == "-" and r[4] == "spoof", r
        assert r[3] in TRAIN
        u = m[f"{r[1]}.flac"]
        assert (u["ATK"], u["Split"], u["Speaker"]) == (r[3], "train", r[0])
    per_attack = json.loads((CORPUS / "generation.json").read_text())["sizes"]["train_per_attack"]
    assert per_attack == 30  # issue 25: enough for a 20% dev split that ranks epochs (6 per attack)
    assert Counter(r[3] for r in rows) == {a: per_attack for a in TRAIN}


# ---------------------------------------------------------------------------- audio


def test_file_names_are_unique_and_every_file_is_in_the_manifest():
    files = sorted((CORPUS / "wav").rglob("*.flac"))
    names = [p.name for p in files]
    assert len(names) == len(set(names))
    assert set(names) == set(manifest())
    for p in files:
        u = manifest()[p.name]
        assert p.relative_to(CORPUS / "wav").parts == (u["ATK"], u["Split"], p.name)


def test_every_protocol_row_points_to_decodable_16khz_mono_audio():
    paths = _audio_paths()
    assert len(paths) == len(manifest()), "every utterance is used by some protocol"
    for p in sorted(paths):
        assert p.is_file(), p
        info = sf.info(str(p))
        assert (info.format, info.subtype, info.samplerate, info.channels) == ("FLAC", "PCM_16", 16000, 1), p
        x, _ = sf.read(str(p), dtype="float32")
        assert x.size > 16000 // 2, f"{p}: shorter than 0.5 s"
        assert np.all(np.isfinite(x)) and np.max(np.abs(x)) > 0.01, p


def test_corpus_fits_the_size_budget():
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total <= MAX_CORPUS_BYTES, f"{total / 1e6:.1f} MB"


def test_attacks_have_audio_exactly_in_the_splits_their_role_needs():
    needed = {"known": {"dev", "eval"}, "unknown": {"eval"}, "train": {"train"}}
    splits = {}
    for u in manifest().values():
        splits.setdefault(u["ATK"], set()).add(u["Split"])
    assert {a: splits.get(a) for a in attacks()} == {a: needed[r["Role"]] for a, r in attacks().items()}
