"""Configs: defaults, --set overrides with dotted keys and JSON values, validation."""
import json
import os

import pytest

from conftest import REPO

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
    model_config = json.loads((REPO / "config" / "AASIST.conf").read_text())["model_config"]
    path.write_text(json.dumps({"system": "X", "model_config": {**model_config, "nb_samp": 1}}))
    cfg = load_config(path, ["model_config.nb_samp=48000", "input_policy=fixed"], device="cpu")
    assert cfg["model_config"] == {**model_config, "nb_samp": 48000}
    assert cfg["input_policy"] == "fixed" and cfg["device"] == "cpu"
    assert cfg["known_attacks"] == ["AA01", "AA03", "AA05", "AA07", "AA10"]
    assert cfg["enroll_audio"] == "{database_path}/wav/{attack}/dev/{file}"
    assert cfg["unknown_filter"] == "reference" and cfg["output_dir"] == os.getcwd()


@pytest.mark.parametrize("override,message", [
    ("input_policy=crop", "'input_policy' is 'crop'"),
    ("batch_size=0", "'batch_size' is 0; expected an integer >= 1"),
    ("unknown_filter=x", "'unknown_filter' is 'x'"),
    ("nonsense", "expected KEY=VALUE"),
    ("system.x=1", "'system' is not an object"),
    ("max_seconds=0", "'max_seconds' is 0; expected a number > 0"),
    ("enroll_audio={database_path}/{speaker}/{file}", "not {speaker}"),
    ("trial_audio=wav/x.wav", "containing {file}"),
    ("known_attacks=[]", "non-empty list of distinct attack ids"),
    ("dcf_operating_points=[[1.5,1,1]]", "0 < p_target < 1"),
    ("bootstrap_resamples=-1", "an integer >= 0"),
    ("num_workers=true", "an integer >= 0"),
    ("exact_batching=1", "true or false"),
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


def test_unknown_key_in_the_file_names_its_line_and_the_likely_key(tmp_path):
    path = tmp_path / "c.conf"
    path.write_text('{\n  "system": "X",\n  "known_attack": ["AA01"]\n}')
    with pytest.raises(StageError, match=r"c.conf:3: unknown key 'known_attack' \(did you mean 'known_attacks'\?\)"):
        load_config(path)


def test_unknown_key_from_set_is_an_error(tmp_path):
    path = tmp_path / "c.conf"
    path.write_text("{}")
    with pytest.raises(StageError, match=r"--set batchsize=4: unknown key 'batchsize' \(did you mean 'batch_size'\?\)"):
        load_config(path, ["batchsize=4"])


@pytest.mark.parametrize("override,message", [
    ("model_config.nb_samp=abc", "model_config: 'nb_samp' is 'abc'; expected a positive integer"),
    ("model_config.gat_dim=[1,2]", "model_config: unknown AASIST key 'gat_dim' \\(did you mean 'gat_dims'\\?\\)"),
    ("model_config.architecture=VGG", "model_config: 'architecture' is 'VGG'"),
])
def test_architecture_hyper_parameters_are_checked(tmp_path, override, message):
    path = tmp_path / "c.conf"
    path.write_text(json.dumps({"model_config": {"architecture": "AASIST", "first_conv": 128,
                                                 "filts": [70, [1, 32], [32, 32], [32, 64], [64, 64]],
                                                 "gat_dims": [64, 32], "pool_ratios": [0.5, 0.7, 0.5, 0.5],
                                                 "temperatures": [2.0, 2.0, 100.0, 100.0]}}))
    load_config(path)
    with pytest.raises(StageError, match=message):
        load_config(path, [override])


def test_a_config_without_model_config_is_aasist_as_published(tmp_path):
    path = tmp_path / "c.conf"
    path.write_text("{}")
    config = load_config(path)
    assert config["model_config"] == json.loads((REPO / "config" / "AASIST.conf").read_text())["model_config"]
    assert load_config(path, ["model_config.nb_samp=48000"])["model_config"]["nb_samp"] == 48000


@pytest.mark.parametrize("override,message", [
    ("device=gpu", "'device' is 'gpu'; expected auto, cpu, cuda or cuda:N"),
    ("system=../escape", "'system' is '../escape'; expected a name of letters"),
    ("system=.hidden", "'system' is '.hidden'"),
    ("dcf_operating_points=[[0.01,1,1],[0.01,1,1]]", "'dcf_operating_points' is [[0.01, 1, 1], [0.01, 1, 1]]; expected a list of distinct"),
    ("train.epochs=0", "'train.epochs' is 0; expected an integer >= 1"),
    ("train.batchsize=4", "'train.batchsize' is not a setting of the AASIST recipe"),
])
def test_every_value_is_checked_when_the_config_is_read(tmp_path, override, message):
    path = tmp_path / "c.conf"
    path.write_text("{}")
    with pytest.raises(StageError, match=f"^{path}: " + message.replace("[", r"\[").replace(".", r"\.")):
        load_config(path, [override])


def test_relative_and_absolute_paths_are_the_same_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.conf"
    path.write_text("{}")
    relative = load_config(path, ["model_path=./models/../models/x.pth"])
    absolute = load_config(path, [f"model_path={tmp_path}/models/x.pth"])
    assert relative["model_path"] == absolute["model_path"] == f"{tmp_path}/models/x.pth"
