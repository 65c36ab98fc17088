"""AASIST reproduces the original implementation's outputs with both included checkpoints."""
import json

import numpy as np
import pytest
import torch

import models
from conftest import REPO, fixture_path


@pytest.fixture(scope="module")
def golden():
    return np.load(fixture_path("aasist_golden_outputs.npz"))


@pytest.mark.parametrize("system,classes", [("AASIST_CM", 2), ("AASIST_STOPA", 13)])
def test_parity_with_golden_outputs(system, classes, golden, aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / f"{system}.pth")
    assert model.out_layer.out_features == classes
    inputs = torch.from_numpy(golden["inputs"])
    with torch.inference_mode():
        outputs = [model(inputs[i:i + 1]) for i in range(3)]
        short_emb, _ = model(inputs[1:2, :48000])
    emb = torch.cat([e for e, _ in outputs]).numpy()
    logits = torch.cat([l for _, l in outputs]).numpy()
    assert emb.shape == (3, 160)
    np.testing.assert_allclose(emb, golden[f"{system}_emb"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(logits, golden[f"{system}_logits"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(short_emb[0].numpy(), golden[f"{system}_emb_x1_first48000"], atol=1e-3, rtol=0)


def test_configs_build_the_checkpointed_model():
    for name, system in [("AASIST.conf", "AASIST_CM"), ("AASIST_STOPA.conf", "AASIST_STOPA")]:
        cfg = json.loads((REPO / "config" / name).read_text())
        assert cfg["system"] == system
        models.load_model(cfg["model_config"], REPO / cfg["model_path"])


def test_fixed_policy_repeats_short_and_cuts_long_input(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", "fixed")
    short = torch.arange(30000, dtype=torch.float32)
    fitted = model.fit_input(short)
    assert fitted.shape == (64600,)
    assert torch.equal(fitted[30000:60000], short) and torch.equal(fitted[60000:], short[:4600])
    assert torch.equal(model.fit_input(torch.arange(70000.0)), torch.arange(64600.0))
    full = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", "full")
    assert torch.equal(full.fit_input(short), short)


def test_min_samples_is_the_shortest_accepted_input(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth")
    assert model.min_samples == 2315
    with torch.inference_mode():
        emb, _ = model(torch.randn(1, model.min_samples))
        assert torch.isfinite(emb).all()
        with pytest.raises(RuntimeError):
            model(torch.randn(1, model.min_samples - 1))


def test_checkpoint_of_another_model_names_the_keys(aasist_config, tmp_path):
    state = torch.load(REPO / "models" / "AASIST_CM.pth", map_location="cpu", weights_only=True)
    del state["pos_S"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(models.CheckpointError, match=r"missing keys: pos_S.*unexpected keys: extra.weight"):
        models.load_model(aasist_config, path)


def test_config_that_does_not_fit_the_checkpoint(aasist_config):
    aasist_config["gat_dims"] = [64, 16]
    with pytest.raises(models.CheckpointError, match="shape mismatch"):
        models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth")


def test_not_a_checkpoint(aasist_config, tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(models.CheckpointError, match="not a readable PyTorch checkpoint"):
        models.load_model(aasist_config, path)
    with pytest.raises(models.CheckpointError, match="checkpoint not found"):
        models.load_model(aasist_config, tmp_path / "absent.pth")
