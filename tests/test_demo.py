"""The demo configs run the five stages on (a subset of) the bundled Mini-STOPA corpus."""
import json
import subprocess
import sys

import pytest

from conftest import REPO
from corpus import mini_stopa_subset, pooled_reference_eers
from sourcetrace.registry import STAGES as REGISTRY
from sourcetrace.report import table

CORPUS = REPO / "mini_stopa" / "corpus"
STAGES = [REGISTRY[n].script for n in range(1, 6)]
LABELS = {"ATK": "IsTargetATK", "AcousticModel": "IsTargetAcousticModel", "VocoderModel": "IsTargetVocoderModel"}


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
    enroll, trials = mini_stopa_subset(root, KNOWN)
    args = ["--config", str(REPO / "config" / "demo.conf"), "--set", f"database_path={CORPUS}",
            "--set", f"enroll_protocol_dir={enroll}", "--set", f"trial_protocol_dir={trials}",
            "--set", f"output_dir={root / 'out'}", "--set", "known_attacks=" + json.dumps(KNOWN),
            "--set", f"model_path={REPO / 'models' / 'AASIST_CM.pth'}", "--device", "cpu"]
    for script in STAGES:
        done = subprocess.run([sys.executable, str(REPO / script), *args], cwd=root, capture_output=True, text=True)
        assert done.returncode == 0, f"{script}:\n{done.stderr}"
    return root / "out"


@pytest.mark.slow
def test_demo_subset_end_to_end(subset_run):
    pooled, n_rows = pooled_reference_eers(subset_run / "AASIST_CM_evaluation.csv", KNOWN, LABELS)
    assert n_rows == 6 * 30  # 6 fingerprints x (10 evaluation attacks x 3 utterances)
    expected = pooled["known"] + pooled["unknown"]
    report = table(subset_run, ["AASIST_CM"])
    cells = report.splitlines()[1].split()[1:]
    assert [float(c) for c in cells] == expected
