"""The demo configs run the five stages on (a subset of) the bundled Mini-STOPA corpus."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from sourcetrace.registry import STAGES as REGISTRY
from sourcetrace.report import table

CORPUS = REPO / "mini_stopa" / "corpus"
STAGES = [REGISTRY[n].script for n in range(1, 6)]
LABELS = {"ATK": "IsTargetATK", "AcousticModel": "IsTargetAcousticModel", "VocoderModel": "IsTargetVocoderModel"}


def reference_eer(target, nontarget):
    """The ASVspoof / AASIST `compute_eer`, written out here independently of the library."""
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
KNOWN = ["AA01", "AA03", "AA05"]


def test_demo_configs_point_at_the_mini_corpus():
    for name, system in (("demo.conf", "AASIST_CM"), ("demo_AASIST_STOPA.conf", "AASIST_STOPA")):
        cfg = json.loads((REPO / "config" / name).read_text())
        assert cfg["system"] == system and (REPO / cfg["database_path"]).resolve() == CORPUS
        assert (REPO / cfg["enroll_protocol_dir"]).is_dir() and (REPO / cfg["trial_protocol_dir"]).is_dir()


@pytest.fixture(scope="module")
def subset_run(tmp_path_factory):
    """Three known attacks, two fingerprints each, three trial utterances per attack."""
    root = tmp_path_factory.mktemp("demo")
    enroll, trials = root / "enroll", root / "trials"
    enroll.mkdir()
    trials.mkdir()
    for attack in KNOWN:
        for fp in (f"{attack}-co-1", f"{attack}-nc-5"):
            (enroll / f"{fp}.txt").write_text((CORPUS / "protocols_fingerprint_extraction" / f"{fp}.txt").read_text())
            lines = (CORPUS / "protocols_trials_extended" / f"{fp}_trials.txt").read_text().splitlines()
            seen: dict[str, int] = {}
            kept = [lines[0]]
            for line in lines[1:]:
                atk = line.split()[4]
                seen[atk] = seen.get(atk, 0) + 1
                if seen[atk] <= 3:
                    kept.append(line)
            (trials / f"{fp}_trials.txt").write_text("\n".join(kept) + "\n")
    args = ["--config", str(REPO / "config" / "demo.conf"), "--set", f"database_path={CORPUS}",
            "--set", f"enroll_protocol_dir={enroll}", "--set", f"trial_protocol_dir={trials}",
            "--set", f"output_dir={root / 'out'}", "--set", "known_attacks=" + json.dumps(KNOWN),
            "--set", f"model_path={REPO / 'models' / 'AASIST_CM.pth'}", "--device", "cpu"]
    for script in STAGES:
        done = subprocess.run([sys.executable, str(REPO / script), *args], cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, f"{script}:\n{done.stderr}"
    return root / "out"


def test_demo_subset_end_to_end(subset_run):
    import csv
    with open(subset_run / "AASIST_CM_evaluation.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 * 30  # 6 fingerprints x (10 evaluation attacks x 3 utterances)
    scores = np.array([float(r["CosScore"]) for r in rows])
    known = np.array([r["ATK"] in KNOWN for r in rows])
    labels = {name: np.array([r[c] == "True" for r in rows]) for name, c in LABELS.items()}
    expected = []
    for scenario in ("known", "unknown"):  # the published scripts' pooling, reference filter
        keep = known if scenario == "known" else ~known | labels["ATK"]
        for name in LABELS:
            y = labels[name][keep]
            expected.append(reference_eer(scores[keep][y], scores[keep][~y]))
    report = table(subset_run, ["AASIST_CM"])
    cells = report.splitlines()[1].split()[1:]
    assert [float(c) for c in cells] == expected
