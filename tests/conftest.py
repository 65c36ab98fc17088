import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/corpus.py, tests/resnet34_seeded.py

from resnet34_seeded import write_checkpoint  # noqa: E402

AASIST_CONFIG = {"architecture": "AASIST", "nb_samp": 64600, "first_conv": 128,
                 "filts": [70, [1, 32], [32, 32], [32, 64], [64, 64]], "gat_dims": [64, 32],
                 "pool_ratios": [0.5, 0.7, 0.5, 0.5], "temperatures": [2.0, 2.0, 100.0, 100.0]}


def fixture_path(name: str) -> Path:
    """The committed test fixture `tests/fixtures/<name>`; every test data file is read through here.

    Raises FileNotFoundError (a failure, never a skip) when the file is not in the checkout.
    """
    path = FIXTURES / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: test fixture missing from the repository")
    return path


@pytest.fixture
def aasist_config():
    return dict(AASIST_CONFIG)


@pytest.fixture(scope="session")
def resnet34_checkpoint(tmp_path_factory):
    """A ResNet-34 checkpoint file (toolkit format) holding the seeded weights of `resnet34_seeded`."""
    return write_checkpoint(tmp_path_factory.mktemp("resnet34") / "ResNet-34_seeded.pth")
