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
