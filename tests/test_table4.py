"""./reproduce_table4.sh on a subset of Mini-STOPA: the published procedure, end to end."""
import json
import os
import subprocess

import pytest

from conftest import REPO

CORPUS = REPO / "mini_stopa" / "corpus"
FINGERPRINTS = ("AA01-co-1", "AA01-nc-5", "AA03-co-1", "AA03-nc-5")


@pytest.mark.slow
def test_reproduce_table4_on_a_mini_stopa_subset(tmp_path):
    db = tmp_path / "db"
    (db / "protocols_fingerprint_extraction").mkdir(parents=True)
    (db / "protocols_trials_extended").mkdir()
    (db / "wav").symlink_to(CORPUS / "wav")
    for fp in FINGERPRINTS:
        (db / "protocols_fingerprint_extraction" / f"{fp}.txt").write_text(
            (CORPUS / "protocols_fingerprint_extraction" / f"{fp}.txt").read_text())
        lines = (CORPUS / "protocols_trials_extended" / f"{fp}_trials.txt").read_text().splitlines()
        kept = [lines[0]] + [line for line in lines[1:] if line.split()[1].endswith(("_0001.flac", "_0002.flac"))]
        (db / "protocols_trials_extended" / f"{fp}_trials.txt").write_text("\n".join(kept) + "\n")
    done = subprocess.run([str(REPO / "reproduce_table4.sh"), str(db), str(tmp_path / "out"), "--",
                           "--set", 'known_attacks=["AA01","AA03"]', "--set", "reference_trial_file=AA03-nc-5",
                           "--device", "cpu"], capture_output=True, text=True,
                          env={**os.environ, "SYSTEMS": "AASIST_CM ResNet-34_STOPA"})
    assert done.returncode == 0, done.stderr
    assert "skipping ResNet-34_STOPA: its checkpoint models/ResNet-34.pth is not there" in done.stdout
    record = json.loads((tmp_path / "out/AASIST_CM_records/stage3.json").read_text())
    assert record["identity"]["input_policy"] == "reference" and record["identity"]["batch_size"] == 10
    # the trial embeddings follow the named file's rows, in its order
    named = (db / "protocols_trials_extended/AA03-nc-5_trials.txt").read_text().splitlines()[1:]
    ids = (tmp_path / "out/AASIST_CM_protocol_trials.ids.tsv").read_text().splitlines()[1:]
    assert ids == [f"{line.split()[4]}\t{line.split()[1]}" for line in named]
    # the report: ours, the paper's, and the difference per cell
    table = done.stdout[done.stdout.rindex("pooled EER (%)"):].splitlines()
    ours, paper, delta = ([float(v) for v in line.split()[-6:]] for line in table[1:4])
    kn = (tmp_path / "out/AASIST_CM_EERs_pooled/pooled_eer_kn.csv").read_text().splitlines()[1:]
    assert ours[:3] == [float(line.split(",")[1]) for line in kn]
    assert paper == [39.15, 39.15, 39.68, 35.34, 38.69, 37.10]
    assert delta == [round(a - b, 2) for a, b in zip(ours, paper)]
    assert (tmp_path / "out/report.md").is_file()


@pytest.mark.slow
def test_reproduce_table4_usage_errors(tmp_path):
    done = subprocess.run([str(REPO / "reproduce_table4.sh")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("usage:")
    done = subprocess.run([str(REPO / "reproduce_table4.sh"), str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert done.returncode == 2 and "database folder not found" in done.stderr
