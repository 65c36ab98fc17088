"""The faster inference routes give the plain routes' outputs: the models' optimised forward,
the engine's decoding threads or processes (resampling included), split forward passes, and
reduced precision (bf16 within cosine 0.999 of float32)."""
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

import models
from conftest import REPO, fixture_path
from corpus import make_corpus
from models.aasist import AASIST
from models.resnet34 import ResNet34
from resnet34_seeded import CONFIG as RESNET_CONFIG
from sourcetrace import extraction
from sourcetrace.extraction import Extractor, Utterance

_runs = itertools.count()


@pytest.fixture
def plain_forward(monkeypatch):
    """Run the models' plain layer-by-layer forward inside `with plain_forward():`."""
    class Switch:
        def __enter__(self):
            monkeypatch.setattr(AASIST, "optimized", False)
            monkeypatch.setattr(ResNet34, "optimized", False)

        def __exit__(self, *exc):
            monkeypatch.setattr(AASIST, "optimized", True)
            monkeypatch.setattr(ResNet34, "optimized", True)
    return Switch


def _waves(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [0.1 * torch.randn(n, generator=g) for n in lengths]


@pytest.mark.parametrize("system", ["AASIST_CM", "AASIST_STOPA"])
def test_aasist_optimised_forward_matches_plain(system, aasist_config, plain_forward):
    model = models.load_model(aasist_config, REPO / "models" / f"{system}.pth")
    # the shortest accepted input, odd lengths (pooling remainders), a batch of three
    with torch.inference_mode():
        for batch in [torch.stack(_waves([2315])), torch.stack(_waves([16001])), torch.stack(_waves([40000] * 3))]:
            emb, logits = model(batch)
            with plain_forward():
                emb_ref, logits_ref = model(batch)
            torch.testing.assert_close(emb, emb_ref, rtol=0, atol=1e-5)
            torch.testing.assert_close(logits, logits_ref, rtol=0, atol=1e-5)


def test_aasist_state_dict_is_untouched_by_inference(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():
        model(torch.stack(_waves([20000])))
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    model.load_state_dict(before, strict=True)


def test_training_mode_takes_the_plain_route(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth").train()
    calls = []
    for block in model.modules():
        if hasattr(block, "forward_fast"):
            block.forward_fast = lambda x, calls=calls: calls.append(1)
    model(torch.stack(_waves([8000, 8000])))
    assert not calls


@pytest.mark.parametrize("policy", ["fixed", "full"])
def test_resnet34_optimised_forward_matches_plain(policy, plain_forward, resnet34_checkpoint):
    model = models.load_model(RESNET_CONFIG, resnet34_checkpoint, policy)
    with torch.inference_mode():
        for batch in [torch.stack(_waves([400])), torch.stack(_waves([24000] * 3)), torch.stack(_waves([230000]))]:
            emb, logits = model(batch)
            with plain_forward():
                emb_ref, logits_ref = model(batch)
            # the seeded weights make embeddings of magnitude ~12 (see test_resnet34)
            torch.testing.assert_close(emb, emb_ref, rtol=0, atol=1e-5 * emb_ref.abs().max().item())
            torch.testing.assert_close(logits, logits_ref, rtol=0, atol=1e-5)


def _cosines(model, waves, dtype):
    with torch.inference_mode():
        ref = torch.cat([model(w[None])[0] for w in waves])
        with torch.autocast("cpu", dtype=dtype):
            low = torch.cat([model(w[None])[0].float() for w in waves])
    return F.cosine_similarity(ref, low)


def test_bf16_embeddings_keep_cosine_with_fp32(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth")
    golden = np.load(fixture_path("aasist_golden_outputs.npz"))
    waves = list(torch.from_numpy(golden["inputs"])) + _waves([16000, 48000])
    assert _cosines(model, waves, torch.bfloat16).min() >= 0.999


def test_resnet34_bf16_embeddings_keep_cosine_with_fp32(resnet34_checkpoint):
    model = models.load_model(RESNET_CONFIG, resnet34_checkpoint, "fixed")
    assert _cosines(model, _waves([16000, 48000, 64000]), torch.bfloat16).min() >= 0.999


# ------------------------------------------------------------------ engine


@pytest.fixture(scope="module")
def utterances(tmp_path_factory):
    corpus = make_corpus(tmp_path_factory.mktemp("corpus"), enroll_per_attack=3, trials_per_attack=1,
                         min_s=0.3, max_s=0.9)
    paths = sorted(corpus.database.rglob("*.wav"))[:10]
    return [Utterance("AA01", p.name, p, Path("test"), i) for i, p in enumerate(paths)]


def _extract(utterances, tmp_path, aasist_config, policy="full", **kwargs):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth", policy)
    extractor = Extractor(model, policy, kwargs.pop("batch_size", 4), kwargs.pop("num_workers", 2),
                          torch.device("cpu"), **kwargs)
    result = extractor.extract(utterances, tmp_path / f"work-{next(_runs)}")
    assert not result.failed and np.isfinite(result.embeddings).all()
    return result.embeddings


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["full", "fixed"])
def test_decoding_threads_and_processes_agree(policy, utterances, tmp_path, aasist_config):
    aasist_config["nb_samp"] = 12000
    threads = _extract(utterances, tmp_path, aasist_config, policy, decoder="threads")
    processes = _extract(utterances, tmp_path, aasist_config, policy, decoder="processes")
    np.testing.assert_allclose(processes, threads, atol=1e-5, rtol=0)


def test_cpu_default_is_threads_and_a_forward_sample_limit(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth")
    extractor = Extractor(model, "full", 8, 2, torch.device("cpu"))
    assert extractor.decoder == "threads" and extractor.max_forward_samples == extraction.CPU_FORWARD_SAMPLES


def test_split_forward_passes_change_nothing(utterances, tmp_path, aasist_config):
    aasist_config["nb_samp"] = 12000
    whole = _extract(utterances, tmp_path, aasist_config, "fixed", batch_size=10, max_forward_samples=None)
    split = _extract(utterances, tmp_path, aasist_config, "fixed", batch_size=10, max_forward_samples=25000)
    np.testing.assert_allclose(split, whole, atol=1e-5, rtol=0)


def test_engine_bf16_precision(utterances, tmp_path, aasist_config):
    fp32 = _extract(utterances, tmp_path, aasist_config)
    bf16 = _extract(utterances, tmp_path, aasist_config, precision="bf16")
    cos = (fp32 * bf16).sum(1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() >= 0.999 and np.abs(bf16 - fp32).max() > 0  # it did run in bf16


def test_unknown_precision_is_refused(aasist_config):
    model = models.load_model(aasist_config, REPO / "models" / "AASIST_CM.pth")
    with pytest.raises(extraction.ExtractionError, match="precision"):
        Extractor(model, "full", 1, 0, torch.device("cpu"), precision="int8")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator")
@pytest.mark.parametrize("tuned", [False, True])
def test_tuned_allocator_keeps_freed_feature_maps_in_the_heap(tuned):
    # a freed 256 MiB block: glibc unmaps it (resident memory drops back) unless tuned
    code = f"""
import numpy as np
from sourcetrace.extraction import tune_cpu_allocator
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096
if {tuned}:
    assert tune_cpu_allocator()
block = np.ones(2**28, dtype=np.uint8)
before = rss()
del block
print(before - rss())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    released = int(out.stdout)
    assert (released < 2**24) if tuned else (released > 2**27)


@pytest.mark.slow
def test_other_sample_rates_decode_alike_in_threads_processes_and_inline(tmp_path, aasist_config):
    rng = np.random.default_rng(0)
    paths = []
    for k, (rate, seconds) in enumerate([(22050, 0.5), (16000, 0.4), (8000, 0.6), (44100, 0.3)]):
        paths.append(tmp_path / f"r{k}.flac")
        sf.write(paths[-1], 0.1 * rng.standard_normal(int(rate * seconds)), rate, subtype="PCM_16")
    utts = [Utterance("AA01", p.name, p, Path("test"), i) for i, p in enumerate(paths)]
    inline = _extract(utts, tmp_path, aasist_config, num_workers=0)
    for decoder in ("threads", "processes"):
        np.testing.assert_allclose(_extract(utts, tmp_path, aasist_config, decoder=decoder), inline,
                                   atol=1e-5, rtol=0)
