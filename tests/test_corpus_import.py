"""`python -m sourcetrace.corpus`: manifests of each preset format -> protocols, config, summary.

Small manifests and short generated audio are written in each test; the expected protocol
files are worked out by hand from the design's definition (sourcetrace/corpus/design.py).
"""
import csv
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from sourcetrace.corpus.cli import main as corpus_main


def audio(root, files, seconds=0.05):
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.zeros(int(16000 * seconds), dtype=np.float32), 16000, subtype="PCM_16")


def table(path, header, rows, sep=","):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter=sep)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def lines(path):
    return path.read_text().splitlines()


def imported(capsys, *argv):
    code = corpus_main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def error(capsys, *argv):
    code = corpus_main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 2, captured.out
    return captured.err


# A generic manifest: K1, K2 known (enrollment rows), U1 unknown; texts make both conditions.
# Trial texts: t1, t2. K1 enrollment: a (t1, co), b (t2, co), c (t9, nc), d (t8, nc);
# K2 enrollment: e (t1, co), f (t7, nc), g (t2, co).
ROWS = [
    ["wav/k1_a.wav", "K1", "amX", "vm1", "s1", "t1", "dev"],
    ["wav/k1_b.wav", "K1", "amX", "vm1", "s2", "t2", "dev"],
    ["wav/k1_c.wav", "K1", "amX", "vm1", "s1", "t9", "dev"],
    ["wav/k1_d.wav", "K1", "amX", "vm1", "s2", "t8", "dev"],
    ["wav/k2_e.wav", "K2", "amY", "vm1", "s3", "t1", "dev"],
    ["wav/k2_f.wav", "K2", "amY", "vm1", "s3", "t7", "dev"],
    ["wav/k2_g.wav", "K2", "amY", "vm1", "s3", "t2", "dev"],
    ["wav/k1_x.wav", "K1", "amX", "vm1", "s1", "t1", "eval"],
    ["wav/u1_y.wav", "U1", "amX", "vm2", "s4", "t2", "eval"],
    ["wav/k2_z.wav", "K2", "amY", "vm1", "s3", "t2", "eval"],
    ["wav/tr_1.wav", "T1", "amZ", "vm3", "s5", "t5", "train"],
]
HEADER = ["file", "source", "am", "voc", "spk", "text", "part"]
OPTIONS = ["--path", "file", "--attack", "source", "--am", "am", "--vm", "voc", "--speaker", "spk", "--text", "text",
           "--split", "part", "--co-sizes", "1,2", "--nc-sizes", "1,2,all"]


@pytest.fixture
def generic(tmp_path):
    audio(tmp_path, [r[0] for r in ROWS])
    return table(tmp_path / "manifest.csv", HEADER, ROWS)


def order(files, key):
    files = sorted(files)
    random.Random(key).shuffle(files)
    return files


def test_generic_manifest_follows_the_stopa_design(tmp_path, generic, capsys):
    out = tmp_path / "imported"
    printed = imported(capsys, "manifest", generic, "--out", out, "--seed", 7, *OPTIONS)
    enroll = out / "protocols_fingerprint_extraction"
    # nc pools: K1 {c, d}, K2 {f}: size 2 does not fit K2, so nc keeps 1 and all; co: K1 {a, b}, K2 {e, g}
    assert sorted(p.name for p in enroll.iterdir()) == [
        "K1-co-1.txt", "K1-co-2.txt", "K1-nc-1.txt", "K1-nc-all.txt",
        "K2-co-1.txt", "K2-co-2.txt", "K2-nc-1.txt", "K2-nc-all.txt"]
    co_k1 = order(["wav/k1_a.wav", "wav/k1_b.wav"], "7/K1/co")
    assert lines(enroll / "K1-co-2.txt") == ["SPEAKER FileName TEXT_ID ATK"] + [
        f"{'s1' if f == 'wav/k1_a.wav' else 's2'} {f} {'T00001' if f == 'wav/k1_a.wav' else 'T00002'} K1"
        for f in co_k1]
    assert lines(enroll / "K1-co-1.txt")[1:] == lines(enroll / "K1-co-2.txt")[1:2]  # a prefix of the larger set
    nc_k1 = order(["wav/k1_c.wav", "wav/k1_d.wav"], "7/K1/nc")
    assert [line.split()[1] for line in lines(enroll / "K1-nc-all.txt")[1:]] == nc_k1
    assert lines(enroll / "K2-nc-all.txt")[1:] == ["s3 wav/k2_f.wav T00003 K2"]  # texts t1 t2 t7 t8 t9 numbered
    trials = lines(out / "protocols_trials_extended" / "K2-co-1_trials.txt")
    assert trials == [
        "AbstractModel FileName AcousticModel VocoderModel ATK IsTargetATK IsTargetAcousticModel "
        "IsTargetVocoderModel",
        "K2-co-1 wav/k1_x.wav amX vm1 K1 False False True",
        "K2-co-1 wav/k2_z.wav amY vm1 K2 True True True",
        "K2-co-1 wav/u1_y.wav amX vm2 U1 False False False"]
    assert lines(out / "protocols_train" / "train.txt") == ["SPEAKER FILE - ATTACK LABEL", "s5 wav/tr_1.wav - T1 spoof"]
    config = json.loads((out / "manifest.conf").read_text())
    assert config["known_attacks"] == ["K1", "K2"]
    assert config["database_path"] == str(tmp_path) and config["enroll_audio"] == "{database_path}/{file}"
    assert config["enroll_protocol_dir"] == str(out / "protocols_fingerprint_extraction")
    assert config["train_protocol"] == str(out / "protocols_train" / "train.txt")
    assert config["system"] == "AASIST_CM"  # the base config's model settings are kept
    summary = (out / "summary.txt").read_text()
    assert printed.startswith(summary)
    assert "note: nc: sizes 2 dropped: K2 has 1 nc enrollment utterance(s)" in summary
    assert "trial utterances: 3; fingerprints: 8; trial rows: 24" in summary
    row = next(line for line in summary.splitlines() if line.startswith("K1 "))
    assert row.split() == ["K1", "K1", "known", "amX", "vm1", "0", "2", "2", "-", "1"]


def test_the_same_seed_writes_the_same_files_and_another_seed_draws_again(tmp_path, generic, capsys):
    outs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        imported(capsys, "manifest", generic, "--out", tmp_path / name, "--seed", seed, *OPTIONS)
        outs.append({p.relative_to(tmp_path / name): p.read_bytes() for p in (tmp_path / name).rglob("*.txt")})
    assert outs[0] == outs[1]
    assert [order(["wav/k1_c.wav", "wav/k1_d.wav"], f"{s}/K1/nc") for s in (3, 4)] == [
        [line.split()[1] for line in lines(tmp_path / n / "protocols_fingerprint_extraction" / "K1-nc-all.txt")[1:]]
        for n in ("a", "c")]


def test_without_texts_only_nc_and_without_a_vocoder_column_no_vocoder_labels(tmp_path, generic, capsys):
    options = [o for o in OPTIONS if o not in ("--vm", "voc", "--text", "text")]
    out = tmp_path / "o"
    summary = imported(capsys, "manifest", generic, "--out", out, *options)
    names = sorted(p.name for p in (out / "protocols_fingerprint_extraction").iterdir())
    assert names == ["K1-nc-1.txt", "K1-nc-2.txt", "K1-nc-all.txt", "K2-nc-1.txt", "K2-nc-2.txt", "K2-nc-all.txt"]
    assert lines(out / "protocols_trials_extended" / "K1-nc-1_trials.txt")[:2] == [
        "AbstractModel FileName AcousticModel ATK IsTargetATK IsTargetAcousticModel",
        "K1-nc-1 wav/k1_x.wav amX K1 True True"]
    assert "only the nc condition" in summary and "absent: VocoderModel" in summary


def test_tada_style_pipe_manifest_without_split_holds_out_trials(tmp_path, capsys):
    files = [f"{s}_{i}" for s in ("sysA", "sysB", "sysC") for i in range(4)]
    audio(tmp_path, [f + ".wav" for f in files])
    manifest = tmp_path / "list.txt"
    manifest.write_text("utt|speaker|system\n" + "".join(f"{f}|spk{f[-1]}|{f.split('_')[0]}\n" for f in files))
    out = tmp_path / "o"
    summary = imported(capsys, "manifest", manifest, "--out", out, "--path", "utt", "--attack", "system",
                       "--speaker", "speaker", "--suffix", ".wav", "--known", "sysA,sysB", "--nc-sizes", "1,all")
    held = order([f"sysA_{i}.wav" for i in range(4)], "0/sysA/holdout")[:2]  # half of 4, seeded
    trial_rows = lines(out / "protocols_trials_extended" / "sysA-nc-1_trials.txt")
    assert trial_rows[0] == "AbstractModel FileName ATK IsTargetATK"
    trial_files = [r.split()[1] for r in trial_rows[1:]]
    assert [f for f in trial_files if f.startswith("sysA")] == sorted(held)
    assert [f for f in trial_files if f.startswith("sysC")] == [f"sysC_{i}.wav" for i in range(4)]
    enrolled = [r.split()[1] for r in lines(out / "protocols_fingerprint_extraction" / "sysA-nc-all.txt")[1:]]
    assert sorted(enrolled) == sorted(set(f"sysA_{i}.wav" for i in range(4)) - set(held))
    assert not (out / "protocols_train").exists()
    assert "note: no trial utterances of sysA, sysB: 0.5 of each one's enrollment utterances held out" in summary


def test_mlaad_preset(tmp_path, capsys):
    header = ["path", "model_name", "architecture", "transcript"]
    train = [["./fake/en/tts_models--en--ljspeech--vits/a1.wav", "tts_models/en/ljspeech/vits", "VITS", "hello, you"],
             ["./fake/de/griffin_lim/b1.wav", "griffin-lim/de", "GL", "guten tag"]]
    dev = [["fake/en/tts_models--en--ljspeech--vits/a2.wav", "tts_models/en/ljspeech/vits", "VITS", "x"],
           ["fake/de/griffin_lim/b2.wav", "griffin-lim/de", "GL", "y"],
           ["fake/fr/other/c2.wav", "other/fr", "Bark", "z"]]
    evaluation = [["fake/en/tts_models--en--ljspeech--vits/a3.wav", "tts_models/en/ljspeech/vits", "VITS", "x"],
                  ["fake/fr/other/c3.wav", "other/fr", "Bark", "y"], ["fake/de/griffin_lim/b3.wav", "griffin-lim/de",
                                                                      "GL", "w"]]
    protocols = tmp_path / "protocols"
    protocols.mkdir()
    for name, rows in (("train", train), ("dev", dev), ("eval", evaluation)):
        table(protocols / f"{name}.csv", header, rows)
    root = tmp_path / "MLAAD"
    audio(root, [r[0] for r in train + dev + evaluation])
    out = tmp_path / "o"
    summary = imported(capsys, "mlaad", protocols, "--audio-root", root, "--out", out, "--nc-sizes", "1")
    # names hold / and -: ids in name order (griffin-lim/de, other/fr, tts_models/...)
    assert lines(out / "attacks.tsv") == ["ATK\tname", "S01\tgriffin-lim/de", "S02\tother/fr",
                                          "S03\ttts_models/en/ljspeech/vits"]
    assert sorted(p.name for p in (out / "protocols_fingerprint_extraction").iterdir()) == ["S01-nc-1.txt",
                                                                                             "S03-nc-1.txt"]
    assert lines(out / "protocols_fingerprint_extraction" / "S03-nc-1.txt")[1:] == [
        "- fake/en/tts_models--en--ljspeech--vits/a2.wav - S03"]
    trials = lines(out / "protocols_trials_extended" / "S01-nc-1_trials.txt")
    assert trials == ["AbstractModel FileName AcousticModel ATK IsTargetATK IsTargetAcousticModel",
                      "S01-nc-1 fake/de/griffin_lim/b3.wav GL S01 True True",
                      "S01-nc-1 fake/fr/other/c3.wav Bark S02 False False",
                      "S01-nc-1 fake/en/tts_models--en--ljspeech--vits/a3.wav VITS S03 False False"]
    assert lines(out / "protocols_train" / "train.txt")[1:] == [
        "- fake/en/tts_models--en--ljspeech--vits/a1.wav - S03 spoof", "- fake/de/griffin_lim/b1.wav - S01 spoof"]
    assert json.loads((out / "mlaad.conf").read_text())["known_attacks"] == ["S01", "S03"]
    row = next(line for line in summary.splitlines() if line.startswith("S02 "))
    assert row.split() == ["S02", "other/fr", "unknown", "Bark", "0", "-", "-", "-", "1"]  # its dev row unused


def asvspoof(tmp_path, train, dev, evaluation):
    la = tmp_path / "LA"
    protocols = la / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    paths = []
    for split, kind, rows in (("train", "trn", train), ("dev", "trl", dev), ("eval", "trl", evaluation)):
        path = protocols / f"ASVspoof2019.LA.cm.{split}.{kind}.txt"
        path.write_text("".join(" ".join(r) + "\n" for r in rows))
        audio(la, [f"ASVspoof2019_LA_{split}/flac/{r[1]}.flac" for r in rows])
        paths.append(path)
    return paths


def test_asvspoof2019la_preset(tmp_path, capsys):
    train = [["LA_0079", "LA_T_1", "-", "-", "bonafide"], ["LA_0079", "LA_T_2", "-", "A04", "spoof"]]
    dev = [["LA_0070", f"LA_D_{i}{a}", "-", a, "spoof"] for a in ("A01", "A02", "A03", "A04", "A05", "A06")
           for i in (1, 2)] + [["LA_0070", "LA_D_9", "-", "-", "bonafide"]]
    evaluation = [["LA_0001", "LA_E_16", "-", "A16", "spoof"], ["LA_0001", "LA_E_07", "-", "A07", "spoof"]]
    paths = asvspoof(tmp_path, train, dev, evaluation)
    out = tmp_path / "o"
    imported(capsys, "asvspoof2019la", *paths, "--out", out, "--nc-sizes", "1")
    config = json.loads((out / "asvspoof2019la.conf").read_text())
    assert config["known_attacks"] == ["A01", "A02", "A03", "A04", "A05", "A06"]
    assert config["database_path"] == str(tmp_path / "LA")
    assert lines(out / "protocols_train" / "train.txt")[1:] == ["LA_0079 ASVspoof2019_LA_train/flac/LA_T_2.flac - A04 spoof"]
    # each training attack: one of its two dev utterances enrolled, the other held out as a trial
    held = order([f"ASVspoof2019_LA_dev/flac/LA_D_{i}A04.flac" for i in (1, 2)], "0/A04/holdout")[0]
    rows = lines(out / "protocols_trials_extended" / "A04-nc-1_trials.txt")
    assert rows[0] == ("AbstractModel FileName AcousticModel VocoderModel ATK IsTargetATK IsTargetAcousticModel "
                       "IsTargetVocoderModel IsTargetAmArchit IsTargetVmArchit")
    by_attack = {r.split()[4]: r.split() for r in rows[1:]}
    assert by_attack["A04"][1] == held
    assert by_attack["A16"][1:] == ["ASVspoof2019_LA_eval/flac/LA_E_16.flac", "A04", "A04", "A16", "False", "True",
                                    "True", "True", "True"]  # A16 is A04's system
    assert by_attack["A07"][5:] == ["False", "False", "False", "False", "False"]
    assert len(rows) == 1 + 6 + 2  # a held-out utterance per training attack, the two evaluation ones
    assert all("bonafide" not in line and "LA_T_1" not in line for p in out.rglob("*.txt") for line in lines(p))


def test_bad_manifests_name_file_and_line_and_write_nothing(tmp_path, generic, capsys):
    out = tmp_path / "o"
    err = error(capsys, "manifest", generic, "--out", out, *OPTIONS[:-4], "--am", "acoustic")
    assert err == (f"error: {generic}:1: no column 'acoustic' in the header (file, source, am, voc, spk, text, part); "
                   "name the right one with --am\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(generic.read_text() + "wav/z.wav,K1\n")
    assert error(capsys, "manifest", bad, "--out", out, *OPTIONS) == (
        f"error: {bad}:13: expected 7 columns as in the header (separator ','), found 2\n")
    duplicated = table(tmp_path / "dup.csv", HEADER, ROWS + [ROWS[2]])
    assert error(capsys, "manifest", duplicated, "--out", out, *OPTIONS) == (
        f"error: {duplicated}:13: duplicate audio path 'wav/k1_c.wav' (first at {duplicated}:4)\n")
    mixed = table(tmp_path / "mixed.csv", HEADER, ROWS[:3] + [ROWS[3][:2] + ["amQ"] + ROWS[3][3:]] + ROWS[4:])
    assert error(capsys, "manifest", mixed, "--out", out, *OPTIONS) == (
        f"error: {mixed}:5: attack 'K1' has AcousticModel 'amQ' here but 'amX' at {mixed}:2; "
        "one value per attack is expected\n")
    missing = table(tmp_path / "missing.csv", HEADER,
                    ROWS + [[f"wav/none_{i}.wav", "U1", "amX", "vm2", "s", "t", "eval"] for i in range(25)])
    err = error(capsys, "manifest", missing, "--out", out, *OPTIONS)
    assert err.startswith(f"error: {tmp_path}: 25 audio file(s) of the manifest not found")
    assert err.count("wav/none_") == 20 and err.endswith("  ... and 5 more\n")
    assert not out.exists()  # nothing written, not even the folder


def test_an_attack_too_small_to_enroll_fails_or_is_skipped(tmp_path, generic, capsys):
    options = [*OPTIONS[:-4], "--co-sizes", "2", "--nc-sizes", "2"]
    out = tmp_path / "o"
    err = error(capsys, "manifest", generic, "--out", out, *options, "--known", "K1,K2,U1")
    assert err.startswith("error: known attack U1 has 0 enrollment utterance(s); it needs 2")
    summary = imported(capsys, "manifest", generic, "--out", out, *options, "--known", "K1,K2,U1", "--on-error", "skip")
    assert "note: U1: left out, known attack U1 has 0 enrollment utterance(s)" in summary
    trial_files = [r.split()[1] for r in lines(out / "protocols_trials_extended" / "K1-co-2_trials.txt")[1:]]
    assert trial_files == ["wav/k1_x.wav", "wav/k2_z.wav"]  # U1 is neither enrolled nor a trial
    assert error(capsys, "manifest", generic, "--out", out, *OPTIONS).startswith(f"error: {out}: exists and is not empty")


def test_options_file_and_command_line(tmp_path, generic, capsys):
    options = tmp_path / "import.json"
    options.write_text(json.dumps({"preset": "manifest", "path": "file", "attack": "source", "split": "part",
                                   "co_sizes": [1], "nc_sizes": [1], "seed": 5}))
    out = tmp_path / "o"
    summary = imported(capsys, options, generic, "--out", out, "--seed", "6")
    assert "seed=6" in summary and "co_sizes=[1]" in summary
    options.write_text(json.dumps({"preset": "manifest", "colum": "x"}))
    assert error(capsys, options, generic, "--out", tmp_path / "p") == f"error: {options}: unknown option(s) colum\n"


# End to end on Mini-STOPA audio ---------------------------------------------------------------

MINI = REPO / "mini_stopa" / "corpus"


def mini_rows(per_split):
    """Mini-STOPA utterances, the first `per_split[split]` of each attack and split."""
    rows = list(csv.DictReader(open(MINI / "utterances.tsv"), delimiter="\t"))
    attacks = {r["ATK"]: r for r in csv.DictReader(open(MINI / "attacks.tsv"), delimiter="\t")}
    taken, kept = {}, []
    for r in rows:
        key = (r["ATK"], r["Split"])
        taken[key] = taken.get(key, 0) + 1
        if taken[key] <= per_split[r["Split"]]:
            kept.append({**r, **attacks[r["ATK"]], "Path": f"wav/{r['ATK']}/{r['Split']}/{r['FileName']}"})
    return kept


def stages(config, out, cwd):
    from sourcetrace.registry import STAGES
    for n in range(1, 6):
        done = subprocess.run([sys.executable, str(REPO / STAGES[n].script), "--config", str(config), "--set",
                               f"output_dir={out}", "--set", "bootstrap_resamples=10", "--set", "num_workers=0",
                               "--device", "cpu"], cwd=cwd, capture_output=True, text=True)
        assert done.returncode == 0, f"stage {n}:\n{done.stderr}"
    return done


def check_pipeline(config, run, labels):
    """Stages 1-5 and the report on an imported corpus: stage 5 pools exactly `labels`, its known-scenario
    ATK EER is the reference EER of the evaluation CSV's rows, and the report shows only those labels."""
    from sourcetrace.metrics import compute_eer
    printed = stages(config, run, REPO).stdout
    eer_dir = run / "AASIST_CM_EERs_pooled"
    assert [line.split(",")[0] for line in lines(eer_dir / "pooled_eer_kn.csv")] == ["", *labels]
    absent = [n for n in ("AcousticModel", "VocoderModel") if n not in labels]
    details = json.loads((eer_dir / "pooled_eer_details.json").read_text())
    assert details.get("absent_labels", []) == absent
    short = {"ATK": "ATK", "AcousticModel": "AM", "VocoderModel": "VM"}
    assert printed.splitlines()[1].split() == [short[n] for n in labels]
    with open(run / "AASIST_CM_evaluation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [c for c in rows[0] if c.startswith("IsTarget")][:len(labels)] == [f"IsTarget{n}" for n in labels]
    known = json.loads(config.read_text())["known_attacks"]
    kn = [r for r in rows if r["ATK"] in known]
    eer, _ = compute_eer([float(r["CosScore"]) for r in kn if r["IsTargetATK"] == "True"],
                         [float(r["CosScore"]) for r in kn if r["IsTargetATK"] == "False"])
    assert lines(eer_dir / "pooled_eer_kn.csv")[1] == f"ATK,{round(eer * 100, 2)!r}"
    assert {r["label"] for r in csv.DictReader(open(eer_dir / "metrics.csv"))} >= set(labels)
    report = subprocess.run([sys.executable, "-m", "sourcetrace.report", str(run), "AASIST_CM"], cwd=REPO,
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    heads = report.stdout.splitlines()[0].split()
    assert heads == ["pooled", "EER", "(%)", "known", *(short[n] for n in labels), "unknown",
                     *(short[n] for n in labels)]
    if absent:
        assert f"note: no {', '.join(absent)} labels" in report.stdout
    text = (run / "report.md").read_text()
    assert "| system | " + " | ".join(f"{s} {short[n]}" for s in ("known", "unknown") for n in labels) + " |" in text


def corpus_import(*argv):
    done = subprocess.run([sys.executable, "-m", "sourcetrace.corpus", *map(str, argv)], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_mlaad_style_corpus_without_vocoder_runs_stages_1_to_5_and_the_report(tmp_path):
    kept = mini_rows({"train": 0, "dev": 3, "eval": 2})
    protocols = tmp_path / "protocols"
    protocols.mkdir()
    header = ["path", "model_name", "architecture"]
    # MLAAD's known sources are train.csv's; Mini-STOPA's enrolled attacks have no training split, so
    # its dev rows play train.csv and dev.csv at once
    for name, split in (("train", "dev"), ("dev", "dev"), ("eval", "eval")):
        table(protocols / f"{name}.csv", header,
              [[r["Path"], r["ATK"], r["AcousticModel"]] for r in kept if r["Split"] == split])
    out = tmp_path / "imported"
    corpus_import("mlaad", protocols, "--audio-root", MINI, "--out", out, "--nc-sizes", "1,all")
    check_pipeline(out / "mlaad.conf", tmp_path / "run", ["ATK", "AcousticModel"])


@pytest.mark.slow
def test_asvspoof2019_style_corpus_runs_stages_1_to_5_and_the_report(tmp_path):
    """Mini-STOPA audio laid out as ASVspoof 2019 LA: AA01, AA03 as A01, A02 (dev), AA11 as A03 (train),
    AA02, AA06 as A07, A19 (eval), and a bona fide row that is dropped."""
    kept = mini_rows({"train": 2, "dev": 2, "eval": 2})
    as_system = {"AA01": "A01", "AA03": "A02", "AA11": "A03", "AA02": "A07", "AA06": "A19"}
    la = tmp_path / "LA"
    protocols = la / "ASVspoof2019_LA_cm_protocols"
    protocols.mkdir(parents=True)
    paths = []
    for split, kind in (("train", "trn"), ("dev", "trl"), ("eval", "trl")):
        rows = [r for r in kept if r["Split"] == split and r["ATK"] in as_system]
        folder = la / f"ASVspoof2019_LA_{split}" / "flac"
        folder.mkdir(parents=True)
        for r in rows:
            (folder / r["FileName"]).symlink_to(MINI / r["Path"])
        text = "".join(f"{r['Speaker']} {r['FileName'][:-5]} - {as_system[r['ATK']]} spoof\n" for r in rows)
        paths.append(protocols / f"ASVspoof2019.LA.cm.{split}.{kind}.txt")
        paths[-1].write_text(text + "LA_0001 LA_X_0001 - - bonafide\n")
    out = tmp_path / "imported"
    corpus_import("asvspoof2019la", *paths, "--out", out, "--known", "A01,A02", "--nc-sizes", "1")
    check_pipeline(out / "asvspoof2019la.conf", tmp_path / "run", ["ATK", "AcousticModel", "VocoderModel"])


@pytest.mark.slow
def test_tada_style_list_with_attacks_only_runs_stages_1_to_5_and_the_report(tmp_path):
    kept = [r for r in mini_rows({"train": 0, "dev": 3, "eval": 2})
            if r["ATK"] in ("AA01", "AA03") and r["Split"] == "dev" or r["ATK"] in ("AA02", "AA04")]
    manifest = tmp_path / "list.txt"
    manifest.write_text("utt|speaker|system\n" + "".join(f"{r['Path'][:-5]}|{r['Speaker']}|{r['ATK']}\n"
                                                          for r in kept))
    out = tmp_path / "imported"
    corpus_import("manifest", manifest, "--path", "utt", "--speaker", "speaker", "--attack", "system", "--suffix",
                  ".flac", "--known", "AA01,AA03", "--audio-root", MINI, "--nc-sizes", "1,all", "--out", out)
    check_pipeline(out / "manifest.conf", tmp_path / "run", ["ATK"])
