"""The extraction package: plan, embedding cache, long utterances, disk full,
kill-at-a-chosen-chunk and resume, and torchrun ranks sharing one plan (CPU, gloo)."""
import errno
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import extract_driver
from conftest import REPO
from corpus import make_corpus
from sourcetrace.extraction import EmbeddingCache, ExtractionError, make_plan, share_chunks
from sourcetrace.testhooks import ENV as KILL_AT

DRIVER = str(REPO / "tests" / "extract_driver.py")


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """14 short files (0.3-0.9 s): 4 chunks (4, 4, 4, 2 utterances) in batches of 2 of nearby
    lengths (exact batching; equal-length batches would give chunks of 3, 3, 3, 3, 2)."""
    corpus = make_corpus(tmp_path_factory.mktemp("corpus"), enroll_per_attack=3, trials_per_attack=1,
                         min_s=0.3, max_s=0.9)
    return corpus.database


@pytest.fixture(scope="module")
def one_process(audio, tmp_path_factory):
    """The single-process result, with one intra-op thread as each of 2 ranks on 2 cores has."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for policy in ("full", "fixed"):
            work = tmp_path_factory.mktemp(f"work-{policy}")
            result = extract_driver.extractor(policy).extract(extract_driver.utterances_in(audio), work)
            assert not result.failed and np.isfinite(result.embeddings).all()
            out[policy] = result.embeddings
    finally:
        torch.set_num_threads(threads)
    return out


def run(args, ranks=1, kill_after=None):
    """The driver alone (one thread, like each rank here) or under torchrun with `ranks` ranks."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if kill_after:
        env[KILL_AT] = f"chunk-{kill_after}"
    launcher = [sys.executable] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
    return subprocess.run(launcher + [DRIVER, *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO)


def chunk_files(work):
    return sorted(work.glob("chunk_*.npz"))


# ------------------------------------------------------------------ plan


def test_chunks_are_shared_by_audio_length_heaviest_first_to_the_least_loaded_rank():
    weights = [10, 1, 7, 3, 3]
    # 0 (10) -> rank 0; 2 (7) -> rank 1; 3 (3) -> rank 1 (7 < 10); 4 (3) -> rank 0 (tie 10 = 10); 1 -> rank 1
    assert share_chunks([0, 1, 2, 3, 4], weights, 2) == [[0, 4], [1, 2, 3]]
    assert share_chunks([0, 1, 2, 3, 4], weights, 1) == [[0, 1, 2, 3, 4]]
    assert share_chunks([1, 3], weights, 3) == [[3], [1], []]  # only pending chunks are shared


def test_utterances_longer_than_max_seconds_fail_before_decoding_except_under_fixed(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 16000)  # 0.5 s
    sf.write(tmp_path / "b.wav", np.zeros(40000, np.float32), 16000)  # 2.5 s
    utterances = extract_driver.utterances_in(tmp_path)
    model = extract_driver.extractor("full").model
    message = f"{tmp_path / 'list.txt'}:3: {tmp_path / 'b.wav'}: 2.5 s of audio, longer than max_seconds (2 s)"
    for policy in ("full", "reference"):
        with pytest.raises(ExtractionError, match="^" + message.replace(".", r"\.").replace("(", r"\(")
                           .replace(")", r"\)")):
            make_plan(utterances, model, policy, 4, 4, [range(2)], "fail", max_seconds=2)
        plan = make_plan(utterances, model, policy, 4, 4, [range(2)], "skip", max_seconds=2)
        assert list(plan.failed) == [1] and plan.chunks == [[[0]]]
    plan = make_plan(utterances, extract_driver.extractor("fixed").model, "fixed", 4, 4, [range(2)], "fail", 2)
    assert plan.failed == {} and plan.chunks == [[[0, 1]]]


# ------------------------------------------------------------------ embedding cache


def test_a_full_disk_says_so_and_that_the_run_resumes(tmp_path, monkeypatch):
    cache = EmbeddingCache(tmp_path / "work")
    cache.prepare()
    cache.write(["a", "b"], np.ones((2, 3), np.float32), {})

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(np, "savez", no_space)
    with pytest.raises(ExtractionError) as caught:
        cache.write(["c"], np.ones((1, 3), np.float32), {})
    assert str(caught.value) == (f"{tmp_path / 'work'}: disk full while writing extraction work; free some "
                                 f"space and run again: it resumes from the 1 finished chunk(s); the previous outputs are unchanged")
    assert [p.name for p in cache.work.iterdir()] == [p.name for p in chunk_files(cache.work)]  # no .part left


def test_a_chunk_that_does_not_match_its_name_is_discarded_not_trusted(tmp_path, caplog):
    cache = EmbeddingCache(tmp_path / "work")
    cache.prepare()
    good = cache.write(["a", "b"], np.array([[1, 2], [3, 4]], np.float32), {})
    other = cache.write(["c"], np.array([[5, 6]], np.float32), {})
    other.rename(other.with_name(good.name.replace(good.name[6:10], "0000")))  # its members say otherwise
    (tmp_path / "work" / "chunk_" f"{'1' * 24}.npz").write_bytes(b"half a zip")
    embeddings, failures = cache.load(2)
    assert sorted(embeddings) == ["a", "b"] and failures == {}
    assert embeddings["b"].tolist() == [3, 4]
    assert [p.name for p in chunk_files(cache.work)] == [good.name]
    assert caplog.text.count("discarded, its utterances are extracted again") == 2
    assert cache.load(3) == ({}, {}) and chunk_files(cache.work) == []  # another embedding size: discarded


def test_the_cache_drops_stale_entries_once_they_outnumber_a_tenth_of_those_in_use(tmp_path):
    cache = EmbeddingCache(tmp_path / "work")
    cache.prepare()
    cache.write(["a", "b"], np.array([[1, 2], [3, 4]], np.float32), {})
    cache.write(["c", "d"], np.array([[5, 6], [np.nan, np.nan]], np.float32), {1: "unreadable"})
    cache.compact({"a", "b", "c", "d"}, *cache.load(2), 2)  # nothing stale: left as it is
    assert len(chunk_files(cache.work)) == 2
    cache.compact({"b", "d"}, *cache.load(2), 2)  # "a" and "c" are stale
    embeddings, failures = cache.load(2)
    assert len(chunk_files(cache.work)) == 1
    assert {k: v.tolist() for k, v in embeddings.items()} == {"b": [3, 4]} and failures == {"d": "unreadable"}


def test_the_cache_keeps_embeddings_by_audio_and_reuses_them(audio, one_process, tmp_path, caplog):
    """A second run computes nothing; a rewritten file (new size and time) is extracted again."""
    shutil.copytree(audio, tmp_path / "db")
    utterances = extract_driver.utterances_in(tmp_path / "db")
    torch.set_num_threads(1)
    try:
        first = extract_driver.extractor("full").extract(utterances, tmp_path / "work")
        files = chunk_files(tmp_path / "work")
        caplog.clear()
        with caplog.at_level("INFO"):
            again = extract_driver.extractor("full").extract(utterances, tmp_path / "work")
        assert f"{len(utterances)} utterance(s) already embedded" in caplog.text
        assert chunk_files(tmp_path / "work") == files and again.embeddings.tobytes() == first.embeddings.tobytes()
        # utterance 4 replaced by utterance 0's audio in place: its row must follow, nothing else recomputed
        shutil.copyfile(utterances[0].path, utterances[4].path)
        changed = extract_driver.extractor("full").extract(utterances, tmp_path / "work")
    finally:
        torch.set_num_threads(2)
    assert first.embeddings.tobytes() == one_process["full"].tobytes()
    np.testing.assert_allclose(changed.embeddings[4], first.embeddings[0], atol=1e-5, rtol=0)  # batch may differ
    assert np.abs(changed.embeddings[4] - first.embeddings[4]).max() > 1e-2
    others = [i for i in range(len(utterances)) if i != 4]
    # the others are reused, or recomputed with it where they share its new batch (same values)
    np.testing.assert_allclose(changed.embeddings[others], first.embeddings[others], atol=1e-5, rtol=0)
    assert len(chunk_files(tmp_path / "work")) == len(files) + 1  # one new chunk: its batch


def test_the_engine_removes_what_a_killed_writer_left(audio, one_process, tmp_path):
    stale = tmp_path / "work" / ".chunk_x.npz.abc.part"  # as a killed writer leaves it
    stale.parent.mkdir()
    stale.write_bytes(b"half")
    torch.set_num_threads(1)
    try:
        result = extract_driver.extractor("full").extract(extract_driver.utterances_in(audio), tmp_path / "work")
    finally:
        torch.set_num_threads(2)
    assert result.embeddings.tobytes() == one_process["full"].tobytes()
    assert not stale.exists() and len(chunk_files(tmp_path / "work")) == 4


# ------------------------------------------------------------------ kill and resume, ranks


@pytest.mark.slow
def test_killed_at_a_chosen_chunk_resumes_with_two_ranks_to_the_same_bytes(audio, one_process, tmp_path):
    args = [audio, tmp_path / "work", tmp_path / "out.npz"]
    killed = run(args, kill_after=2)
    assert killed.returncode == -9 and len(chunk_files(tmp_path / "work")) == 2
    assert not (tmp_path / "out.npz").exists()
    resumed = run(args, ranks=2)
    assert resumed.returncode == 0, resumed.stderr
    assert "8 utterance(s) already embedded" in resumed.stderr
    assert np.load(tmp_path / "out.npz")["embeddings"].tobytes() == one_process["full"].tobytes()
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["full", "fixed"])
def test_two_ranks_give_the_bytes_of_one_process(policy, audio, one_process, tmp_path):
    done = run([audio, tmp_path / "work", tmp_path / "out.npz", "--policy", policy], ranks=2)
    assert done.returncode == 0, done.stderr
    assert "chunk(s) to extract, shared among 2 ranks" in done.stderr
    result = np.load(tmp_path / "out.npz")
    assert result["embeddings"].tobytes() == one_process[policy].tobytes() and json.loads(str(result["failed"])) == {}


@pytest.mark.slow
def test_killed_ranks_resume_in_one_process_to_the_same_bytes(audio, one_process, tmp_path):
    args = [audio, tmp_path / "work", tmp_path / "out.npz"]
    killed = run(args, ranks=2, kill_after=1)
    written = len(chunk_files(tmp_path / "work"))
    assert killed.returncode != 0 and 1 <= written < 4 and not (tmp_path / "out.npz").exists()
    resumed = run(args)
    assert resumed.returncode == 0 and "already embedded" in resumed.stderr
    assert np.load(tmp_path / "out.npz")["embeddings"].tobytes() == one_process["full"].tobytes()


@pytest.mark.slow
def test_a_failing_rank_stops_the_run_with_its_message(audio, tmp_path):
    shutil.copytree(audio, tmp_path / "db")
    bad = sorted((tmp_path / "db").rglob("*.wav"))[5]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])  # header intact (planning passes), audio cut: decoding fails
    done = run([tmp_path / "db", tmp_path / "work", tmp_path / "out.npz"], ranks=2)
    assert done.returncode != 0 and not (tmp_path / "out.npz").exists()
    assert f"error: {tmp_path / 'db' / 'list.txt'}:7: {bad}: truncated WAV" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["full", "fixed"])
def test_stage_scripts_under_torchrun_give_the_bytes_of_one_process(policy, tmp_path):
    from test_reliability import SCRIPTS, make
    make(tmp_path)
    settings = ["--set", f"input_policy={policy}", "--set", "model_config.nb_samp=12000", "--set", "chunk_size=3"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one intra-op thread, as each of 2 ranks on 2 cores
    for ranks, folder in ((1, "one"), (2, "two")):
        launcher = [sys.executable] if ranks == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
        for number in (1, 3):
            done = subprocess.run(launcher + [str(REPO / SCRIPTS[number]), "--config", str(tmp_path / "sys.conf"),
                                              *settings, "--set", f"output_dir={tmp_path / folder}"],
                                  capture_output=True, text=True, env=env)
            assert done.returncode == 0, done.stderr
    outputs = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*")
                     if p.suffix in (".npy", ".tsv") and p.parent.name != "AASIST_CM_records")
    assert len(outputs) == 2 * 15 + 2  # 15 fingerprint matrices and the trial matrix, each with its ids
    for name in outputs:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    record = json.loads((tmp_path / "two" / "AASIST_CM_records" / "stage3.json").read_text())
    assert record["world_size"] == 2
    # the embedding cache stays, one folder per stage, named by the digest of what an embedding depends on
    assert sorted(p.name for p in (tmp_path / "two" / ".AASIST_CM_work").iterdir()) == ["stage1", "stage3"]
