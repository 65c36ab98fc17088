import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/corpus.py

AASIST_CONFIG = {"architecture": "AASIST", "nb_samp": 64600, "first_conv": 128,
                 "filts": [70, [1, 32], [32, 32], [32, 64], [64, 64]], "gat_dims": [64, 32],
                 "pool_ratios": [0.5, 0.7, 0.5, 0.5], "temperatures": [2.0, 2.0, 100.0, 100.0]}


@pytest.fixture
def aasist_config():
    return dict(AASIST_CONFIG)
