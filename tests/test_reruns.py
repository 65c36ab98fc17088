"""Re-runs never give a silently wrong result: stale upstreams, replaced inputs, bad input,
failed writes, kills, locks and permissions; one behaviour per test.

Stages run through `cli.main` (exactly what each script's one line calls) or, where the
behaviour is about processes (kills, the umask, the exit status and stderr of a failed
script), as subprocesses; those are marked `slow`.
"""
import errno
import fcntl
import json
import os
import shutil
import stat

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO
from stagerun import completed, error_of, make, run_all, script, stage

OUT = "out"
CM, STOPA = REPO / "models" / "AASIST_CM.pth", REPO / "models" / "AASIST_STOPA.pth"


def out(tmp_path, name=""):
    return tmp_path / OUT / name


def snapshot(tmp_path):
    """Bytes of every output and record (not locks, not hidden folders)."""
    root = out(tmp_path)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def set_config(tmp_path, **values):
    path = tmp_path / "sys.conf"
    config = json.loads(path.read_text())
    config.update(values)
    path.write_text(json.dumps(config))



@pytest.mark.slow
def test_a_failed_extraction_keeps_the_old_outputs_and_later_stages_refuse_to_mix_two_models(tmp_path, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)  # the five stages run with AASIST_CM
    before = snapshot(tmp_path)
    set_config(tmp_path, model_path=str(STOPA))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"broken")
    failed = script(tmp_path, 1, "--set", f"model_path={bad}")
    assert failed.returncode == 2 and "not a readable PyTorch checkpoint" in failed.stderr
    assert snapshot(tmp_path) == before  # outputs and records of the old model, intact
    for n in (2, 4, 5):
        done = script(tmp_path, n)
        assert done.returncode == 2, done.stdout
        assert "stage 1 (fingerprint_embedding_extraction.py) is out of date" in done.stderr
        assert "checkpoint_sha256" in done.stderr and "Traceback" not in done.stderr
    assert script(tmp_path, 3).returncode == 0  # the new model, on its own outputs
    assert snapshot(tmp_path)["AASIST_CM_EERs_pooled/pooled_eer_kn.csv"] == before["AASIST_CM_EERs_pooled/pooled_eer_kn.csv"]



def test_out_of_date_propagates_through_every_later_stage(tmp_path, capsys, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    new = ["--set", f"model_path={STOPA}"]
    for n in (1, 3):  # stages 1 and 3 with the new model, not 2
        assert stage(tmp_path, n, *new) == 0
    err = error_of(tmp_path, capsys, 4, *new)
    assert "stage 2 (create_fingerprint_avg_emb_csv.py) is out of date" in err and "stage 1 ran again after it" in err
    assert stage(tmp_path, 2, *new) == 0
    capsys.readouterr()
    # stages 1-3 current, stage 4 not re-run: stage 5 must not call itself up to date
    err = error_of(tmp_path, capsys, 5, *new)
    assert "stage 4 (cosine_sim.py) is out of date" in err
    assert stage(tmp_path, 4, *new) == 0 and stage(tmp_path, 5, *new) == 0
    assert "up to date" not in capsys.readouterr().out



@pytest.mark.slow
def test_a_misspelt_key_in_the_config_file_stops_the_stage_naming_the_closest_key(tmp_path):
    make(tmp_path)
    config = json.loads((tmp_path / "sys.conf").read_text())
    config["known_attack"] = config.pop("known_attacks")
    (tmp_path / "sys.conf").write_text(json.dumps(config, indent=1))
    done = script(tmp_path, 5)
    assert done.returncode == 2
    assert "unknown key 'known_attack' (did you mean 'known_attacks'?)" in done.stderr


@pytest.mark.slow
def test_a_misspelt_key_in_set_stops_the_stage_naming_the_closest_key(tmp_path):
    make(tmp_path)
    done = script(tmp_path, 1, "--set", "batchsize=4")
    assert done.returncode == 2
    assert done.stderr == "error: --set batchsize=4: unknown key 'batchsize' (did you mean 'batch_size'?)\n"


def test_a_trial_row_of_another_fingerprint_is_refused_before_extraction(tmp_path, capsys):
    corpus = make(tmp_path)
    trial = corpus.trial_dir / "AA03-co-1_trials.txt"
    lines = trial.read_text().split("\n")
    lines[3] = lines[3].replace("AA03-co-1 ", "AA01-co-1 ", 1)
    trial.write_text("\n".join(lines))
    err = error_of(tmp_path, capsys, 3)
    assert f"{trial}:4: AbstractModel is 'AA01-co-1', but this is the trial file of fingerprint 'AA03-co-1'" in err
    assert not out(tmp_path, ".AASIST_CM_work").exists()  # refused before any extraction



def test_a_replaced_audio_file_is_extracted_again_and_outdates_later_stages(tmp_path, capsys):
    corpus = make(tmp_path)
    run_all(tmp_path, capsys, upto=2)
    first = np.load(out(tmp_path, "AASIST_CM_embeddings/AA01-co-1.npy"))
    audio = corpus.database / "wav/AA01/dev/AA01_D_0000.wav"
    wave, rate = sf.read(audio, dtype="float32")
    sf.write(audio, wave[::-1].copy(), rate)
    assert stage(tmp_path, 1) == 0
    assert "up to date" not in capsys.readouterr().out
    assert not np.allclose(np.load(out(tmp_path, "AASIST_CM_embeddings/AA01-co-1.npy")), first)
    err = error_of(tmp_path, capsys, 4)
    assert "stage 2 (create_fingerprint_avg_emb_csv.py) is out of date" in err


def test_a_repaired_audio_file_clears_its_skip(tmp_path, capsys):
    corpus = make(tmp_path)
    audio = corpus.database / "wav/AA01/dev/AA01_D_0000.wav"
    good = audio.read_bytes()
    audio.write_text("not audio")
    assert stage(tmp_path, 1, "--set", "on_error=skip") == 0
    assert "AA01_D_0000.wav" in out(tmp_path, "AASIST_CM_skipped.csv").read_text()
    audio.write_bytes(good)
    assert stage(tmp_path, 1, "--set", "on_error=skip") == 0
    assert not out(tmp_path, "AASIST_CM_skipped.csv").exists()
    ids = out(tmp_path, "AASIST_CM_embeddings/AA01-co-1.ids.tsv").read_text()
    assert "AA01_D_0000.wav" in ids



def test_a_fingerprint_whose_every_row_is_skipped_is_left_out_and_recorded(tmp_path, capsys):
    corpus = make(tmp_path)
    (corpus.database / "wav/AA05/dev/AA05_D_0000.wav").write_text("not audio")  # AA05-*-1's only row
    run_all(tmp_path, capsys, "--set", "on_error=skip")
    assert np.load(out(tmp_path, "AASIST_CM_embeddings/AA05-co-1.npy")).shape == (0, 160)
    manifest = out(tmp_path, "AASIST_CM_skipped.csv").read_text().splitlines()
    assert f"2,{corpus.enroll_dir / 'AA05-co-1.txt'},,AA05,AA05-co-1,no enrollment embedding left " \
           "(every row skipped in stage 1)" in manifest
    evaluation = out(tmp_path, "AASIST_CM_evaluation.csv").read_text()
    assert "AA05-co-1," not in evaluation and "AA05-co-2," in evaluation
    assert sum(line.startswith("2,") for line in manifest) == 2  # AA05-co-1 and AA05-nc-1
    assert json.loads(out(tmp_path, "AASIST_CM_records/stage2.json").read_text())["skipped"]["count"] == 2


def test_an_unusable_enrollment_file_without_skip_is_an_error_naming_the_protocol_line(tmp_path, capsys):
    corpus = make(tmp_path)
    (corpus.database / "wav/AA05/dev/AA05_D_0000.wav").write_text("not audio")
    err = error_of(tmp_path, capsys, 1)
    assert f"{corpus.enroll_dir / 'AA05-co-1.txt'}:2:" in err


def test_extraction_chunks_survive_a_failed_output_write_and_are_reused(tmp_path, capsys, caplog):
    make(tmp_path)
    blocker = out(tmp_path, ".AASIST_CM_staging")
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the staging folder goes")  # writing the outputs fails
    err = error_of(tmp_path, capsys, 3, "--set", "chunk_size=4")
    assert "Traceback" not in err
    chunks = list(out(tmp_path, ".AASIST_CM_work/stage3").rglob("chunk_*.npz"))
    assert len(chunks) >= 2
    blocker.unlink()
    with caplog.at_level("INFO"):
        assert stage(tmp_path, 3, "--set", "chunk_size=4") == 0
    assert "10 utterance(s) already embedded" in caplog.text
    assert sorted(out(tmp_path, ".AASIST_CM_work/stage3").rglob("chunk_*.npz")) == sorted(chunks)  # kept: the cache
    assert out(tmp_path, "AASIST_CM_protocol_trials.npy").is_file()



def test_an_unusable_output_folder_is_a_one_line_error(tmp_path, capsys):
    make(tmp_path)
    (tmp_path / "afile").write_text("x")
    err = error_of(tmp_path, capsys, 2, "--set", f"output_dir={tmp_path / 'afile'}")
    assert f"{tmp_path / 'afile'}: output_dir is a file, not a folder" in err
    err = error_of(tmp_path, capsys, 2, "--set", "output_dir=/proc/sourcetrace-out")
    assert "/proc/sourcetrace-out" in err


def test_disk_full_is_one_line_saying_the_run_resumes(tmp_path, capsys, monkeypatch):
    make(tmp_path)
    import sourcetrace.store.embeddings as embeddings

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out(tmp_path, "x.npy")))
    monkeypatch.setattr(embeddings.np, "save", full)
    err = error_of(tmp_path, capsys, 3)
    assert "disk full" in err and "resumes" in err and "previous outputs are unchanged" in err
    monkeypatch.undo()
    assert stage(tmp_path, 3) == 0


def test_commas_and_quotes_in_file_names_survive_the_evaluation_csv(tmp_path, capsys, caplog):
    corpus = make(tmp_path)
    old, new = "AA02_E_0001.wav", 'AA02_E_0001,"x".wav'
    (corpus.database / "wav/AA02/eval" / old).rename(corpus.database / "wav/AA02/eval" / new)
    for trial in corpus.trial_dir.iterdir():
        trial.write_text(trial.read_text().replace(old, new))
    run_all(tmp_path, capsys)
    import csv
    with open(out(tmp_path, "AASIST_CM_evaluation.csv"), newline="") as handle:
        rows = list(csv.reader(handle))
    assert any(row[1] == new for row in rows[1:]) and all(len(row) == len(rows[0]) for row in rows)
    kn = out(tmp_path, "AASIST_CM_EERs_pooled/pooled_eer_ukn.csv").read_text()
    # the CSV reader reads it back to the same EERs as the Arrow copy
    external = tmp_path / "elsewhere"
    external.mkdir()
    shutil.copy(out(tmp_path, "AASIST_CM_evaluation.csv"), external)
    with caplog.at_level("INFO"):
        assert stage(tmp_path, 5, "--set", f"output_dir={external}") == 0
    assert (external / "AASIST_CM_EERs_pooled/pooled_eer_ukn.csv").read_text() == kn
    assert "as made elsewhere" in caplog.text


@pytest.mark.slow
def test_a_bad_model_config_value_is_a_one_line_error(tmp_path):
    make(tmp_path)
    done = script(tmp_path, 1, "--set", "model_config.nb_samp=abc")
    assert done.returncode == 2
    assert done.stderr.strip().endswith("model_config: 'nb_samp' is 'abc'; expected a positive integer (samples of "
                                        "the fixed input)")



@pytest.mark.slow
def test_a_stage_killed_before_its_commit_leaves_the_previous_outputs(tmp_path, capsys, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    before = snapshot(tmp_path)
    killed = script(tmp_path, 4, "--force", env={"SOURCETRACE_TEST_KILL_AT": "stage4-written"})
    assert killed.returncode == -9
    assert list(out(tmp_path).rglob(".AASIST_CM_staging/**/*.csv"))  # what the kill left
    assert snapshot(tmp_path) == before
    assert stage(tmp_path, 5) == 0 and "up to date" in capsys.readouterr().out
    assert stage(tmp_path, 4, "--force") == 0
    assert not out(tmp_path, ".AASIST_CM_staging").exists()
    assert not [p for p in out(tmp_path).rglob("*.part")]


@pytest.mark.slow
def test_a_stage_killed_after_deciding_its_commit_is_finished_by_the_next_run(tmp_path, capsys, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    other = ["--set", "unknown_filter=per_label"]
    before = snapshot(tmp_path)
    killed = script(tmp_path, 5, *other, env={"SOURCETRACE_TEST_KILL_AT": "commit"})
    assert killed.returncode == -9
    assert snapshot(tmp_path) == before  # nothing moved yet
    assert stage(tmp_path, 5, *other) == 0
    assert "up to date" in capsys.readouterr().out  # the decided commit was finished, not redone
    record = json.loads(out(tmp_path, "AASIST_CM_records/stage5.json").read_text())
    assert record["identity"]["unknown_filter"] == "per_label"
    details = json.loads(out(tmp_path, "AASIST_CM_EERs_pooled/pooled_eer_details.json").read_text())
    assert details["unknown_filter"] == "per_label"



@pytest.mark.slow
@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664)])
def test_outputs_honour_the_umask(tmp_path, umask, mode):
    make(tmp_path)
    for n in (1, 2):
        assert script(tmp_path, n, preexec_fn=lambda: os.umask(umask)).returncode == 0
    files = [out(tmp_path, "AASIST_CM_fingerprint_avg_emb.csv"), out(tmp_path, "AASIST_CM_records/stage2.json"),
             out(tmp_path, "AASIST_CM_embeddings/AA01-co-1.npy")]
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [mode] * 3



def test_a_utf8_bom_at_the_start_of_a_protocol_is_ignored(tmp_path, capsys):
    corpus = make(tmp_path)
    first = corpus.trial_dir / "AA01-co-1_trials.txt"
    first.write_bytes(b"\xef\xbb\xbf" + first.read_bytes())  # a BOM: same header as the others
    enroll = corpus.enroll_dir / "AA01-co-1.txt"
    enroll.write_bytes(b"\xef\xbb\xbf" + enroll.read_bytes())
    run_all(tmp_path, capsys)
    evaluation = out(tmp_path, "AASIST_CM_evaluation.csv").read_text()
    assert "\ufeff" not in evaluation and "\nAA01-co-1," in evaluation
    assert np.load(out(tmp_path, "AASIST_CM_embeddings/AA01-co-1.npy")).shape == (1, 160)


def test_a_misspelt_boolean_label_stops_stage3_before_extraction(tmp_path, capsys):
    corpus = make(tmp_path)
    second = corpus.trial_dir / "AA01-co-2_trials.txt"
    second.write_text(second.read_text().replace(" True", " Ture", 1))
    err = error_of(tmp_path, capsys, 3)
    assert f"{second}:" in err and "'Ture'" in err and not out(tmp_path, ".AASIST_CM_work").exists()


def test_the_same_checkpoint_named_another_way_is_no_change(tmp_path, capsys, monkeypatch, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    monkeypatch.chdir(REPO)
    assert stage(tmp_path, 1, "--set", "model_path=./models/../models/AASIST_CM.pth") == 0
    assert "up to date" in capsys.readouterr().out


def test_stages_that_do_not_read_the_checkpoint_run_without_it(tmp_path, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    for n in (2, 4, 5):
        assert stage(tmp_path, n, "--set", f"model_path={tmp_path / 'gone.pth'}", "--force") == 0


def test_a_second_run_of_a_stage_refuses_at_once_naming_the_first(tmp_path, capsys, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    lock = out(tmp_path, "AASIST_CM_records/.stage5.lock")
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("pid 4242 on testhost, started now\n")
        handle.flush()
        err = error_of(tmp_path, capsys, 5, "--force")
    assert "stage 5 (compute_eer_pooled.py) is already running" in err and "pid 4242" in err


def test_undeclared_config_key_fails_the_stage_at_once():
    from sourcetrace.registry import STAGES
    from sourcetrace.runner import StageConfig
    view = StageConfig({"system": "S", "output_dir": ".", "model_path": "x"}, STAGES[2])
    assert view["system"] == "S"
    with pytest.raises(KeyError, match="does not declare"):
        view["model_path"]


def test_every_script_is_its_registry_entry():
    from sourcetrace.registry import STAGES
    for number, declared in STAGES.items():
        text = (REPO / declared.script).read_text()
        assert f"sys.exit(main({number}))" in text
