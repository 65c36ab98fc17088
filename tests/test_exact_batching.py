"""Exact mixed-length batching: a zero-padded batch of different lengths, given the true
lengths, embeds every row as that utterance alone (AASIST and ResNet-34, both routes).

The sweep covers the shortest accepted input, every length around the first boundaries of
each stride (AASIST: the sinc kernel and the pooling by 3, then six poolings by 3; ResNet-34:
the 160-sample frame shift, then three stride-2 stages), many odd lengths drawn at random up
to 30 s, and 30 s itself, batched with rows of very different lengths (the short ones then
carry up to 30 s of padding)."""
import numpy as np
import pytest
import torch

import models
from conftest import REPO, fixture_path
from resnet34_seeded import CONFIG

SECOND = 16000
THIRTY = 30 * SECOND


def _padded(waves):
    lengths = torch.tensor([w.numel() for w in waves])
    batch = torch.zeros(len(waves), int(lengths.max()))
    for row, w in enumerate(waves):
        batch[row, : w.numel()] = w
    return batch, lengths


def _assert_rows_are_alone(model, waves, atol):
    batch, lengths = _padded(waves)
    with torch.inference_mode():
        together, logits = model(batch, lengths)
        for row, w in enumerate(waves):
            alone, alone_logits = model(w.unsqueeze(0))
            scale = max(1.0, float(alone.abs().max()))
            np.testing.assert_allclose(together[row].numpy(), alone[0].numpy(), rtol=0, atol=atol * scale,
                                       err_msg=f"row of {w.numel()} samples")
            np.testing.assert_allclose(logits[row].numpy(), alone_logits[0].numpy(), rtol=0, atol=atol * scale)


def _waves(lengths, seed):
    gen = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(n, generator=gen) for n in lengths]


def _odd_lengths(low, high, count, seed):
    """`count` odd lengths in [low, high), log-uniform (short ones are most of a corpus)."""
    rng = np.random.default_rng(seed)
    return [int(n) | 1 for n in np.exp(rng.uniform(np.log(low), np.log(high), count))]


@pytest.fixture(scope="module")
def aasist():
    from conftest import AASIST_CONFIG
    return models.load_model(dict(AASIST_CONFIG), REPO / "models" / "AASIST_CM.pth")


@pytest.fixture(scope="module")
def resnet34(resnet34_checkpoint):
    return models.load_model(CONFIG, resnet34_checkpoint, "full")


def _aasist_lengths(model):
    k, m = model.conv_time.kernel_size - 1, model.min_samples
    step = 3 * 3 ** len(model.encoder)  # samples per temporal node at the encoder's output
    # final frames (n - k) // step: 1 from m = k + step, 2 from k + 2 step, ...
    return [m, m + 1, m + 2, m + 3, m + step - 1, m + step, m + step + 1, k + 3 * step - 1, k + 3 * step + 2]


def _resnet_lengths(model):
    m = model.min_samples  # 400 samples: 3 frames
    # frame count (n + 80) // 160 steps at n = 160 f - 80; stride-2 stages split odd and even
    return [m, m + 1, 479, 480, 481, 559, 560, 639, 640, 1199, 1200, 1201, 2480, 2481]


def _sweep(model, boundaries, seed):
    """Batches of the stride boundaries, then odd lengths up to 6 s, grouped by length (as
    the engine groups them), and one wide batch: the shortest input padded to 6 s."""
    odd = sorted(_odd_lengths(boundaries[-1], 6 * SECOND, 8, seed))
    return [boundaries, odd[:5], odd[5:], [model.min_samples, 6 * SECOND + 1]]


MODELS = {"AASIST": (_aasist_lengths, 1), "ResNet34": (_resnet_lengths, 2)}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("optimized", [True, False], ids=["fast route", "plain route"])
def test_rows_of_a_mixed_batch_are_the_utterances_alone(name, optimized, aasist, resnet34, monkeypatch):
    model = aasist if name == "AASIST" else resnet34
    monkeypatch.setattr(model, "optimized", optimized)
    boundaries, seed = MODELS[name]
    batches = _sweep(model, boundaries(model), seed)
    if not optimized:  # the plain route is several times slower: its boundaries and one wide batch
        batches = [batches[0][::2], [model.min_samples, 2 * SECOND + 1]]
    for b, lengths in enumerate(batches):
        _assert_rows_are_alone(model, _waves(lengths, 10 * seed + b), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_thirty_seconds_beside_the_shortest_input(name, aasist, resnet34):
    model = aasist if name == "AASIST" else resnet34
    _assert_rows_are_alone(model, _waves([model.min_samples, THIRTY, 29 * SECOND + 7], 99), atol=1e-5)


def test_resnet34_fixed_policy_crops_each_row_and_normalises_over_its_own_length(resnet34_checkpoint):
    model = models.load_model(CONFIG, resnet34_checkpoint, "fixed")
    # 1400 frames = 14 s: one row longer (cropped after the mean over the whole utterance), one shorter
    _assert_rows_are_alone(model, _waves([14 * SECOND + 11, 401], 20), atol=1e-5)


def test_golden_outputs_hold_in_a_mixed_batch(aasist_config, resnet34_checkpoint):
    """The golden fixtures' utterances batched together with different lengths."""
    golden = np.load(fixture_path("aasist_golden_outputs.npz"))
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth")
    inputs = torch.from_numpy(golden["inputs"])
    batch, lengths = _padded([inputs[1, :48000], inputs[0], inputs[2, :30001]])
    with torch.inference_mode():
        emb, _ = model(batch, lengths)
    np.testing.assert_allclose(emb[0].numpy(), golden["AASIST_CM_emb_x1_first48000"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(emb[1].numpy(), golden["AASIST_CM_emb"][0], atol=1e-3, rtol=0)

    seeded = dict(np.load(fixture_path("resnet34_seeded_golden.npz")))
    waves = [torch.from_numpy(seeded[f"input{i}"].astype(np.float32) / 32768) for i in range(2)]  # 2.5 s, 4 s
    model = models.load_model(CONFIG, resnet34_checkpoint, "fixed")
    batch, lengths = _padded(waves)
    assert lengths.tolist() == [40000, 64600]
    with torch.inference_mode():
        emb, logits = model(batch, lengths)
    np.testing.assert_allclose(emb.numpy(), seeded["emb"][:2], rtol=0, atol=1e-4)
    np.testing.assert_allclose(logits.numpy(), seeded["logits"][:2], rtol=0, atol=1e-6)


def test_padding_content_does_not_matter_and_equal_lengths_take_the_equal_length_way(aasist):
    waves = _waves([5001, 12003], 30)
    batch, lengths = _padded(waves)
    noisy = batch.clone()
    noisy[0, 5001:] = 1.0  # garbage, not zeros, in the padding
    with torch.inference_mode():
        np.testing.assert_allclose(aasist(noisy, lengths)[0].numpy(), aasist(batch, lengths)[0].numpy(),
                                   rtol=0, atol=1e-6)
        same = torch.stack([waves[1], waves[1] * 0.5])
        torch.testing.assert_close(aasist(same, torch.tensor([12003, 12003]))[0], aasist(same)[0], rtol=0, atol=0)
        # trailing padding shared by every row is cut off: bitwise the unpadded batch
        torch.testing.assert_close(aasist(torch.nn.functional.pad(same, (0, 999)), torch.tensor([12003, 12003]))[0],
                                   aasist(same)[0], rtol=0, atol=0)


def test_bad_lengths_and_too_short_rows_are_refused(aasist, resnet34):
    batch, lengths = _padded(_waves([3000, 5000], 40))
    with torch.inference_mode():
        with pytest.raises(ValueError, match="lengths of shape"):
            aasist(batch, torch.tensor([3000]))
        with pytest.raises(ValueError, match="must lie in"):
            aasist(batch, torch.tensor([3000, 5001]))
        with pytest.raises(RuntimeError, match="at least 2315"):
            aasist(batch, torch.tensor([2314, 5000]))
        with pytest.raises(ValueError, match="shorter than one"):
            resnet34(batch, torch.tensor([399, 5000]))


def test_mixed_lengths_are_refused_in_training_mode(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth").train()
    batch, lengths = _padded(_waves([3000, 5000], 50))
    with pytest.raises(RuntimeError, match="eval mode"):
        model(batch, lengths)
