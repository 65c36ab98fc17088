"""trace_audio.py: which enrolled attack made each file, or none of them.

The generated corpus (tests/corpus.py) enrolls AA01, AA03, AA05; AA02 and AA04 are unknown.
Decisions are checked against an oracle computed here from stage 3's embeddings of the same
files, stage 2's fingerprint CSV and stage 5's unknown_detection.csv, read with the csv module.
"""
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from corpus import ATTACKS, KNOWN
from stagerun import completed, make, stage
from sourcetrace import trace
from sourcetrace.trace import conditions, expand

SYSTEM = "AASIST_CM"


@pytest.fixture
def done(tmp_path, tmp_path_factory):
    return completed(tmp_path, tmp_path_factory)


def run_trace(root: Path, capsys, *args):
    status = trace.main(["--config", str(root / "sys.conf"), "-q", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def oracle(root: Path, files: list[Path], condition: str = "nc-all"):
    """Per file: the condition's fingerprints sorted by cosine (highest first, ties by name)
    with their scores, from stage 3's embedding of the file, and stage 5's threshold."""
    out = root / "out"
    embeddings = np.load(out / f"{SYSTEM}_protocol_trials.npy").astype(np.float64)
    ids = [tuple(line.split("\t")) for line in (out / f"{SYSTEM}_protocol_trials.ids.tsv").read_text().splitlines()[1:]]
    with open(out / f"{SYSTEM}_fingerprint_avg_emb.csv", newline="") as handle:
        rows = list(csv.reader(handle))[1:]
    fingerprints = {r[0]: np.array([float(v) for v in r[1:]]) for r in rows
                    if r[0].endswith("-" + condition) and r[0].split("-")[0] in KNOWN}
    with open(out / f"{SYSTEM}_EERs_pooled" / "unknown_detection.csv", newline="") as handle:
        kind, size = condition.split("-")
        threshold = next(float(r["eer_threshold"]) for r in csv.DictReader(handle)
                         if (r["condition"], r["enroll_size"]) == (kind, size))
    found = {}
    for f in files:
        e = embeddings[ids.index((f.parent.parent.name, f.name))]
        scores = {n: float(e @ v / (np.linalg.norm(e) * np.linalg.norm(v))) for n, v in fingerprints.items()}
        found[str(f)] = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return found, threshold


def eval_files(root: Path, attack: str) -> list[Path]:
    return sorted((root / "db" / "wav" / attack / "eval").glob("*.wav"))


@pytest.mark.slow
def test_script_traces_files_as_the_oracle_decides(done):
    """Known and unknown attacks' files, as a subprocess: the ranked fingerprints, scores,
    labels and decisions of the JSON records are the oracle's."""
    files = eval_files(done, "AA01") + eval_files(done, "AA05") + eval_files(done, "AA02") + eval_files(done, "AA04")
    out_json = done / "traced.json"
    result = subprocess.run([sys.executable, str(REPO / "trace_audio.py"), "--config", str(done / "sys.conf"),
                             *map(str, files), "--top", "2", "--out", str(out_json)],
                            capture_output=True, text=True, cwd=done)
    assert result.returncode == 0, result.stderr
    records = json.loads(out_json.read_text())
    expected, threshold = oracle(done, files)
    assert [r["file"] for r in records] == [str(f) for f in files]
    unknown_seen = 0
    for r in records:
        ranked = expected[r["file"]]
        assert r["threshold"] == threshold and r["threshold_source"] == "stage5_eer" and r["condition"] == "nc-all"
        for k in (1, 2):
            name, score = ranked[k - 1]
            attack = name.split("-")[0]
            assert r[f"fingerprint_{k}"] == name and r[f"attack_{k}"] == attack
            assert (r[f"acoustic_model_{k}"], r[f"vocoder_{k}"]) == ATTACKS[attack][:2]
            assert r[f"score_{k}"] == pytest.approx(score, abs=1e-5)
        assert "fingerprint_3" not in r and r["error"] == ""
        best = ranked[0][1]
        if abs(best - threshold) > 1e-5:  # a file at the threshold itself may fall either side of rounding
            assert r["decision"] == ("unknown" if best <= threshold else ranked[0][0].split("-")[0])
        unknown_seen += r["decision"] == "unknown"
    assert 0 < unknown_seen < len(records)  # the threshold separates something on this corpus
    # the table names every file with its decision, and the attacks' labels
    lines = result.stdout.splitlines()
    assert lines[0] == f"{SYSTEM}: {len(files)} file(s) against the 3 fingerprint(s) of condition nc-all (back-end cosine)"
    assert f"threshold {threshold:.4f}" in lines[1] and "unknown_detection.csv" in lines[1]
    for r in records:
        row = next(line for line in lines if line.startswith(str(Path(r["file"]).relative_to(done))))
        assert row.split()[1] == r["decision"]
    assert "attacks: AA01 = am1 + vm1; AA03 = am2 + vm2; AA05 = am3 + vm3" in lines


def test_known_attack_file_traced_to_its_attack_with_threshold_option(done, capsys):
    """AA03's own files with --threshold below every score: decided AA03, the other known
    attacks ranked after it in the oracle's order; the CSV checked field by field."""
    files = eval_files(done, "AA03")
    out_csv = done / "traced.csv"
    status, out, err = run_trace(done, capsys, *map(str, files), "--threshold", "-1", "--out", str(out_csv))
    assert status == 0, err
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "decision", "threshold", "threshold_source", "condition",
                             *[f"{c}_{k}" for k in (1, 2, 3)
                               for c in ("fingerprint", "attack", "acoustic_model", "vocoder", "score")], "error"]
    expected, _ = oracle(done, files)
    for row in rows:
        ranked = expected[row["file"]]
        assert ranked[0][0] == "AA03-nc-all"  # this corpus's AA03 is closest to its own fingerprint
        assert row["decision"] == "AA03" and row["threshold"] == "-1.0" and row["threshold_source"] == "option"
        assert [row[f"fingerprint_{k}"] for k in (1, 2, 3)] == [n for n, _ in ranked]
        assert [float(row[f"score_{k}"]) for k in (1, 2, 3)] == pytest.approx([s for _, s in ranked], abs=1e-5)
        assert row["acoustic_model_1"] == "am2" and row["vocoder_1"] == "vm2" and row["error"] == ""
    assert "threshold -1.0000, set with --threshold" in out


def test_threshold_above_every_score_and_none(done, capsys):
    files = [str(p) for p in eval_files(done, "AA01")]
    status, _, err = run_trace(done, capsys, *files, "--threshold", "1.5", "--out", str(done / "a.json"))
    assert status == 0, err
    assert {r["decision"] for r in json.loads((done / "a.json").read_text())} == {"unknown"}
    status, out, err = run_trace(done, capsys, *files, "--threshold", "none", "--out", str(done / "b.csv"))
    assert status == 0, err
    records = list(csv.DictReader(open(done / "b.csv", newline="")))
    assert all(r["decision"] == r["attack_1"] and r["threshold"] == "" and r["threshold_source"] == "none"
               for r in records)
    assert "no `unknown` decision" in out.splitlines()[1]


def test_list_and_folder_inputs(done, capsys):
    """@LIST lines (blank ones ignored, a folder among them), a folder searched recursively for
    audio only, a file named twice traced once; records in the order named."""
    db = done / "db" / "wav"
    (db / "AA02" / "notes.txt").write_text("not audio")
    listing = done / "files.txt"
    listing.write_text(f"{db / 'AA04' / 'eval' / 'AA04_E_0001.wav'}\n\n{db / 'AA05' / 'eval'}\n")
    status, _, err = run_trace(done, capsys, f"@{listing}", str(db / "AA02"),
                               str(db / "AA04" / "eval" / "AA04_E_0001.wav"), "--out", str(done / "r.json"))
    assert status == 0, err
    names = [r["file"] for r in json.loads((done / "r.json").read_text())]
    assert names == [str(db / "AA04" / "eval" / "AA04_E_0001.wav"), *map(str, eval_files(done, "AA05")),
                     *map(str, eval_files(done, "AA02"))]


def test_unreadable_file_fails_naming_it_or_is_a_record_under_skip(done, capsys):
    bad = done / "broken.wav"
    bad.write_bytes(b"RIFF1234WAVEjunk")
    good = eval_files(done, "AA01")[0]
    status, _, err = run_trace(done, capsys, str(good), str(bad))
    assert status == 2 and err.startswith("error: ") and str(bad) in err and "Traceback" not in err
    listing = done / "l.txt"
    listing.write_text(f"{good}\n{done / 'missing.wav'}\n")
    status, _, err = run_trace(done, capsys, f"@{listing}")
    assert status == 2 and err.strip() == f"error: {listing}:2: {done / 'missing.wav'}: no such audio file"
    status, out, err = run_trace(done, capsys, str(good), str(bad), f"@{listing}", "--on-error", "skip",
                                 "--out", str(done / "s.csv"))
    assert status == 0, err
    rows = list(csv.DictReader(open(done / "s.csv", newline="")))
    assert [r["file"] for r in rows] == [str(good), str(bad), str(done / "missing.wav")]
    assert rows[0]["error"] == "" and rows[0]["decision"] in ("AA01", "AA03", "AA05", "unknown")
    assert "not a readable audio file" in rows[1]["error"] and rows[1]["decision"] == "" and rows[1]["score_1"] == ""
    assert rows[2]["error"] == "audio file not found"
    assert "skipped 2" in out


def test_refuses_when_stages_are_not_current(tmp_path, capsys):
    make(tmp_path)
    f = str(tmp_path / "db" / "wav" / "AA01" / "eval" / "AA01_E_0000.wav")
    assert stage(tmp_path, 1, "-q") == 0
    status, _, err = run_trace(tmp_path, capsys, f, "--threshold", "none")
    assert status == 2 and "stage 2 (create_fingerprint_avg_emb_csv.py) has not run" in err
    for n in (2, 3, 4):
        assert stage(tmp_path, n, "-q") == 0
    capsys.readouterr()
    status, _, err = run_trace(tmp_path, capsys, f)  # stage 5's threshold
    assert status == 2 and "stage 5 (compute_eer_pooled.py) has not run" in err
    assert stage(tmp_path, 5, "-q") == 0
    capsys.readouterr()
    assert run_trace(tmp_path, capsys, f)[0] == 0
    # fewer known attacks: stage 5 is out of date for the config; a threshold given needs only stage 2
    subset = '--set=known_attacks=["AA01","AA03"]'
    status, _, err = run_trace(tmp_path, capsys, f, subset)
    assert status == 2 and "stage 5 (compute_eer_pooled.py) is out of date" in err and err.count("\n") == 1
    status, out, err = run_trace(tmp_path, capsys, f, subset, "--threshold", "0.5")
    assert status == 0, err
    assert "against the 2 fingerprint(s)" in out
    # on_error is part of stage 1's identity: --set changes it, --on-error does not
    status, _, err = run_trace(tmp_path, capsys, f, "--set", "on_error=skip")
    assert status == 2 and "stage 1 (fingerprint_embedding_extraction.py) is out of date" in err
    assert run_trace(tmp_path, capsys, f, "--on-error", "skip")[0] == 0
    # a changed fingerprint CSV
    csv_path = tmp_path / "out" / f"{SYSTEM}_fingerprint_avg_emb.csv"
    csv_path.write_text(csv_path.read_text().replace("AA01-nc-all,", "AA01-nc-all,1", 1))
    status, _, err = run_trace(tmp_path, capsys, f, "--threshold", "none")
    assert status == 2 and "stage 2 (create_fingerprint_avg_emb_csv.py) is out of date" in err
    assert "was changed after it ran" in err


def test_cache_keyed_as_stage_3_and_other_conditions(done, capsys):
    """The embedding cache's folder has stage 3's key (same identity entries); a second trace
    reuses it; --condition picks other fingerprints; a wrong one lists those present."""
    f = str(eval_files(done, "AA05")[0])
    status, _, err = run_trace(done, capsys, f, "--condition", "co-2", "--out", str(done / "c.json"))
    assert status == 0, err
    work = done / "out" / f".{SYSTEM}_work"
    assert [p.name for p in (work / "stagetrace").iterdir()] == [p.name for p in (work / "stage3").iterdir()]
    record = json.loads((done / "c.json").read_text())[0]
    expected, threshold = oracle(done, [Path(f)], "co-2")
    assert record["fingerprint_1"] == expected[f][0][0] and record["threshold"] == threshold
    status, _, err = run_trace(done, capsys, f, "--condition", "nc-7")
    assert status == 2 and err.strip().endswith("one of nc-all, nc-2, co-2, nc-1, co-1")


def test_conditions_order_and_known_attacks_only():
    names = ["AA01-co-1", "AA01-nc-all", "AA02-nc-all", "AA01-nc-10", "AA01-co-10", "AA03-nc-all", "x", "AA03-co-10"]
    found = conditions(names, ["AA01", "AA03"])
    assert list(found) == ["nc-all", "nc-10", "co-10", "co-1"]
    assert [names[c] for c in found["nc-all"]] == ["AA01-nc-all", "AA03-nc-all"]
    assert [names[c] for c in found["co-10"]] == ["AA01-co-10", "AA03-co-10"]


def test_expand_folders_lists_and_errors(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/z.wav", "a/b/y.FLAC", "a/readme.txt", "a/b/x.ogg"):
        (tmp_path / name).write_bytes(b"")
    files = expand([str(tmp_path / "a" / "z.wav"), str(tmp_path / "a")], "fail")
    assert [f.file for f in files] == [str(tmp_path / p) for p in ("a/z.wav", "a/b/x.ogg", "a/b/y.FLAC")]
    assert files[0].where == "command line" and files[1].where == f"found in {tmp_path / 'a'}"
    with pytest.raises(Exception, match="no such file or folder"):
        expand([str(tmp_path / "nothing")], "fail")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no audio files in this folder"):
        expand([str(tmp_path / "empty")], "fail")
    listing = tmp_path / "list.txt"
    listing.write_text(f"\n{tmp_path / 'a' / 'readme.txt'}\n")
    files = expand([f"@{listing}"], "fail")  # a file named in a list is taken whatever its suffix
    assert [f.where for f in files] == [f"{listing}:2"]
