"""SSL-AASIST end to end: stage 0 trains a tiny network on Mini-STOPA's training attacks with
Chhibber et al.'s recipe (AAM softmax, mixup, a frozen SSL model first), then stages 1 to 5
run with its checkpoint on a Mini-STOPA subset, every script in its own process."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import models
from conftest import REPO
from corpus import MINI_STOPA, mini_stopa_subset, pooled_reference_eers
from sourcetrace.registry import STAGES
from test_ssl_aasist import TINY

KNOWN = ["AA01", "AA03", "AA05"]
LABELS = {"ATK": "IsTargetATK", "AcousticModel": "IsTargetAcousticModel", "VocoderModel": "IsTargetVocoderModel"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    enroll, trials = mini_stopa_subset(root, KNOWN)
    out = root / "out"
    # the first 5 training utterances of each of the 6 training attacks: a run of seconds
    rows = (MINI_STOPA / "protocols_train" / "train.txt").read_text().splitlines()
    train = root / "train.txt"
    train.write_text("".join(f"{r}\n" for r in rows if int(r.split()[1][-4:]) <= 5))
    config = {"system": "SSL_tiny", "model_path": str(out / "SSL_tiny_training" / "best.pth"),
              # 2-s windows: Mini-STOPA's 1.6-3.4 s utterances are embedded whole or in two windows
              "model_config": {**TINY, "head": "cosine", "window_seconds": 2},
              "database_path": str(MINI_STOPA), "enroll_protocol_dir": str(enroll), "trial_protocol_dir": str(trials),
              "train_protocol": str(train),
              "train_audio": "{database_path}/wav/{attack}/train/{file}.flac", "known_attacks": KNOWN,
              "train": {"recipe": "chhibber2025", "epochs": 3, "batch_size": 8, "crop_samples": 16000, "num_workers": 0,
                        "lr": 1e-3, "aam_warmup_epochs": 2, "mixup_start_epoch": 2, "ssl_frozen_epochs": 1},
              "output_dir": str(out), "device": "cpu", "num_workers": 1, "batch_size": 4}
    (root / "ssl.conf").write_text(json.dumps(config))
    logs = {}
    for number in range(6):
        done = subprocess.run([sys.executable, str(REPO / STAGES[number].script), "--config", "ssl.conf"], cwd=root,
                              capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900)
        assert done.returncode == 0, f"{STAGES[number].script}:\n{done.stderr[-3000:]}"
        logs[number] = done.stdout
    return root, out, config, logs


@pytest.mark.slow
def test_stage0_trains_with_the_recipe(run):
    _, out, config, logs = run
    assert "SSL_tiny: 6 classes (AA11, AA12, AA13, AA14, AA15, AA16); 24 training and 6 dev utterances" in logs[0]
    with open(out / "SSL_tiny_training" / "history.csv") as handle:
        history = list(csv.DictReader(handle))
    assert [r["epoch"] for r in history] == ["1", "2", "3"]
    assert all(np.isfinite(float(r["train_loss"])) for r in history)
    model = models.load_model(config["model_config"], out / "SSL_tiny_training" / "best.pth")  # strict
    saved = torch.load(out / "SSL_tiny_training" / "best.pth", weights_only=True)
    assert saved["classes"] == ["AA11", "AA12", "AA13", "AA14", "AA15", "AA16"] and set(saved["model"]) == set(model.state_dict())


@pytest.mark.slow
def test_stages_1_to_5_score_the_subset(run):
    _, out, _, logs = run
    emb = np.load(out / "SSL_tiny_embeddings" / "AA01-nc-5.npy")
    assert emb.shape == (5, 40) and np.isfinite(emb).all()
    pooled, n_rows = pooled_reference_eers(out / "SSL_tiny_evaluation.csv", KNOWN, LABELS)
    assert n_rows == 6 * 30  # 6 fingerprints x (10 evaluation attacks x 3 utterances)
    for scenario, filename in (("known", "pooled_eer_kn.csv"), ("unknown", "pooled_eer_ukn.csv")):
        lines = (out / "SSL_tiny_EERs_pooled" / filename).read_text().splitlines()
        written = {line.split(",")[0]: float(line.split(",")[1]) for line in lines[1:]}
        assert [written[name] for name in LABELS] == pooled[scenario], scenario
    assert "known" in logs[5] and "unknown" in logs[5]


@pytest.mark.slow
def test_two_processes_with_a_frozen_ssl_epoch(run, tmp_path):
    """Data-parallel stage 0 (gloo): the SSL model gets no gradients in its frozen epoch, which
    DistributedDataParallel must be told to expect."""
    _, _, config, _ = run
    config = {**config, "output_dir": str(tmp_path / "out"), "train": {**config["train"], "epochs": 2,
                                                                       "mixup_start_epoch": 1}}
    (tmp_path / "ssl.conf").write_text(json.dumps(config))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "train_model.py"), "--config", "ssl.conf"], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("epoch 2/2: train loss") == 1
    record = json.loads((tmp_path / "out" / "SSL_tiny_records" / "stage0.json").read_text())
    assert record["world_size"] == 2


@pytest.mark.slow
def test_killed_training_resumes_bitwise(run, tmp_path):
    """Mixup draws, the frozen epoch and dropout depend on (seed, epoch, step) alone: a run
    killed in its second epoch and started again ends with the uninterrupted run's bytes."""
    _, out, config, _ = run
    config = {**config, "train": {**config["train"], "epochs": 2, "mixup_start_epoch": 1}}
    results = []
    for name, kill in (("whole", None), ("killed", "train-step-5")):  # 27 utterances, batches of 8: 3 steps an epoch
        folder = tmp_path / name
        folder.mkdir()
        (folder / "ssl.conf").write_text(json.dumps({**config, "output_dir": str(folder / "out")}))
        command = [sys.executable, str(REPO / "train_model.py"), "--config", "ssl.conf"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        if kill:
            first = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600,
                                   env={**env, "SOURCETRACE_TEST_KILL_AT": kill})
            assert first.returncode == -9, first.stderr[-2000:]
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        assert ("resuming SSL_tiny after epoch 1 of 2" in done.stdout) == bool(kill)
        results.append(folder / "out" / "SSL_tiny_training")
    whole, killed = results
    assert (whole / "best.pth").read_bytes() == (killed / "best.pth").read_bytes()
    # the final weights (best.pth may be epoch 1's) and every epoch's losses and accuracies
    a, b = (torch.load(folder / "last.pt", weights_only=True)["model"] for folder in results)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [line.split(",")[:6] for line in (whole / "history.csv").read_text().splitlines()] == \
        [line.split(",")[:6] for line in (killed / "history.csv").read_text().splitlines()]
