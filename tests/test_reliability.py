"""Bad input, skip manifests, atomic writes and safe re-runs: one test per item of the
re-run issue, running the stage scripts' entry point (`cli.main`, what each script calls)
on generated corpora; the scenarios that involve killing or locking run real subprocesses."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import REPO
from sourcetrace.scoring import similarity
from sourcetrace.store import atomic_path
from stagerun import SCRIPTS, completed, error_of, make, run_all, stage


# ------------------------------------------------------------------ bad audio


def test_every_missing_audio_file_is_listed_before_any_model_work(tmp_path, capsys):
    corpus = make(tmp_path)
    (corpus.database / "wav/AA01/dev/AA01_D_0001.wav").unlink()
    (corpus.database / "wav/AA03/dev/AA03_D_0002.wav").unlink()
    err = error_of(tmp_path, capsys, 1)
    assert "2 audio file(s) not found" in err
    assert f"{corpus.enroll_dir}/AA01-co-2.txt:3: {corpus.database}/wav/AA01/dev/AA01_D_0001.wav" in err
    assert f"{corpus.enroll_dir}/AA03-nc-all.txt:4: {corpus.database}/wav/AA03/dev/AA03_D_0002.wav" in err


def _corrupt(path, kind):
    if kind == "empty file":
        path.write_bytes(b"")
    elif kind == "zero samples":
        sf.write(path, np.zeros(0, np.float32), 16000)
    elif kind == "not audio":
        path.write_text("this is not audio\n")
    elif kind == "truncated wav":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "nan samples":
        wave = np.full(8000, 0.1, np.float32)
        wave[100] = np.nan
        sf.write(path, wave, 16000, subtype="FLOAT")
    elif kind == "too short":
        sf.write(path, np.full(2000, 0.1, np.float32), 16000)


@pytest.mark.parametrize("kind,message", [
    ("empty file", "not a readable audio file"), ("zero samples", "no samples"),
    ("not audio", "not a readable audio file"), ("truncated wav", "truncated WAV"),
    ("nan samples", "contains NaN or infinite samples"),
    ("too short", "too short for the model (2000 samples at 16 kHz; at least 2315 needed)"),
])
def test_unusable_audio_names_file_and_protocol_line(tmp_path, capsys, kind, message):
    corpus = make(tmp_path)
    bad = corpus.database / "wav/AA05/dev/AA05_D_0000.wav"
    _corrupt(bad, kind)
    err = error_of(tmp_path, capsys, 1)
    assert f"{corpus.enroll_dir}/AA05-co-1.txt:2: {bad}: {message}" in err
    assert not (tmp_path / "out" / "AASIST_CM_embeddings").exists()


def test_corrupt_flac_is_an_error(tmp_path):
    from sourcetrace.audio import AudioError, load_audio
    path = tmp_path / "x.flac"
    sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32), 16000)
    data = path.read_bytes()
    path.write_bytes(data[:200] + bytes(len(data) - 400) + data[-200:])
    with pytest.raises(AudioError, match="x.flac: not a readable audio file"):
        load_audio(path)


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_other_sample_rates_are_resampled_and_noted_once(tmp_path, capsys, caplog, rate):
    corpus = make(tmp_path, sample_rate=rate)
    with caplog.at_level("INFO"):
        assert stage(tmp_path, 1) == 0
    notes = [r.message for r in caplog.records if "resampling" in r.message]
    assert len(notes) == 1 and f"resampling {rate} Hz audio to 16000 Hz" in notes[0]
    emb = np.load(tmp_path / "out/AASIST_CM_embeddings/AA01-co-1.npy")
    import models
    import torchaudio.functional as AF
    model = models.load_model(json.loads((tmp_path / "sys.conf").read_text())["model_config"],
                              REPO / "models/AASIST_CM.pth")
    wave, _ = sf.read(corpus.database / "wav/AA01/dev/AA01_D_0000.wav", dtype="float32")
    with torch.inference_mode():
        direct, _ = model(AF.resample(torch.from_numpy(wave), rate, 16000)[None])
    np.testing.assert_allclose(emb[0], direct[0].numpy(), atol=1e-5)


def test_zero_norm_embedding_scores_zero_not_nan():
    fps = np.array([[1.0, 0.0], [0.0, 0.0]], np.float32)
    trials = np.array([[0.0, 0.0], [3.0, 4.0]], np.float32)
    assert similarity(fps, trials).tolist() == [[0.0, 0.0], [pytest.approx(0.6), 0.0]]


# ------------------------------------------------------------------ bad protocols and ids


def test_trial_row_without_enrollment_and_unknown_utterance(tmp_path, capsys):
    corpus = make(tmp_path)
    run_all(tmp_path, capsys, upto=3)
    source = (corpus.trial_dir / "AA03-co-1_trials.txt").read_text()
    orphan = corpus.trial_dir / "AA03-co-9_trials.txt"
    orphan.write_text(source.replace("AA03-co-1 ", "AA03-co-9 "))
    err = error_of(tmp_path, capsys, 4, "--allow-stale")
    assert f"{orphan}:2: fingerprint 'AA03-co-9' has no enrollment" in err
    orphan.unlink()
    trial = corpus.trial_dir / "AA03-co-1_trials.txt"
    lines = source.split("\n")
    lines[4] = lines[4].replace(".wav", "_x.wav", 1)
    trial.write_text("\n".join(lines))
    err = error_of(tmp_path, capsys, 4, "--allow-stale")
    assert f"{trial}:5: trial utterance" in err and "has no embedding; re-run stage 3" in err


def test_checkpoint_that_is_not_one(tmp_path, capsys):
    make(tmp_path)
    fake = tmp_path / "fake.pth"
    fake.write_text("not a checkpoint")
    err = error_of(tmp_path, capsys, 1, "--set", f"model_path={fake}")
    assert f"{fake}: not a readable PyTorch checkpoint" in err
    err = error_of(tmp_path, capsys, 1, "--set", "model_config.gat_dims=[64, 16]")
    assert "AASIST_CM.pth: does not match the AASIST model_config (shape mismatch" in err


# ------------------------------------------------------------------ on_error = skip


def test_skip_records_every_skip_and_downstream_excludes_rows(tmp_path, capsys, caplog):
    corpus = make(tmp_path)
    _corrupt(corpus.database / "wav/AA01/dev/AA01_D_0001.wav", "not audio")
    _corrupt(corpus.database / "wav/AA02/eval/AA02_E_0000.wav", "nan samples")
    with caplog.at_level("INFO"):
        run_all(tmp_path, capsys, "--set", "on_error=skip")
    out = tmp_path / "out"
    manifest = (out / "AASIST_CM_skipped.csv").read_text().splitlines()
    assert manifest[0] == "stage,protocol,line,attack,file,reason"
    enroll = [m for m in manifest[1:] if m.startswith("1,")]
    # AA01_D_0001 is row 2 of AA01-co-2 and AA01-nc-2 and of AA01-nc-all
    assert sorted(m.split(",")[1].rsplit("/", 1)[1] + ":" + m.split(",")[2] for m in enroll) == \
        ["AA01-co-2.txt:3", "AA01-nc-2.txt:3", "AA01-nc-all.txt:3"]
    trials = [m for m in manifest[1:] if m.startswith("3,")]
    assert len(trials) == 1 and "AA02_E_0000.wav" in trials[0] and "NaN" in trials[0]
    ids = (out / "AASIST_CM_embeddings/AA01-nc-all.ids.tsv").read_text().split("\n")[1:-1]
    assert ids == ["AA01\tAA01_D_0000.wav", "AA01\tAA01_D_0002.wav"]
    evaluation = (out / "AASIST_CM_evaluation.csv").read_text()
    assert "AA02_E_0000.wav" not in evaluation and "AA02_E_0001.wav" in evaluation
    # every trial file lists AA02_E_0000 once; all those rows are left out
    n_rows = sum("AA02_E_0000.wav" in p.read_text() for p in corpus.trial_dir.iterdir())
    assert f"{n_rows} trial row(s) left out" in caplog.text


# ------------------------------------------------------------------ nothing lost, nothing half-written


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "result.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["result.csv"]


# ------------------------------------------------------------------ re-running one stage


def test_unchanged_stage_is_up_to_date_and_force_recomputes(tmp_path, capsys, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    kn = tmp_path / "out/AASIST_CM_EERs_pooled/pooled_eer_kn.csv"
    before = kn.stat().st_mtime_ns
    for number in range(1, 6):
        assert stage(tmp_path, number) == 0
        assert f"stage {number} ({SCRIPTS[number]}) is up to date" in capsys.readouterr().out
    assert kn.stat().st_mtime_ns == before
    assert stage(tmp_path, 5, "--force") == 0
    assert "up to date" not in capsys.readouterr().out and kn.stat().st_mtime_ns != before


def test_stale_upstream_stops_with_the_differing_values(tmp_path, capsys, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    other = ["--set", f"model_path={REPO / 'models' / 'AASIST_STOPA.pth'}"]
    err = error_of(tmp_path, capsys, 2, *other)
    assert "stage 1 (fingerprint_embedding_extraction.py) is out of date" in err
    assert "checkpoint_sha256" in err and "--allow-stale" in err
    err = error_of(tmp_path, capsys, 5, *other)
    assert "stage 1 (fingerprint_embedding_extraction.py) is out of date" in err
    assert stage(tmp_path, 2, *other, "--allow-stale") == 0
    # re-running the stale stages with the new config clears it
    capsys.readouterr()
    for number in range(1, 6):
        assert stage(tmp_path, number, *other) == 0, capsys.readouterr().err


def test_changing_what_only_stage5_uses_reruns_only_stage5(tmp_path, capsys, tmp_path_factory):
    completed(tmp_path, tmp_path_factory)
    fewer = ["--set", 'known_attacks=["AA01","AA03"]']
    assert stage(tmp_path, 5, *fewer) == 0
    out = capsys.readouterr().out
    assert "up to date" not in out and "known" in out
    assert stage(tmp_path, 5, *fewer) == 0 and "up to date" in capsys.readouterr().out
    details = json.loads((tmp_path / "out/AASIST_CM_EERs_pooled/pooled_eer_details.json").read_text())
    assert details["known_attacks"] == ["AA01", "AA03"]
    # the known scenario now pools the two known attacks' fingerprints only
    evaluation = (tmp_path / "out/AASIST_CM_evaluation.csv").read_text().split("\n")[1:-1]
    n_rows = sum(1 for line in evaluation if line.split("-")[0] in ("AA01", "AA03") and line.split(",")[4] in ("AA01", "AA03"))
    assert details["known"]["ATK"]["n_target"] + details["known"]["ATK"]["n_nontarget"] == n_rows
    # a known attack without trial files is an error, not silently ignored
    err = error_of(tmp_path, capsys, 5, "--set", 'known_attacks=["AA01","AA99"]')
    assert "known_attacks names AA99, which has no trial file" in err
    # a superset of the scored attacks needs stage 4 again
    assert stage(tmp_path, 4, "--set", 'known_attacks=["AA01"]') == 0
    err = error_of(tmp_path, capsys, 5, *fewer)
    assert "stage 4 (cosine_sim.py) is out of date" in err and "known_attacks" in err
