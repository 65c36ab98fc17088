"""ResNet-34 countermeasure: parity with the toolkit's outputs for the seeded weights,
checkpoint loading, batch invariance and the input policies."""
import numpy as np
import pytest
import torch

import models
from conftest import fixture_path
from models.resnet34 import ResNet34
from resnet34_seeded import CONFIG, NUM_CLASSES, SEED, seeded_state_dict


@pytest.fixture(scope="module")
def golden():
    """The toolkit's outputs for the seeded weights; int16 inputs scaled to floats in [-1, 1]."""
    data = dict(np.load(fixture_path("resnet34_seeded_golden.npz")))
    for i in range(3):
        data[f"input{i}"] = data[f"input{i}"].astype(np.float32) / 32768
    return data


@pytest.fixture(scope="module")
def fixed_model(resnet34_checkpoint):
    return models.load_model(CONFIG, resnet34_checkpoint, "fixed")


@pytest.fixture(scope="module")
def full_model(resnet34_checkpoint):
    return models.load_model(CONFIG, resnet34_checkpoint, "full")


def _embed(model, waves):
    with torch.inference_mode():
        return model(waves)


@pytest.mark.parametrize("i", [0, 1, 2])
def test_parity_with_golden_outputs(fixed_model, golden, i):
    assert (golden["seed"], golden["num_classes"]) == (SEED, NUM_CLASSES)
    wave = torch.from_numpy(golden[f"input{i}"])
    assert fixed_model.features(wave).shape == (golden["frames"][i], 81)
    emb, logits = _embed(fixed_model, fixed_model.fit_input(wave).unsqueeze(0))
    assert emb.shape == (1, 256) and logits.shape == (1, NUM_CLASSES)
    np.testing.assert_allclose(emb[0].numpy(), golden["emb"][i], rtol=0, atol=1e-4)
    np.testing.assert_allclose(logits[0].numpy(), golden["logits"][i], rtol=0, atol=1e-6)


def test_bare_state_dict_loads(tmp_path, fixed_model, golden):
    state = seeded_state_dict()
    bare = tmp_path / "bare.pt"
    torch.save(state, bare)
    model = models.load_model(CONFIG, bare, "fixed")
    wave = torch.from_numpy(golden["input0"]).unsqueeze(0)
    torch.testing.assert_close(_embed(model, wave), _embed(fixed_model, wave), rtol=0, atol=0)


def test_missing_key_is_named(tmp_path):
    state = seeded_state_dict()
    del state["layer3.2.bn1.running_var"]
    path = tmp_path / "missing.pt"
    torch.save({"model": state}, path)
    with pytest.raises(models.CheckpointError, match=r"layer3\.2\.bn1\.running_var"):
        models.load_model(CONFIG, path, "fixed")


def test_number_of_classes_comes_from_checkpoint(tmp_path, golden):
    state = seeded_state_dict()
    state["output.W"] = torch.randn(5, 256)
    path = tmp_path / "five.pt"
    torch.save({"model": state}, path)
    model = models.load_model(CONFIG, path, "fixed")
    assert ResNet34.num_classes_in(state) == 5 and model.output.W.shape == (5, 256)
    emb, logits = _embed(model, torch.from_numpy(golden["input0"]).unsqueeze(0))
    assert logits.shape == (1, 5)
    assert logits.abs().max() <= 1 + 1e-6  # plain cosines at inference


@pytest.mark.parametrize("policy", ["fixed", "full"])
def test_batch_invariance(policy, fixed_model, full_model):
    model = fixed_model if policy == "fixed" else full_model
    waves = 0.1 * torch.randn(7, 24000, generator=torch.Generator().manual_seed(0))
    emb7, logits7 = _embed(model, waves)
    singles = [_embed(model, w.unsqueeze(0)) for w in waves]
    emb1 = torch.cat([e for e, _ in singles])
    logits1 = torch.cat([lg for _, lg in singles])
    # the seeded weights give embeddings of magnitude ~12, where float32 sums over thousands
    # of terms differ by ~2e-5; 1e-5 is therefore taken relative to the embedding scale
    scale = emb1.abs().max().item()
    torch.testing.assert_close(emb7, emb1, rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(logits7, logits1, rtol=0, atol=1e-5)


def test_full_and_fixed_policies(fixed_model, full_model, golden):
    for i, same in ((0, True), (1, True), (2, False)):
        wave = torch.from_numpy(golden[f"input{i}"])
        assert fixed_model.fit_input(wave) is wave and full_model.fit_input(wave) is wave
        emb_fixed, _ = _embed(fixed_model, wave.unsqueeze(0))
        emb_full, _ = _embed(full_model, wave.unsqueeze(0))
        if same:
            torch.testing.assert_close(emb_full, emb_fixed, rtol=0, atol=0)
        else:  # 250000 samples: round(250000 / 160) = 1563 frames in full, the first 1400 in fixed
            assert full_model.features(wave).shape[0] == (wave.numel() + 80) // 160 == 1563
            assert fixed_model.features(wave).shape[0] == 1400
            assert (emb_full - emb_fixed).abs().max() > 1e-2


def test_min_samples(fixed_model):
    assert fixed_model.min_samples == 400
    wave = 0.1 * torch.randn(1, fixed_model.min_samples, generator=torch.Generator().manual_seed(1))
    emb, logits = _embed(fixed_model, wave)
    assert fixed_model.features(wave[0]).shape == (3, 81)
    assert emb.shape == (1, 256) and torch.isfinite(emb).all() and torch.isfinite(logits).all()
    # shorter than one analysis window: rejected explicitly (torchaudio would assert)
    with pytest.raises(ValueError, match="shorter than"):
        _embed(fixed_model, wave[:, :-1])


def test_interface():
    model = ResNet34({"architecture": "ResNet34"}, 2)
    assert model.input_policy == "fixed" and model.sample_rate == 16000
    assert model.embedding_dim == 256 and model.max_frames == 1400
    with pytest.raises(ValueError):
        ResNet34({"architecture": "ResNet34"}, 2, "cropped")
