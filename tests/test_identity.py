"""One identity per stage: no cache, resume or report outlives its inputs (issue 18).

Each scenario is run as a user would: a stage script killed at a
chosen chunk (a real subprocess, SIGKILL), an input changed in place, the stage run again;
the result must be the one a fresh run on the new inputs gives, or a refusal naming the cause.
"""
import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from stagerun import completed, error_of, make, script, stage
from sourcetrace import report
from sourcetrace.testhooks import ENV as KILL_AT

OUT = "out"
SYSTEM = "AASIST_CM"


def out(tmp_path, name=""):
    return tmp_path / OUT / name


def embeddings(tmp_path, number, folder=OUT):
    """Stage 3's matrix, or stage 1's matrices stacked in name order."""
    root = tmp_path / folder
    if number == 3:
        return np.load(root / f"{SYSTEM}_protocol_trials.npy")
    return np.concatenate([np.load(p) for p in sorted((root / f"{SYSTEM}_embeddings").glob("*.npy"))])


def kill_after_two_chunks(tmp_path, number, *extra):
    killed = script(tmp_path, number, "--set", "chunk_size=2", *extra, env={KILL_AT: "chunk-2"})
    assert killed.returncode == -9, killed.stderr
    chunks = sorted(out(tmp_path, f".{SYSTEM}_work/stage{number}").glob("*/chunk_*.npz"))
    assert len(chunks) == 2
    return chunks


def fresh(tmp_path, number, *extra):
    """The stage on the current inputs in a new output folder, with no cache."""
    assert stage(tmp_path, number, "--set", "chunk_size=2", "--set", f"output_dir={tmp_path / 'fresh'}", *extra) == 0
    return embeddings(tmp_path, number, "fresh")


def members_of(chunk):
    with np.load(chunk) as z:
        return [str(m).split("\t") for m in z["members"]]


# 1 -----------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("number", [1, 3])
def test_a_checkpoint_replaced_in_place_after_a_kill_is_never_mixed_with_the_old_one(tmp_path, capsys, number):
    make(tmp_path)
    checkpoint = tmp_path / "model.pth"
    shutil.copyfile(REPO / "models" / "AASIST_CM.pth", checkpoint)
    use = ("--set", f"model_path={checkpoint}")
    kill_after_two_chunks(tmp_path, number, *use)
    shutil.copyfile(REPO / "models" / "AASIST_STOPA.pth", checkpoint)  # as train_model.py --force does
    assert stage(tmp_path, number, "--set", "chunk_size=2", *use) == 0
    assert "already embedded" not in capsys.readouterr().err
    np.testing.assert_allclose(embeddings(tmp_path, number), fresh(tmp_path, number, *use), atol=1e-5, rtol=0)
    # one work folder: the new checkpoint's; the old one's was removed
    assert len(list(out(tmp_path, f".{SYSTEM}_work/stage{number}").iterdir())) == 1


# 2, 3 --------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("change", ["repaired", "shortened"])
@pytest.mark.parametrize("number", [1, 3])
def test_audio_changed_in_place_after_a_kill_is_extracted_again(tmp_path, number, change):
    make(tmp_path)
    chunks = kill_after_two_chunks(tmp_path, number)
    attack, file, *_ = members_of(chunks[0])[0]  # an utterance the killed run had embedded
    split = "dev" if number == 1 else "eval"
    path = tmp_path / "db" / "wav" / attack / split / file
    wave, rate = sf.read(path, dtype="float32")
    if change == "repaired":  # same length, other audio
        other = sf.read(next(p for p in sorted(path.parent.parent.parent.rglob("*.wav")) if p != path),
                        dtype="float32")[0]
        wave = np.resize(other, len(wave))
    else:  # shorter: the plan's chunks change membership
        wave = wave[: len(wave) * 2 // 3]
    sf.write(path, wave, rate, subtype="PCM_16")
    assert stage(tmp_path, number, "--set", "chunk_size=2") == 0
    result = embeddings(tmp_path, number)
    assert np.isfinite(result).all()
    np.testing.assert_allclose(result, fresh(tmp_path, number), atol=1e-5, rtol=0)


# 4 -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_training_resumed_after_its_audio_changed_starts_afresh(tmp_path):
    from test_training import config, history, script as train_script, training_corpus
    (tmp_path / "corpus").mkdir()
    db = training_corpus(tmp_path / "corpus")
    cfg = config(db, "ResNet34", tmp_path / "killed", epochs=2)
    first = train_script(cfg, tmp_path, env={"SOURCETRACE_TEST_KILL_AT": "train-step-4"})
    assert first.returncode == -9
    [state] = (tmp_path / "killed" / ".tiny_ResNet34_work" / "stage0").glob("*/last.pt")
    for wav in sorted((db / "db").rglob("*.wav"))[::3]:  # overwrite some of the training audio
        wave, rate = sf.read(wav, dtype="float32")
        sf.write(wav, wave[::-1].copy(), rate)
    second = train_script(cfg, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "resuming" not in second.stdout and not state.parent.exists()  # the old identity's state is gone
    whole = train_script({**cfg, "output_dir": str(tmp_path / "whole")}, tmp_path)
    assert whole.returncode == 0
    a, b = tmp_path / "whole" / "tiny_ResNet34_training", tmp_path / "killed" / "tiny_ResNet34_training"
    assert (a / "best.pth").read_bytes() == (b / "best.pth").read_bytes()
    losses = [[r["train_loss"], r["dev_loss"]] for r in history(a / "history.csv")]
    assert [[r["train_loss"], r["dev_loss"]] for r in history(b / "history.csv")] == losses


# 5 -----------------------------------------------------------------------------------------

@pytest.mark.slow
def test_the_report_refuses_outputs_its_records_do_not_vouch_for(tmp_path, tmp_path_factory, capsys):
    completed(tmp_path, tmp_path_factory)
    assert report.main([str(out(tmp_path)), SYSTEM]) == 0
    capsys.readouterr()
    pooled = out(tmp_path, f"{SYSTEM}_EERs_pooled/pooled_eer_kn.csv")
    text = pooled.read_text()
    pooled.write_text(text.replace(text.splitlines()[1].split(",")[1], "1.23", 1))
    assert report.main([str(out(tmp_path)), SYSTEM]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its output AASIST_CM_EERs_pooled/pooled_eer_kn.csv was changed" in err
    assert report.main([str(out(tmp_path)), SYSTEM, "--allow-stale"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("WARNING (--allow-stale): AASIST_CM's numbers are not vouched for")
    assert "Warning (--allow-stale)" in out(tmp_path, "report.md").read_text()
    # stage 4 re-run under other known attacks, stage 5 not: the chain changed after stage 5 ran
    pooled.write_text(text)  # the recorded content again (another time): recognised by its SHA-256
    assert report.main([str(out(tmp_path)), SYSTEM]) == 0
    assert stage(tmp_path, 4, "--set", 'known_attacks=["AA01","AA03"]') == 0
    capsys.readouterr()
    assert report.main([str(out(tmp_path)), SYSTEM, "--out", str(tmp_path)]) == 2
    assert "stage 4 ran again after it" in capsys.readouterr().err


def test_the_report_refuses_a_missing_or_damaged_record(tmp_path, capsys):
    folder = out(tmp_path, f"{SYSTEM}_EERs_pooled")
    folder.mkdir(parents=True)
    assert report.main([str(out(tmp_path)), SYSTEM]) == 2
    assert "stage 5 (compute_eer_pooled.py) has no record" in capsys.readouterr().err
    out(tmp_path, f"{SYSTEM}_records").mkdir()
    for damaged in ("{}", "[]", "not json"):
        out(tmp_path, f"{SYSTEM}_records/stage5.json").write_text(damaged)
        assert report.main([str(out(tmp_path)), SYSTEM]) == 2
        err = capsys.readouterr().err
        assert "its record is damaged" in err and "Traceback" not in err


# 6 -----------------------------------------------------------------------------------------

def test_an_enrollment_row_of_another_attack_is_an_error_naming_file_and_line(tmp_path, capsys):
    corpus = make(tmp_path)
    protocol = corpus.enroll_dir / "AA01-co-1.txt"
    protocol.write_text(protocol.read_text() + "spk0 AA03_D_0001.wav t9 AA03\n")
    err = error_of(tmp_path, capsys, 1)
    assert err == (f"error: {protocol}:3: attack 'AA03', but this is the enrollment file of fingerprint "
                   f"'AA01-co-1' (attack 'AA01'); a fingerprint averages one attack's utterances\n")


# re-extract only what changed ----------------------------------------------------------------

@pytest.mark.slow
def test_a_label_edit_reextracts_nothing_and_a_new_trial_file_only_its_new_utterances(
        tmp_path, tmp_path_factory, capsys, caplog):
    corpus = make(tmp_path)
    for number in (1, 2, 3, 4):
        assert stage(tmp_path, number, "-q") == 0
    before = embeddings(tmp_path, 3)
    trials = corpus.trial_dir / "AA01-co-1_trials.txt"
    lines = trials.read_text().splitlines()
    cells = lines[1].split()
    cells[5] = "False" if cells[5] == "True" else "True"  # IsTargetATK of the first row flipped
    trials.write_text("\n".join([lines[0], " ".join(cells), *lines[2:]]) + "\n")
    capsys.readouterr()
    assert stage(tmp_path, 3) == 0
    assert "stage 3 (trials_embedding_extraction.py) is up to date" in capsys.readouterr().out
    assert stage(tmp_path, 4) == 0  # stage 4 reads the labels: it runs again
    scored = out(tmp_path, f"{SYSTEM}_evaluation.csv").read_text().splitlines()
    assert scored[1].split(",")[5] == cells[5]
    # a new trial utterance in one file: only it is extracted
    audio = tmp_path / "db" / "wav" / "AA02" / "eval" / "AA02_E_0009.wav"
    source = sf.read(tmp_path / "db" / "wav" / "AA02" / "eval" / "AA02_E_0000.wav")[0]
    sf.write(audio, source[:-37][::-1].copy(), 16000)  # a length of its own: a batch of its own
    trials.write_text(trials.read_text() + "AA01-co-1 AA02_E_0009.wav am1 vm2 AA02 False True False True False\n")
    caplog.clear()
    with caplog.at_level("INFO"):
        assert stage(tmp_path, 3) == 0
    # only the new utterance's batch (batch_size 2: it and at most one neighbour) is computed
    reused = int(re.search(r"(\d+) utterance\(s\) already embedded", caplog.text).group(1))
    assert reused in (9, 10)
    after = embeddings(tmp_path, 3)
    assert after.shape == (11, before.shape[1])
    np.testing.assert_allclose(after[:10], before, atol=1e-5, rtol=0)


def test_duplicate_trial_rows_stop_stage3_before_any_extraction(tmp_path, capsys):
    corpus = make(tmp_path)
    trials = corpus.trial_dir / "AA03-nc-2_trials.txt"
    lines = trials.read_text().splitlines()
    trials.write_text("\n".join(lines + [lines[2]]) + "\n")
    err = error_of(tmp_path, capsys, 3)
    assert err.startswith(f"error: {trials}:{len(lines) + 1}: duplicate trial (AA03-nc-2, ")
    assert err.endswith("(first at line 3)\n")
    assert not out(tmp_path).exists()  # a refused stage creates no folder


def test_trial_files_with_cr_only_line_ends_and_a_missing_label_column(tmp_path, capsys):
    corpus = make(tmp_path)
    for path in corpus.trial_dir.iterdir():
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r"))
    for number in (1, 2, 3, 4):
        assert stage(tmp_path, number, "-q") == 0
    assert embeddings(tmp_path, 3).shape[0] == 10
    trials = corpus.trial_dir / "AA05-co-1_trials.txt"
    lines = trials.read_text().splitlines()
    trials.write_text("\n".join(" ".join(line.split()[:7]) for line in lines) + "\n")  # no IsTargetVocoderModel
    # a label column may be absent from a corpus, but then from every trial file
    message = f"error: {trials}:1: header differs from AA01-"
    assert stage(tmp_path, 3) == 0  # its utterances did not change: stage 3 is current; stage 4 reads the labels
    assert error_of(tmp_path, capsys, 4).startswith(message)
    assert error_of(tmp_path, capsys, 3, "--force").startswith(message)


# records, messages, copies -------------------------------------------------------------------

@pytest.mark.slow
def test_damaged_records_changed_audio_named_and_copies_without_times(tmp_path, tmp_path_factory, capsys):
    completed(tmp_path, tmp_path_factory)
    record = out(tmp_path, f"{SYSTEM}_records/stage1.json")
    kept = record.read_text()
    for damaged in ("{}", "[]"):
        record.write_text(damaged)
        err = error_of(tmp_path, capsys, 2)
        assert "stage 1 (fingerprint_embedding_extraction.py) is out of date" in err and "record is damaged" in err
    record.write_text(kept)
    # a copy that does not keep times (cp -r): every output is still recognised by its content
    copy = tmp_path / "copy"
    shutil.copytree(out(tmp_path), copy, copy_function=shutil.copyfile)
    assert stage(tmp_path, 5, "--set", f"output_dir={copy}") == 0
    assert "stage 5 (compute_eer_pooled.py) is up to date" in capsys.readouterr().out
    audio = tmp_path / "db" / "wav" / "AA03" / "dev" / "AA03_D_0001.wav"
    wave, rate = sf.read(audio, dtype="float32")
    sf.write(audio, wave[:-160], rate, subtype="PCM_16")
    err = error_of(tmp_path, capsys, 2)
    assert "audio changed: AA03/AA03_D_0001.wav (" in err and "-> " in err


@pytest.mark.slow
def test_stages_2_and_4_read_upstream_files_made_elsewhere_with_a_warning(tmp_path, tmp_path_factory, caplog,
                                                                          capsys):
    completed(tmp_path, tmp_path_factory)
    for number in (1, 2):
        out(tmp_path, f"{SYSTEM}_records/stage{number}.json").unlink()
    with caplog.at_level("WARNING"):
        assert stage(tmp_path, 4, "--force") == 0
    assert "no record of stage 2 (create_fingerprint_avg_emb_csv.py) for AASIST_CM: reading" in caplog.text
    record = json.loads(out(tmp_path, f"{SYSTEM}_records/stage4.json").read_text())
    assert record["upstream"]["2"] == "made elsewhere" and record["upstream"]["3"] != "made elsewhere"
    assert f"{SYSTEM}_fingerprint_avg_emb.csv" in record["identity"]["made_elsewhere"]["2"]
    assert stage(tmp_path, 5, "--force") == 0
    assert report.main([str(out(tmp_path)), SYSTEM]) == 0
    # the fingerprints made elsewhere change: stage 4 is out of date, naming them
    fingerprints = out(tmp_path, f"{SYSTEM}_fingerprint_avg_emb.csv")
    fingerprints.write_text(fingerprints.read_text().replace(",0.", ",1.", 1))
    err = error_of(tmp_path, capsys, 5)
    assert "stage 4 (cosine_sim.py) is out of date" in err and f"made_elsewhere.2.{SYSTEM}_fingerprint_avg_emb.csv" in err
    assert report.main([str(out(tmp_path)), SYSTEM]) == 2
    assert "which it read as made elsewhere, changed after it ran" in capsys.readouterr().err
    # stage 2 from stage 1's matrices made elsewhere; then stage 4's reading of stage 2 is stale
    with caplog.at_level("WARNING"):
        assert stage(tmp_path, 2) == 0
    assert "no record of stage 1 (fingerprint_embedding_extraction.py)" in caplog.text
    err = error_of(tmp_path, capsys, 5)
    assert "stage 2 ran after it (it had read stage 2's files as made elsewhere)" in err
