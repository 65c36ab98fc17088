"""The CUDA code paths that a CPU can check: the one-line out-of-memory error, TF32 off under
fp32, the torchrun GPU-count and explicit-index checks, the /dev/shm fallback to threads, the
order in which in-flight GPU batches come back (with synchronous fakes of pinning, the
device copy and the CUDA event), and passes split in two on running out of GPU memory."""
import logging
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO
from corpus import make_corpus
from sourcetrace import cli, ranks
from sourcetrace.errors import StageError
from sourcetrace.extraction import Extractor, Utterance
from sourcetrace.extraction import decode
from sourcetrace.registry import STAGES


class SumModel(torch.nn.Module):
    """Embedding (sum of the row's samples, its true length): easy to check, takes lengths."""

    embedding_dim, min_samples, takes_lengths = 2, 1, True

    def __init__(self, oom_above: int | None = None):
        super().__init__()
        self.oom_above = oom_above  # raise torch.OutOfMemoryError on passes of more rows
        self.pass_rows: list[int] = []

    def fit_input(self, wave):
        return wave

    def forward(self, x, lengths=None):
        if self.oom_above is not None and x.shape[0] > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        self.pass_rows.append(x.shape[0])
        n = torch.full((x.shape[0],), float(x.shape[1])) if lengths is None else lengths.float()
        return torch.stack([x.sum(1), n], dim=1), None


def test_gpu_out_of_memory_is_one_line(monkeypatch, capsys):
    monkeypatch.chdir(REPO)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)\nmore")
    monkeypatch.setattr("sourcetrace.runner.run_stage", oom)
    assert cli.run(STAGES[1], ["--config", "config/demo.conf", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: stage 1 (fingerprint_embedding_extraction.py) ran out of GPU memory (CUDA out of memory. "
                   "Tried to allocate 20.00 GiB (GPU 0; 79.1 GiB total)); lower batch_size or max_seconds\n")

    def other(*args, **kwargs):
        raise RuntimeError("a bug, not memory")
    monkeypatch.setattr("sourcetrace.runner.run_stage", other)
    with pytest.raises(RuntimeError, match="a bug"):  # anything else keeps its traceback
        cli.run(STAGES[1], ["--config", "config/demo.conf", "--device", "cpu"])


@pytest.fixture
def tf32_restored():
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_fp32_on_cuda_turns_tf32_off_and_reduced_precisions_leave_it(tf32_restored):
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
    Extractor(SumModel(), "full", 8, 0, "cuda", precision="bf16", decoder="threads")
    assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    Extractor(SumModel(), "full", 8, 0, "cpu")
    assert torch.backends.cudnn.allow_tf32
    Extractor(SumModel(), "full", 8, 0, "cuda", decoder="threads")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32


@pytest.fixture
def two_ranks(monkeypatch):
    for key, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)


def test_torchrun_with_more_ranks_than_gpus_says_so(two_ranks, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda *a: pytest.fail("set_device reached"))
    with pytest.raises(StageError, match=r"started 2 processes on this machine, which has 1 GPU\(s\): at most "
                                         r"one rank per GPU \(--nproc_per_node=1\)"):
        ranks.init_world("cuda")


def test_torchrun_refuses_an_explicit_gpu_index(two_ranks):
    with pytest.raises(StageError, match="device cuda:1 under torchrun would put every rank on that one GPU"):
        ranks.init_world("cuda:1")


def test_small_dev_shm_decodes_in_threads(monkeypatch, caplog):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(decode.shutil, "disk_usage", lambda path: usage(64 << 20, 0, 64 << 20))
    with caplog.at_level(logging.WARNING):
        assert Extractor(SumModel(), "full", 8, 2, "cuda").decoder == "threads"
    assert "/dev/shm holds only 64 MB" in caplog.text
    assert Extractor(SumModel(), "full", 8, 2, "cuda", decoder="processes").decoder == "processes"  # as asked
    monkeypatch.setattr(decode.shutil, "disk_usage", lambda path: usage(8 << 30, 0, 8 << 30))
    assert Extractor(SumModel(), "full", 8, 2, "cuda").decoder == "processes"


class FakeEvent:
    """A CUDA event whose `synchronize` records which pass's copy was waited for."""

    def __init__(self, log, tag):
        self.log, self.tag = log, tag

    def synchronize(self):
        self.log.append(self.tag)


def _fake_cuda(extractor, model, waited):
    """The three CUDA calls of a GPU pass, made synchronous on the CPU: pinning and the copy to
    the device (`_embed`), and the pinned copy back with its event (`_copy_back`)."""
    extractor._embed = lambda batch, lengths: model(batch, lengths)[0]
    extractor._copy_back = lambda embedding: (embedding.clone(), FakeEvent(waited, len(waited) + 100))


def test_in_flight_batches_come_back_in_order_two_behind():
    model, waited = SumModel(), []
    extractor = Extractor(model, "full", 8, 0, "cuda", decoder="threads")
    tags = []
    extractor._embed = lambda batch, lengths: model(batch, lengths)[0]

    def copy_back(embedding):
        tags.append(len(tags))
        return embedding.clone(), FakeEvent(waited, tags[-1])
    extractor._copy_back = copy_back
    out = np.full((4, 2), np.nan, dtype=np.float32)
    # a pass is waited for once the pass after the next is queued: the GPU always has work
    extractor._forward([(0, torch.ones(10)), (1, torch.ones(11))], out)
    extractor._forward([(2, torch.ones(30))], out)
    assert waited == [] and np.isnan(out).all() and len(extractor._inflight) == 2
    extractor._forward([(3, torch.ones(40))], out)
    assert waited == [0] and out[:2].tolist() == [[10, 10], [11, 11]] and np.isnan(out[2:]).all()
    extractor._collect(out)  # as at the end of every chunk
    assert waited == [0, 1, 2] and out[2:].tolist() == [[30, 30], [40, 40]] and not extractor._inflight


def test_an_extraction_on_fake_cuda_gives_the_cpu_embeddings(tmp_path):
    corpus = make_corpus(tmp_path, enroll_per_attack=3, trials_per_attack=1, min_s=0.3, max_s=0.9)
    paths = sorted(Path(corpus.database).rglob("*.wav"))
    utterances = [Utterance("AA01", p.name, p, Path("test"), i) for i, p in enumerate(paths)]
    on_cpu = Extractor(SumModel(), "full", 3, 0, "cpu", chunk_size=4).extract(utterances, tmp_path / "cpu")
    model, waited = SumModel(), []
    extractor = Extractor(model, "full", 3, 0, "cuda", chunk_size=4, decoder="threads")
    _fake_cuda(extractor, model, waited)
    on_gpu = extractor.extract(utterances, tmp_path / "gpu")
    assert len(waited) == len(model.pass_rows) > 1  # every pass waited for, once
    np.testing.assert_array_equal(on_gpu.embeddings, on_cpu.embeddings)
    assert not np.isnan(on_gpu.embeddings).any()


def test_out_of_gpu_memory_splits_the_pass_and_caps_later_ones(caplog):
    model = SumModel(oom_above=2)
    extractor = Extractor(model, "full", 8, 0, "cpu", max_forward_samples=None)
    ready = [(i, torch.full((100 + i,), 1.0)) for i in range(5)]
    out = np.zeros((5, 2), dtype=np.float32)
    with caplog.at_level(logging.WARNING):
        extractor._forward(ready, out)
    assert out[:, 0].tolist() == [100, 101, 102, 103, 104] and out[:, 1].tolist() == out[:, 0].tolist()
    assert model.pass_rows == [2, 1, 2]  # 5 -> 2 + 3 -> 2 + (1 + 2)
    assert extractor.max_forward_samples == 3 * 104 // 2 and "out of CPU memory on a pass of 5 inputs" in caplog.text
    model.pass_rows.clear()
    extractor._forward(ready, out)  # later passes are sized by the new cap up front
    assert model.pass_rows == [1, 1, 1, 1, 1]
    single = SumModel(oom_above=0)
    with pytest.raises(torch.OutOfMemoryError):  # one utterance that does not fit is an error
        Extractor(single, "full", 8, 0, "cpu")._forward([(0, torch.ones(5))], out)


def test_resnet34_filterbank_runs_outside_autocast(resnet34_checkpoint, monkeypatch):
    """In float16 (CUDA autocast casts its matrix products) the power spectrum overflows."""
    import models
    from resnet34_seeded import CONFIG
    model = models.load_model(CONFIG, resnet34_checkpoint, "full")
    seen = []
    frontend = model.frontend.forward
    monkeypatch.setattr(model.frontend, "forward",
                        lambda wave: (seen.append((torch.is_autocast_enabled("cpu"), wave.dtype)), frontend(wave))[1])
    x = 0.5 * torch.randn(2, 4000)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
        model(x, torch.tensor([4000, 3000]))
    assert seen == [(False, torch.float32)] * 4


def test_resume_on_a_machine_with_fewer_gpus_restores_the_first_ones(monkeypatch):
    from sourcetrace.training import checkpoints
    state = checkpoints.rng_state()
    state["cuda"] = [torch.zeros(8, dtype=torch.uint8), torch.ones(8, dtype=torch.uint8)]  # saved on 2 GPUs
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda s, device: restored.append((s.sum().item(), device)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: pytest.fail("would fail on 1 GPU"))
    checkpoints.set_rng_state(state)
    assert restored == [(0, 0)]
