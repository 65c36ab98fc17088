"""Every benchmark runs, at a toy size, so that none can rot (their figures are quoted in the README)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from stagerun import make, stage

TINY = {  # script: arguments giving a run of seconds, not minutes
    "bench_backends.py": ["--rows", "20000", "--enroll-all", "20", "--workdir", "{tmp}/data"],
    "bench_batching.py": ["--plan-utterances", "300", "--plan-batch-sizes", "8", "--quantum", "1",
                          "--models", "aasist", "--utterances", "3", "--timing-max-s", "1", "--repeats", "1"],
    "bench_corpus_import.py": ["--sources", "2", "--dev", "12", "--eval", "6"],
    "bench_demo_training.py": ["--seeds", "7", "--out", "{tmp}/data", "--set", "train.epochs=1", "--set",
                               'model_config={{"architecture": "ResNet34", "n_mels": 40, "blocks": [1, 1, 1, 1], '
                               '"channels": [4, 4, 8, 8], "embedding_dim": 16}}'],  # braces: str.format
    "bench_distributed.py": ["--files", "4", "--median-s", "0.5", "--ranks", "2", "--repeats", "1",
                             "--threads", "1"],
    "bench_evaluation.py": ["--rows", "20000"],
    "bench_extraction.py": ["--models", "aasist", "--policies", "full", "--files", "2", "--min-s", "0.5",
                            "--max-s", "1", "--median-s", "0.7", "--repeats", "1", "--batch-sizes", "1"],
    "bench_identity.py": ["--config", "{tmp}/sys.conf"],
    "bench_scoring.py": ["--rows", "20000", "--repeats", "1", "--workdir", "{tmp}/data"],
    "bench_ssl.py": ["--layers", "1", "--dim", "64", "--seconds", "1", "--batch-size", "1", "--repeats", "1"],
    "bench_training.py": ["--models", "resnet34", "--procs", "1", "--files", "6", "--seconds", "0.5",
                          "--epochs", "1", "--batch-size", "2"],
    "bench_trace.py": ["--config", "{tmp}/sys.conf", "--files", "3", "--median-s", "0.5", "--min-s", "0.4",
                       "--max-s", "0.6"],
}


def test_every_benchmark_has_a_tiny_run():
    scripts = {p.name for p in (REPO / "benchmarks").glob("bench_*.py")}
    assert scripts == set(TINY)  # gpu_check.py has its own test (--tiny), stopa_scale.py is a library


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(TINY))
def test_benchmark_runs_at_a_tiny_size(script, tmp_path):
    if script == "bench_identity.py":
        make(tmp_path)
        config = json.loads((tmp_path / "sys.conf").read_text())
        (tmp_path / "sys.conf").write_text(json.dumps({**config, "chunk_size": 2}))
    if script == "bench_trace.py":  # it traces with a system whose stages have run
        make(tmp_path)
        assert all(stage(tmp_path, n, "-q") == 0 for n in range(1, 6))
    args = [a.format(tmp=tmp_path) for a in TINY[script]]
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True,
                          text=True, cwd=tmp_path, timeout=900, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip(), "a benchmark prints its figures"
