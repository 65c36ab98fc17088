"""benchmarks/gpu_check.py: its toy run on CPU passes every check (so the GPU run cannot rot
before a GPU is lent), and a missing package is named before anything else is imported."""
import importlib.util
import json
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_tiny_run_on_cpu_passes_every_check(tmp_path):
    out = tmp_path / "figures.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    checks = ["parity", "precision", "throughput", "pipeline", "training", "torchrun"]
    status_lines = [line for line in done.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert [line.split()[1].rstrip(":") for line in status_lines] == checks
    assert all(line.startswith("PASS") for line in status_lines)
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["tiny"] and list(report["checks"]) == checks
    parity = report["checks"]["parity"]["figures"]
    assert parity["AASIST_CM"]["max_abs_vs_golden"] < 1e-3
    throughput = report["checks"]["throughput"]["figures"]
    for model in ("AASIST", "ResNet-34"):
        for run in ("full exact", "full equal", "fixed", "reference"):
            for precision in ("fp32", "bf16"):
                assert throughput[f"{model} {run} batch 2 {precision}"]["utt_per_s"] > 0
    eers = report["checks"]["pipeline"]["figures"]["eer_percent"]["cpu"]
    assert {"known ATK", "unknown ATK"} <= set(eers) and "seconds" in eers


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_packages_are_named_with_how_to_bring_soundfile(monkeypatch, capsys):
    gpu_check = _load_script()
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("soundfile", "pyarrow")
                        else real(name, *a))
    with pytest.raises(SystemExit) as stop:
        gpu_check._check_imports()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: missing Python package(s): soundfile, pyarrow") and "docstring" in err
    assert "pip download soundfile" in gpu_check.__doc__ and "--find-links" in gpu_check.__doc__


def test_cuda_requested_without_cuda_is_one_line(tmp_path, monkeypatch, capsys):
    gpu_check = _load_script()
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--device", "cuda", "--out", str(tmp_path / "x.json")]) == 2
    assert capsys.readouterr().err.startswith("error: --device cuda: CUDA is not available")
