"""`python -m sourcetrace.report`: Table 4 on stdout, the Markdown report, one-line errors."""
import subprocess
import sys

import pytest

from conftest import REPO
from sourcetrace import provenance
from sourcetrace.evaluation import write_evaluation
from sourcetrace.store import Paths
from sourcetrace.report import table
from test_evaluation_metrics import OPTIONS, small


def committed_stage5(root, system: str, known: str, unknown: str, rows) -> None:
    """Stage 5's files of `system` (the pooled EER CSVs' rows `known`, `unknown`; the wider
    evaluation of `rows`), committed with their record as stage 5 commits them (its input, an
    evaluation CSV, made elsewhere)."""
    paths = Paths(root, system)
    folder = paths.staging(5) / paths.eer_dir.name
    folder.mkdir(parents=True)
    (folder / "pooled_eer_kn.csv").write_text(",EER\n" + known)
    (folder / "pooled_eer_ukn.csv").write_text(",EER\n" + unknown)
    (folder / "pooled_eer_details.json").write_text('{"unknown_filter": "reference"}\n')
    write_evaluation(folder, rows, unknown_filter="reference", **OPTIONS)
    provenance.commit(paths, 5, {}, {4: None}, [paths.eer_dir / p.name for p in folder.iterdir()], [], 1)


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    committed_stage5(root, "SYS", "ATK,0.0\nAcousticModel,0.0\nVocoderModel,12.5\n",
                     "ATK,0.0\nAcousticModel,0.0\nVocoderModel,25.0\n", small())
    return root


def report(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "sourcetrace.report", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True)


def test_prints_table_and_writes_report(output_dir):
    done = report(output_dir, "SYS")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == table(output_dir, ["SYS"]).splitlines()
    assert done.stdout.splitlines()[2] == f"report: {output_dir / 'report.md'}"
    text = (output_dir / "report.md").read_text()
    assert "| SYS | 0.00 | 0.00 | 12.50 | 0.00 | 0.00 | 25.00 |" in text
    # per-condition EERs (small(): see test_evaluation_metrics): known AM and VM pooled 12.5 %;
    # the co / 1 group has no non-target for known AM and VM, so those cells are empty
    assert ("| condition | size | known ATK | known AM | known VM | unknown ATK | unknown AM | unknown VM |"
            in text)
    assert "| pooled | pooled | 0.00 | 12.50 | 12.50 |" in text
    assert "| co | 1 | 0.00 | – | – |" in text
    assert "| known | VM | 12.50 [" in text
    assert "minDCF(0.01, 1, 1) | minDCF(0.1, 1, 1) |" in text
    assert "![SYS, known attacks](SYS_EERs_pooled/det_known.png)" in text
    assert "Unknown-scenario rows: `reference` filter." in text


def test_report_elsewhere_links_relative_to_itself(output_dir):
    target = output_dir / "sub" / "r.md"
    done = report(output_dir, "SYS", "--out", target)
    assert done.returncode == 0, done.stderr
    assert "![SYS, unknown attacks](../SYS_EERs_pooled/det_unknown.png)" in target.read_text()


def test_a_folder_given_to_out_gets_report_md_inside(output_dir, tmp_path):
    done = report(output_dir, "SYS", "--out", tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "report.md").read_text().startswith("# Source tracing evaluation: SYS")


def test_no_paper_numbers_for_other_systems(output_dir):
    assert table(output_dir, ["SYS"], paper=True) == table(output_dir, ["SYS"])


def test_paper_numbers_beside_ours(output_dir, tmp_path):
    (output_dir / "AASIST_CM_EERs_pooled").mkdir(exist_ok=True)
    for name in ("pooled_eer_kn.csv", "pooled_eer_ukn.csv", "metrics.csv"):
        (output_dir / "AASIST_CM_EERs_pooled" / name).write_text((output_dir / "SYS_EERs_pooled" / name).read_text())
    done = report(output_dir, "AASIST_CM", "--paper", "--out", tmp_path / "r.md", "--allow-stale")  # no record
    assert done.returncode == 0, done.stderr
    assert "  paper (STOPA)              39.15  39.15  39.68        35.34  38.69  37.10" in done.stdout
    assert "| AASIST_CM, paper | 39.15 | 39.15 | 39.68 | 35.34 | 38.69 | 37.10 |" in (tmp_path / "r.md").read_text()
    assert "Unknown-scenario rows: `?` filter." in (tmp_path / "r.md").read_text()  # no details file


@pytest.mark.parametrize("system, missing", [
    ("NOPE", "NOPE_EERs_pooled: not found (no system 'NOPE' in"),
    ("ONLY_REFERENCE", "ONLY_REFERENCE_EERs_pooled/metrics.csv: not found; run stage 5"),
])
def test_errors_are_one_line_with_status_2(output_dir, system, missing, tmp_path):
    if system == "ONLY_REFERENCE":
        folder = output_dir / "ONLY_REFERENCE_EERs_pooled"
        folder.mkdir(exist_ok=True)
        for name in ("pooled_eer_kn.csv", "pooled_eer_ukn.csv"):
            (folder / name).write_text((output_dir / "SYS_EERs_pooled" / name).read_text())
    done = report(output_dir, "SYS", system, "--out", tmp_path / "r.md", "--allow-stale")  # no record of them
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and missing in done.stderr
    assert not (tmp_path / "r.md").exists()


def test_missing_output_folder(tmp_path):
    done = report(tmp_path / "absent", "SYS")
    assert done.returncode == 2
    assert done.stderr == f"error: {tmp_path / 'absent' / 'SYS_EERs_pooled'}: not found (no system 'SYS' in " \
                          f"{tmp_path / 'absent'}); run stage 5 (compute_eer_pooled.py) for this system first\n"


def test_labels_a_corpus_lacks_are_left_out_with_a_note(tmp_path):
    """A corpus without vocoder labels: stage 5 writes ATK and AM rows only; the report shows those
    columns and says why VM is missing, never a column of zeros."""
    rows = small()
    labels = {k: v for k, v in rows.labels.items() if k in ("ATK", "AcousticModel")}
    committed_stage5(tmp_path, "NOVM", "ATK,0.0\nAcousticModel,12.5\n", "ATK,0.0\nAcousticModel,25.0\n",
                     type(rows)(rows.scores, rows.is_known, labels, rows.fingerprint, rows.fingerprint_names))
    done = report(tmp_path, "NOVM")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == [
        "pooled EER (%)           known ATK     AM  unknown ATK     AM",
        "NOVM                          0.00  12.50         0.00  25.00",
        "note: no VocoderModel labels (no IsTargetVocoderModel column in the trial protocols), so no EER"]
    text = (tmp_path / "report.md").read_text()
    assert "| system | known ATK | known AM | unknown ATK | unknown AM |\n|---|---|---|---|---|\n" \
           "| NOVM | 0.00 | 12.50 | 0.00 | 25.00 |" in text
    assert "Note: no VocoderModel labels" in text
    assert "| condition | size | known ATK | known AM | unknown ATK | unknown AM |" in text and " VM" not in text
    # beside a system that has vocoder labels, the column stays and the other system's cell is '–'
    full = Paths(tmp_path, "FULL").eer_dir
    full.mkdir()
    (full / "pooled_eer_kn.csv").write_text(",EER\nATK,1.0\nAcousticModel,2.0\nVocoderModel,3.0\n")
    (full / "pooled_eer_ukn.csv").write_text(",EER\nATK,4.0\nAcousticModel,5.0\nVocoderModel,6.0\n")
    assert table(tmp_path, ["FULL", "NOVM"]).splitlines() == [
        "pooled EER (%)           known ATK     AM     VM  unknown ATK     AM     VM",
        "FULL                          1.00   2.00   3.00         4.00   5.00   6.00",
        "NOVM                          0.00  12.50      –         0.00  25.00      –",
        "note: no VocoderModel labels (no IsTargetVocoderModel column in the trial protocols), so no EER; "
        "'–' where a system lacks it"]
