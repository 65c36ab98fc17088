"""Configs: defaults, --set overrides with dotted keys and JSON values, validation."""
import json

import pytest

from sourcetrace.config import load_config, parse_override
from sourcetrace.errors import StageError


def test_override_values_are_json_when_they_parse():
    assert parse_override("batch_size=4") == (["batch_size"], 4)
    assert parse_override('known_attacks=["AA01"]') == (["known_attacks"], ["AA01"])
    assert parse_override("model_config.nb_samp=48000") == (["model_config", "nb_samp"], 48000)
    assert parse_override("output_dir=runs/x") == (["output_dir"], "runs/x")
    assert parse_override("system=") == (["system"], "")


def test_load_fills_defaults_and_applies_overrides(tmp_path):
    path = tmp_path / "c.conf"
    path.write_text(json.dumps({"system": "X", "model_config": {"architecture": "AASIST", "nb_samp": 1}}))
    cfg = load_config(path, ["model_config.nb_samp=48000", "input_policy=fixed"], device="cpu")
    assert cfg["model_config"] == {"architecture": "AASIST", "nb_samp": 48000}
    assert cfg["input_policy"] == "fixed" and cfg["device"] == "cpu"
    assert cfg["known_attacks"] == ["AA01", "AA03", "AA05", "AA07", "AA10"]
    assert cfg["enroll_audio"] == "{database_path}/wav/{attack}/dev/{file}"
    assert cfg["unknown_filter"] == "reference" and cfg["output_dir"] == "."


@pytest.mark.parametrize("override,message", [
    ("input_policy=crop", "'input_policy' is 'crop'"),
    ("batch_size=0", "'batch_size' must be an integer >= 1"),
    ("unknown_filter=x", "'unknown_filter' is 'x'"),
    ("nonsense", "expected KEY=VALUE"),
    ("system.x=1", "'system' is not an object"),
])
def test_invalid_values_are_rejected(tmp_path, override, message):
    path = tmp_path / "c.conf"
    path.write_text("{}")
    with pytest.raises(StageError, match=message):
        load_config(path, [override])


def test_bad_json_names_the_line(tmp_path):
    path = tmp_path / "c.conf"
    path.write_text('{\n  "system": "X",\n  oops\n}')
    with pytest.raises(StageError, match=r"c.conf:3: not valid JSON"):
        load_config(path)
