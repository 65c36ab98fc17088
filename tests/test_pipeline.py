"""End to end: the five stage scripts run as a user runs them, on a generated corpus.

Every output is checked against values recomputed here from the stored embeddings and the
protocol files, not against numbers written down in advance.
"""
import hashlib
from dataclasses import dataclass
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from corpus import KNOWN, make_corpus
from sourcetrace.metrics import LABELS, compute_eer, scenario_masks

from sourcetrace.registry import STAGES as REGISTRY

STAGES = [REGISTRY[n].script for n in range(1, 6)]


pytestmark = pytest.mark.slow  # every test here runs the stage scripts as subprocesses


def run(script, cwd, *args):
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, capture_output=True, text=True)


def tree_digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def read_protocol(path):
    lines = path.read_text().split("\n")
    header = lines[0].split()
    return header, [line.split() for line in lines[1:] if line.strip()]


SYSTEMS = {  # config file, checkpoint (None: the seeded ResNet-34 weights), embedding size
    "AASIST_CM": ("AASIST.conf", REPO / "models" / "AASIST_CM.pth", 160),
    "ResNet-34_STOPA": ("ResNet-34.conf", None, 256),
}


@pytest.fixture(scope="module", params=list(SYSTEMS))
def pipeline(request, tmp_path_factory):
    system = request.param
    config_name, checkpoint, dim = SYSTEMS[system]
    checkpoint = checkpoint or request.getfixturevalue("resnet34_checkpoint")
    root = tmp_path_factory.mktemp("e2e")
    corpus = make_corpus(root, enroll_per_attack=4, trials_per_attack=3, sizes=(1, 3), min_s=0.3, max_s=1.0)
    config = json.loads((REPO / "config" / config_name).read_text())
    config.update(model_path=str(checkpoint), num_workers=1, batch_size=4)
    (root / "cm.conf").write_text(json.dumps(config))
    before = {d: tree_digest(d) for d in (corpus.enroll_dir, corpus.trial_dir)}
    args = ["--config", "cm.conf", "--set", "database_path=db", "--set", "output_dir=out",
            "--set", "known_attacks=" + json.dumps(KNOWN[:2]), "--device", "cpu"]
    logs = []
    for script in STAGES:
        done = run(script, root, *args)
        assert done.returncode == 0, f"{script} failed:\n{done.stderr}"
        logs.append(done.stderr)
    return System(system, dim, corpus, root / "out", before, done.stdout, args, logs)


@dataclass
class System:
    name: str
    dim: int
    corpus: object
    out: object
    before: dict
    stdout: str
    args: list
    logs: list

    def path(self, suffix):
        return self.out / f"{self.name}{suffix}"


def test_stage1_one_matrix_per_fingerprint_in_protocol_order(pipeline):
    for fp in pipeline.corpus.fingerprints:
        emb = np.load(pipeline.path("_embeddings") / f"{fp}.npy")
        ids = (pipeline.path("_embeddings") / f"{fp}.ids.tsv").read_text().split("\n")[1:-1]
        _, rows = read_protocol(pipeline.corpus.enroll_dir / f"{fp}.txt")
        assert emb.dtype == np.float32 and emb.shape == (len(rows), pipeline.dim)
        assert ids == [f"{r[3]}\t{r[1]}" for r in rows]
    # each distinct enrollment utterance is extracted once: 3 known attacks x 4 utterances
    assert "15 enrollment protocol(s), 36 rows, 12 utterance(s) to extract" in pipeline.logs[0]
    # an utterance shared by fingerprints has the same embedding in each
    a = np.load(pipeline.path("_embeddings") / "AA01-co-3.npy")
    b = np.load(pipeline.path("_embeddings") / "AA01-nc-all.npy")
    assert np.array_equal(a, b[:3])


def test_stage2_fingerprint_is_the_mean_of_its_embeddings(pipeline):
    lines = pipeline.path("_fingerprint_avg_emb.csv").read_text().split("\n")
    assert lines[0] == "file," + ",".join(str(i) for i in range(pipeline.dim))
    rows = {line.split(",")[0]: np.array(line.split(",")[1:], dtype=np.float64) for line in lines[1:-1]}
    assert sorted(rows) == sorted(pipeline.corpus.fingerprints)
    for fp, values in rows.items():
        emb = np.load(pipeline.path("_embeddings") / f"{fp}.npy").astype(np.float64)
        np.testing.assert_allclose(values, emb.mean(axis=0), rtol=1e-6, atol=1e-7)


def test_stage3_every_distinct_trial_utterance_once(pipeline):
    ids = pipeline.path("_protocol_trials.ids.tsv").read_text().split("\n")[1:-1]
    expected = set()
    for path in pipeline.corpus.trial_dir.iterdir():
        _, rows = read_protocol(path)
        expected |= {f"{r[4]}\t{r[1]}" for r in rows}
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert np.load(pipeline.path("_protocol_trials.npy")).shape == (len(ids), pipeline.dim)


def load_evaluation(pipeline):
    lines = pipeline.path("_evaluation.csv").read_text().split("\n")
    return lines[0].split(","), [line.split(",") for line in lines[1:-1]]


def test_stage4_scores_are_cosines_joined_by_key(pipeline):
    corpus = pipeline.corpus
    header, rows = load_evaluation(pipeline)
    trial_header, _ = read_protocol(next(corpus.trial_dir.iterdir()))
    assert header == trial_header + ["CosScore"]
    fps = {line.split(",")[0]: np.array(line.split(",")[1:], np.float64) for line in
           pipeline.path("_fingerprint_avg_emb.csv").read_text().split("\n")[1:-1]}
    emb = np.load(pipeline.path("_protocol_trials.npy")).astype(np.float64)
    ids = pipeline.path("_protocol_trials.ids.tsv").read_text().split("\n")[1:-1]
    index = {key: i for i, key in enumerate(ids)}
    # exactly the rows of the known attacks' trial files, columns as read
    expected = []
    for fp in sorted(corpus.fingerprints):
        if fp.split("-")[0] in KNOWN[:2]:
            expected += read_protocol(corpus.trial_dir / f"{fp}_trials.txt")[1]
    assert [r[:-1] for r in rows] == expected
    for row in rows:
        f, t = fps[row[0]], emb[index[f"{row[4]}\t{row[1]}"]]
        assert float(row[-1]) == pytest.approx(f @ t / np.linalg.norm(f) / np.linalg.norm(t), abs=1e-6)


def test_stage5_pooled_eers_recomputed_from_scores(pipeline):
    header, rows = load_evaluation(pipeline)
    col = {name: header.index(name) for name in header}
    scores = np.array([float(r[-1]) for r in rows])
    attacks = np.array([r[col["ATK"]] for r in rows])
    labels = {name: np.array([r[col[c]] == "True" for r in rows]) for name, c in LABELS.items()}
    masks = scenario_masks(np.isin(attacks, KNOWN[:2]), labels, "reference")
    for scenario, filename in (("known", "pooled_eer_kn.csv"), ("unknown", "pooled_eer_ukn.csv")):
        expected = ",EER\n"
        for name, y in labels.items():
            m = masks[scenario][name]
            eer = compute_eer(scores[m & y], scores[m & ~y])[0]
            expected += f"{name},{round(eer * 100, 2)!r}\n"
        assert (pipeline.path("_EERs_pooled") / filename).read_text() == expected
    assert "unknown scenario filter: reference" in pipeline.stdout


def test_protocol_files_are_never_modified(pipeline):
    corpus = pipeline.corpus
    assert {d: tree_digest(d) for d in (corpus.enroll_dir, corpus.trial_dir)} == pipeline.before


def test_per_label_unknown_filter_rerun_of_stage5(pipeline):
    done = run("compute_eer_pooled.py", pipeline.corpus.root, *pipeline.args, "--set", "unknown_filter=per_label")
    assert done.returncode == 0, done.stderr
    details = json.loads((pipeline.path("_EERs_pooled") / "pooled_eer_details.json").read_text())
    assert details["unknown_filter"] == "per_label"
    header, rows = load_evaluation(pipeline)
    col = {name: header.index(name) for name in header}
    known = np.isin([r[col["ATK"]] for r in rows], KNOWN[:2])
    y = np.array([r[col["IsTargetVocoderModel"]] == "True" for r in rows])
    m = ~known | y
    scores = np.array([float(r[-1]) for r in rows])
    assert details["unknown"]["VocoderModel"]["eer"] == compute_eer(scores[m & y], scores[m & ~y])[0]


def test_expected_failures_are_one_line_errors(pipeline):
    corpus = pipeline.corpus
    done = run("cosine_sim.py", corpus.root, "--set", "output_dir=elsewhere",
               "--set", "model_path=" + str(REPO / "models" / "AASIST_CM.pth"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "stage 1 (fingerprint_embedding_extraction.py) has not run for AASIST_CM in" in done.stderr
    done = run("fingerprint_embedding_extraction.py", corpus.root, "--set", "database_path=nowhere",
               "--set", "model_path=" + str(REPO / "models" / "AASIST_CM.pth"), "--device", "cpu")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "audio file(s) not found" in done.stderr and f"AA01-co-1.txt:2: {corpus.root}/nowhere/wav/AA01/dev/AA01_D_0000.wav" in done.stderr
    done = run("cosine_sim.py", corpus.root, "--config", "missing.conf")
    assert done.returncode == 2 and "missing.conf: config file not found" in done.stderr


@pytest.mark.parametrize("script", STAGES)
def test_the_extraction_stages_say_where_the_missing_resnet_checkpoint_goes(script, tmp_path):
    done = run(script, REPO, "--config", "config/ResNet-34.conf", "--set", f"output_dir={tmp_path}",
               "--set", f"model_path={tmp_path / 'ResNet-34.pth'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    if script in (STAGES[0], STAGES[2]):  # the stages that read the checkpoint
        assert "ResNet-34.pth: checkpoint of ResNet-34_STOPA not found" in done.stderr
        assert "not public, see README.md" in done.stderr
    else:  # the others only need their upstream outputs
        assert "has not run for ResNet-34_STOPA" in done.stderr and "checkpoint" not in done.stderr
