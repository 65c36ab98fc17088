"""The extraction engine: batch invariance, input policies, audio handling."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import models
from conftest import REPO
from corpus import make_corpus
from sourcetrace.audio import load_audio
from sourcetrace.extraction import Extractor, Utterance, plan_batches


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    corpus = make_corpus(tmp_path_factory.mktemp("corpus"), enroll_per_attack=4, trials_per_attack=2,
                         min_s=0.3, max_s=0.9)
    paths = sorted(corpus.database.rglob("*.wav"))[:12]
    # a few exact-length twins so that batches of several items really occur
    for i, path in enumerate(paths[:4]):
        twin = path.with_name("twin_" + path.name)
        wave, rate = sf.read(paths[0])
        sf.write(twin, wave[::-1] * (0.5 + 0.1 * i), rate, subtype="PCM_16")
        paths.append(twin)
    return [Utterance("AA01", p.name, p, Path("test"), i) for i, p in enumerate(paths)]


def _extract(utterances, policy, batch_size, workers, tmp_path, aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", policy)
    extractor = Extractor(model, policy, batch_size, workers, torch.device("cpu"))
    result = extractor.extract(utterances, tmp_path / f"work-{policy}-{batch_size}-{workers}")
    assert not result.failed
    return result.embeddings


@pytest.mark.parametrize("policy", ["full", "fixed"])
def test_embeddings_do_not_depend_on_batch_size_or_workers(policy, utterances, tmp_path, aasist_config):
    aasist_config["nb_samp"] = 12000  # the recipe's 64600 works the same, only slower
    base = _extract(utterances, policy, 1, 0, tmp_path, aasist_config)
    assert base.shape == (len(utterances), 160) and np.isfinite(base).all()
    for batch_size, workers in [(7, 0), (1, 2), (7, 2)]:
        other = _extract(utterances, policy, batch_size, workers, tmp_path, aasist_config)
        np.testing.assert_allclose(other, base, atol=1e-5, rtol=0)


@pytest.mark.parametrize("policy", ["full", "fixed"])
def test_resnet34_embeddings_do_not_depend_on_batch_size_or_workers(policy, utterances, tmp_path,
                                                                   resnet34_checkpoint):
    config = json.loads((REPO / "config" / "ResNet-34.conf").read_text())["model_config"]

    def extract(batch_size, workers):
        model = models.load_model(config, resnet34_checkpoint, policy)
        result = Extractor(model, policy, batch_size, workers, torch.device("cpu")).extract(
            utterances, tmp_path / f"resnet-{batch_size}-{workers}")
        assert not result.failed
        return result.embeddings

    base = extract(1, 0)
    assert base.shape == (len(utterances), 256) and np.isfinite(base).all()
    # the seeded weights' embeddings are ~12 in size: float32 sums differ by ~2e-5 there
    scale = np.abs(base).max()
    for batch_size, workers in [(7, 0), (7, 2)]:
        np.testing.assert_allclose(extract(batch_size, workers), base, atol=1e-5 * scale, rtol=0)


def test_full_policy_embedding_is_the_model_on_the_whole_utterance(utterances, tmp_path, aasist_config):
    emb = _extract(utterances, "full", 7, 0, tmp_path, aasist_config)
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", "full")
    with torch.inference_mode():
        for i in (0, 5, len(utterances) - 1):
            wave, _ = load_audio(utterances[i].path)
            direct, _ = model(torch.from_numpy(wave)[None])
            np.testing.assert_allclose(emb[i], direct[0].numpy(), atol=1e-5, rtol=0)


def test_reference_policy_pads_within_batches(utterances, tmp_path, aasist_config):
    single = _extract(utterances, "reference", 1, 0, tmp_path, aasist_config)
    np.testing.assert_allclose(single, _extract(utterances, "full", 1, 0, tmp_path, aasist_config), atol=1e-5)
    batched = _extract(utterances, "reference", 10, 0, tmp_path, aasist_config)
    # zero padding to the batch's longest utterance changes the shorter utterances' embeddings
    assert np.abs(batched - single).max(axis=1).max() > 1e-3


def test_plan_groups_equal_lengths_and_respects_segments():
    assert plan_batches([5, 3, 5, 3, 5, 9], 2, [range(6)]) == [[1, 3], [0, 2], [4], [5]]
    assert plan_batches(None, 2, [range(0, 3), range(3, 5)]) == [[0, 1], [2], [3, 4]]


def test_stereo_is_mixed_and_other_rates_resampled(tmp_path):
    t = np.arange(8000) / 8000
    left, right = np.sin(2 * np.pi * 440 * t), np.zeros_like(t)
    sf.write(tmp_path / "stereo8k.wav", np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    wave, rate = load_audio(tmp_path / "stereo8k.wav")
    assert rate == 8000 and wave.dtype == np.float32 and wave.shape == (16000,)
    assert np.abs(wave).max() == pytest.approx(0.5, abs=0.02)


def test_silent_and_phase_cancelled_audio_is_embedded_with_a_warning(tmp_path, aasist_config, caplog):
    t = np.arange(16000) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    sf.write(tmp_path / "cancel.wav", np.stack([tone, -tone], axis=1), 16000, subtype="FLOAT")
    sf.write(tmp_path / "zeros.wav", np.zeros(16000), 16000)
    sf.write(tmp_path / "tone.wav", tone, 16000)
    utterances = [Utterance("AA01", p, tmp_path / p, tmp_path / "list.txt", i + 2)
                  for i, p in enumerate(("cancel.wav", "zeros.wav", "tone.wav"))]
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", "full")
    with caplog.at_level("WARNING"):
        result = Extractor(model, "full", 4, 0, torch.device("cpu")).extract(utterances, tmp_path / "work")
    assert np.isfinite(result.embeddings).all() and not result.failed
    warned = [r.getMessage() for r in caplog.records if "every sample is zero" in r.getMessage()]
    assert [w.split(":")[0] for w in warned] == [str(tmp_path / "cancel.wav"), str(tmp_path / "zeros.wav")]


def test_plan_under_exact_batching_takes_nearby_lengths_up_to_the_padding_bound():
    lengths = [100, 119, 121, 100, 140, 55, -1, 60, 61, 62]
    # sorted (index): 55(5) 60(7) 61(8) 62(9) <= 66 | 100(0) 100(3) 119(1) <= 120 | 121(2) 140(4); -1 left out
    assert plan_batches(lengths, 4, [range(10)], max_padding=0.2) == [[5, 7, 8, 9], [0, 3, 1], [2, 4]]
    # batch_size still bounds a batch (121 <= 1.2 x 119); 0 padding is the equal-length plan
    assert plan_batches(lengths, 2, [range(10)], max_padding=0.2) == [[5, 7], [8, 9], [0, 3], [1, 2], [4]]
    assert plan_batches([50, 61, 60], 4, [range(3)], max_padding=0.2) == [[0, 2], [1]]
    assert plan_batches(lengths, 4, [range(10)], max_padding=0.0) == plan_batches(lengths, 4, [range(10)])


@pytest.mark.parametrize("cap", [None, 12000])
def test_exact_batching_mixes_lengths_and_changes_no_embedding(cap, utterances, tmp_path, aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", "full")

    def run(exact, name):
        extractor = Extractor(model, "full", 8, 0, torch.device("cpu"), exact_batching=exact, max_forward_samples=cap)
        seen = []
        forward = extractor._forward
        extractor._forward = lambda ready, out: (seen.append(sorted(x.shape[-1] for _, x in ready)),
                                                 forward(ready, out))
        result = extractor.extract(utterances, tmp_path / name)
        assert not result.failed
        return result.embeddings, seen

    exact, exact_batches = run(True, "exact")
    equal, equal_batches = run(False, "equal")
    assert all(len(set(b)) == 1 for b in equal_batches)  # only twins share a batch
    mixed = [b for b in exact_batches if len(set(b)) > 1]
    assert mixed and len(exact_batches) < len(equal_batches)
    assert all(b[-1] <= 1.2 * b[0] for b in exact_batches)
    np.testing.assert_allclose(exact, equal, atol=1e-5, rtol=0)
    with torch.inference_mode():  # and each is the utterance alone
        for i in range(len(utterances)):
            wave, _ = load_audio(utterances[i].path)
            np.testing.assert_allclose(exact[i], model(torch.from_numpy(wave)[None])[0][0].numpy(), atol=1e-5, rtol=0)


def test_exact_batching_applies_to_full_with_a_model_that_takes_lengths_only(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", "full")
    assert Extractor(model, "full", 8, 0, "cpu").exact
    assert not Extractor(model, "full", 8, 0, "cpu", exact_batching=False).exact
    assert not Extractor(model, "reference", 8, 0, "cpu").exact and not Extractor(model, "fixed", 8, 0, "cpu").exact
    model.takes_lengths = False  # e.g. a model without `forward(waves, lengths)`
    assert not Extractor(model, "full", 8, 0, "cpu").exact


def test_exact_passes_split_by_the_sample_cap_and_pad_to_their_own_longest(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", "full")
    extractor = Extractor(model, "full", 8, 0, "cpu", max_forward_samples=30000)
    ready = [(0, torch.ones(9000)), (1, torch.ones(5000)), (2, torch.ones(5000)), (3, torch.ones(14000))]
    passes = extractor._passes(ready)
    # shortest first: 5000, 5000, 9000 (3 x 9000 <= 30000; 4 x 14000 > 30000), then 14000
    assert [(rows, tuple(batch.shape), None if n is None else n.tolist()) for rows, batch, n in passes] == [
        ([1, 2, 0], (3, 9000), [5000, 5000, 9000]), ([3], (1, 14000), None)]
    assert passes[0][1][0, 5000:].abs().sum() == 0  # zero padding
