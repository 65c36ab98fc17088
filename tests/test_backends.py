"""Score back-ends (`sourcetrace.scoring`): hand-worked values and an independent per-pair computation."""
import math
import statistics

import numpy as np
import pytest

from sourcetrace.metrics import compute_eer
from sourcetrace.scoring import Enrollment, asnorm, centered, knn, score_matrix, similarity

R = 1 / math.sqrt(2)


def cos(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
    return 0.0 if na == 0 or nb == 0 else float(a @ b) / (na * nb)


def test_centered_by_hand():
    cohort = np.array([[1.0, 0.0], [3.0, 0.0]])  # mean (2, 0)
    f = np.array([[2.0, 1.0]])  # f - mu = (0, 1)
    t = np.array([[2.0, -1.0], [2.0, 3.0], [3.0, 1.0]])  # (0, -1), (0, 3), (1, 1)
    np.testing.assert_allclose(centered(f, t, cohort)[:, 0], [-1.0, 1.0, R], rtol=1e-7)


def test_asnorm_by_hand():
    f = np.array([[1.0, 0.0]])
    cohort = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    attacks = np.array(["A", "B", "B"])  # f is A's: its cohort is the two B rows
    t = np.array([[1.0, 1.0]])
    # s = R; cos(f, C) = 0, R -> mu_e = sd_e = R/2; cos(t, C) = R, 1 -> mu_t = (R+1)/2, sd_t = (1-R)/2
    # ((R - R/2) / (R/2) + (R - (R+1)/2) / ((1-R)/2)) / 2 = (1 - 1) / 2 = 0
    assert asnorm(f, ["A"], t, cohort, attacks, top_n=2)[0, 0] == pytest.approx(0.0, abs=1e-6)
    # top 1: mu_e = R, mu_t = 1, both standard deviations 0 (taken as 1): ((R - R) + (R - 1)) / 2
    assert asnorm(f, ["A"], t, cohort, attacks, top_n=1)[0, 0] == pytest.approx((R - 1) / 2, abs=1e-7)
    # more than the cohort: all of it, the same as top 2
    assert asnorm(f, ["A"], t, cohort, attacks, top_n=100)[0, 0] == pytest.approx(0.0, abs=1e-6)


def test_knn_by_hand():
    members = [np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), np.array([[0.0, 2.0]])]
    t = np.array([[1.0, 0.0], [0.0, 1.0]])
    # t0: cosines 1, 0, R to the first; 0 to the second.  t1: 0, 1, R; 1
    np.testing.assert_allclose(knn(members, t, k=2), [[(1 + R) / 2, 0.0], [(1 + R) / 2, 1.0]], rtol=1e-7)
    np.testing.assert_allclose(knn(members, t, k=5), [[(1 + R) / 3, 0.0], [(1 + R) / 3, 1.0]], rtol=1e-7)
    np.testing.assert_allclose(knn(members, t, k=1), [[1.0, 0.0], [1.0, 1.0]], rtol=1e-7)


def reference_asnorm(fps, fp_attacks, trials, cohort, cohort_attacks, top_n):
    """Per pair, with Python's statistics: the AS-norm formula as written in the issue."""
    out = np.zeros((len(trials), len(fps)))
    for j, (f, a) in enumerate(zip(fps, fp_attacks)):
        c_f = [c for c, b in zip(cohort, cohort_attacks) if b != a]
        e_top = sorted((cos(f, c) for c in c_f), reverse=True)[:top_n]
        mu_e, sd_e = statistics.fmean(e_top), statistics.pstdev(e_top) or 1.0
        for i, t in enumerate(trials):
            t_top = sorted((cos(t, c) for c in c_f), reverse=True)[:top_n]
            mu_t, sd_t = statistics.fmean(t_top), statistics.pstdev(t_top) or 1.0
            s = cos(t, f)
            out[i, j] = ((s - mu_e) / sd_e + (s - mu_t) / sd_t) / 2
    return out


@pytest.mark.parametrize("seed,shared", [(0, "nested"), (1, "overlapping"), (2, "scattered")])
def test_backends_equal_a_per_pair_computation(seed, shared):
    rng = np.random.default_rng(seed)
    dim = 6
    members = [rng.standard_normal((n, dim)).astype(np.float32) + 0.5 for n in (1, 3, 7, 2)]
    members.append(members[2][:4].copy())  # a fingerprint sharing utterances with another
    fp_attacks = ["A", "A", "B", "C", "B"]
    if shared == "overlapping":  # neither nested nor disjoint, and not a contiguous run
        members += [members[2][2:6].copy(), members[2][::2].copy()]
        fp_attacks += ["B", "B"]
    if shared == "scattered":  # nested runs and one that is not a run
        members += [members[2][::2].copy()]
        fp_attacks += ["B"]
    fps = np.stack([m.astype(np.float64).mean(axis=0) for m in members]).astype(np.float32)
    cohort = rng.standard_normal((9, dim)).astype(np.float32)
    cohort_attacks = np.array(["A", "B", "C"] * 3)
    trials = rng.standard_normal((23, dim)).astype(np.float32)
    trials[3] = 0  # zero norm: cosine 0
    expected_cos = np.array([[cos(t, f) for f in fps] for t in trials])
    np.testing.assert_allclose(score_matrix("cosine", fps, trials), expected_cos, atol=1e-6)
    assert np.array_equal(score_matrix("cosine", fps, trials), similarity(fps, trials))
    mu = cohort.astype(np.float64).mean(axis=0)
    expected = np.array([[cos(t - mu, f - mu) for f in fps] for t in trials])
    np.testing.assert_allclose(centered(fps, trials, cohort, block=5), expected, atol=1e-6)
    for top_n in (1, 2, 4, 100):
        np.testing.assert_allclose(asnorm(fps, fp_attacks, trials, cohort, cohort_attacks, top_n, block=5),
                                   reference_asnorm(fps, fp_attacks, trials, cohort, cohort_attacks, top_n),
                                   rtol=1e-5, atol=1e-5)
    for k in (1, 3, 5, 10):
        expected = np.array([[statistics.fmean(sorted((cos(t, e) for e in m), reverse=True)[:k]) for m in members]
                             for t in trials])
        np.testing.assert_allclose(knn(members, trials, k, block=4), expected, atol=1e-6)
    enrollment = Enrollment(cohort, cohort_attacks, members, fp_attacks)
    for name, direct in (("centered", centered(fps, trials, cohort)),
                         ("asnorm", asnorm(fps, fp_attacks, trials, cohort, cohort_attacks, 3)),
                         ("knn", knn(members, trials, 2))):
        got = score_matrix(name, fps, trials, enrollment, asnorm_top_n=3, knn_k=2)
        assert got.dtype == np.float32 and np.array_equal(got, direct)


def test_backend_errors():
    f, t = np.ones((1, 2)), np.ones((1, 2))
    with pytest.raises(ValueError, match="no cohort for the fingerprints of A"):
        asnorm(f, ["A"], t, np.ones((2, 2)), np.array(["A", "A"]))
    with pytest.raises(ValueError, match="no enrollment embeddings"):
        knn([np.zeros((0, 2))], t)
    with pytest.raises(ValueError, match="cohort is empty"):
        centered(f, t, np.zeros((0, 2)))
    with pytest.raises(ValueError, match="needs the enrollment embeddings"):
        score_matrix("knn", f, t)
    with pytest.raises(ValueError, match="backend must be one of"):
        score_matrix("plda", f, t, Enrollment(f, np.array(["A"]), [f], ["A"]))


# ------------------------------------------------------------------ stages 4 and 5 with each back-end

def read_csv_rows(path):
    import csv
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def stage_outputs(out):
    """The stage 1-3 outputs as a reader independent of the toolkit's readers sees them."""
    lines = (out / "AASIST_CM_fingerprint_avg_emb.csv").read_text().split("\n")[1:-1]
    fps = {line.split(",")[0]: np.array(line.split(",")[1:], dtype=np.float32) for line in lines}
    ids = (out / "AASIST_CM_protocol_trials.ids.tsv").read_text().split("\n")[1:-1]
    trials = dict(zip(ids, np.load(out / "AASIST_CM_protocol_trials.npy")))
    members = {}
    for fp in fps:
        keys = (out / "AASIST_CM_embeddings" / f"{fp}.ids.tsv").read_text().split("\n")[1:-1]
        members[fp] = list(zip(keys, np.load(out / "AASIST_CM_embeddings" / f"{fp}.npy")))
    return fps, trials, members


@pytest.mark.parametrize("backend", ["centered", "asnorm", "knn"])
def test_stage4_scores_equal_an_independent_computation(backend, tmp_path, capsys, tmp_path_factory):
    from corpus import KNOWN
    from stagerun import completed, stage
    completed(tmp_path, tmp_path_factory)
    out = tmp_path / "out"
    cosine_csv = (out / "AASIST_CM_evaluation.csv").read_bytes()
    args = ["--set", f"backend={backend}", "--set", "asnorm_top_n=2", "--set", "knn_k=2", "-q"]
    assert stage(tmp_path, 4, *args) == 0, capsys.readouterr().err
    assert stage(tmp_path, 5, *args) == 0, capsys.readouterr().err
    fps, trials, members = stage_outputs(out)
    cohort, seen = [], set()
    for fp in fps:  # distinct known-attack enrollment utterances, first row of each
        for key, e in members[fp]:
            if key.split("\t")[0] in KNOWN and key not in seen:
                seen.add(key)
                cohort.append((key.split("\t")[0], e))
    mu = np.mean([e.astype(np.float64) for _, e in cohort], axis=0)
    rows = read_csv_rows(out / "AASIST_CM_evaluation.csv")
    assert "Score" in rows[0] and "CosScore" not in rows[0]
    for row in rows:
        fp, t = row["AbstractModel"], trials[f"{row['ATK']}\t{row['FileName']}"]
        f, attack = fps[fp], fp.split("-")[0]
        if backend == "centered":
            expected = cos(t - mu, f - mu)
        elif backend == "knn":
            expected = statistics.fmean(sorted((cos(t, e) for _, e in members[fp]), reverse=True)[:2])
        else:
            others = [e for a, e in cohort if a != attack]
            e_top = sorted((cos(f, c) for c in others), reverse=True)[:2]
            t_top = sorted((cos(t, c) for c in others), reverse=True)[:2]
            s = cos(t, f)
            expected = ((s - statistics.fmean(e_top)) / (statistics.pstdev(e_top) or 1.0)
                        + (s - statistics.fmean(t_top)) / (statistics.pstdev(t_top) or 1.0)) / 2
        assert float(row["Score"]) == pytest.approx(expected, rel=1e-5, abs=1e-5), row
    # the system's cosine run comes back byte for byte
    assert stage(tmp_path, 4, "-q") == 0
    assert (out / "AASIST_CM_evaluation.csv").read_bytes() == cosine_csv


def test_stage5_attribution_and_detection_equal_scikit_learn(tmp_path, capsys, tmp_path_factory):
    """attribution.csv and unknown_detection.csv recomputed from the evaluation CSV (knn scores)."""
    from sklearn.metrics import f1_score, roc_auc_score
    from corpus import ATTACKS, KNOWN
    from stagerun import completed, stage
    completed(tmp_path, tmp_path_factory)
    out = tmp_path / "out"
    args = ["--set", "backend=knn", "-q"]
    assert stage(tmp_path, 4, *args) == 0 and stage(tmp_path, 5, *args) == 0, capsys.readouterr().err
    scores = {}  # (condition, size) -> utterance -> {fingerprint: score}
    for row in read_csv_rows(out / "AASIST_CM_evaluation.csv"):
        attack, condition, size = row["AbstractModel"].split("-")
        scores.setdefault((condition, size), {}).setdefault((row["ATK"], row["FileName"]), {})[row["AbstractModel"]] = \
            float(np.float32(row["Score"]))
    label_of = {"ATK": lambda a: a, "AcousticModel": lambda a: ATTACKS[a][0], "VocoderModel": lambda a: ATTACKS[a][1]}
    attribution = {(r["condition"], r["enroll_size"], r["label"]): r
                   for r in read_csv_rows(out / "AASIST_CM_EERs_pooled" / "attribution.csv")}
    detection = {(r["condition"], r["enroll_size"]): r
                 for r in read_csv_rows(out / "AASIST_CM_EERs_pooled" / "unknown_detection.csv")}
    assert list(detection)[0] == ("pooled", "pooled") and len(detection) == len(scores) + 1
    per_group = {}  # group -> (true attack, predicted attack, known, detection score) per trial
    for group, utterances in scores.items():
        trials = []
        for (attack, _), by_fp in utterances.items():
            names = sorted(by_fp)
            best = max(names, key=lambda n: (by_fp[n], -names.index(n)))  # ties: first in sorted order
            trials.append((attack, best.split("-")[0], attack in KNOWN, by_fp[best]))
        per_group[group] = trials
    per_group = {("pooled", "pooled"): [t for trials in per_group.values() for t in trials], **per_group}
    for group, trials in per_group.items():
        true, predicted, known, det = (np.array(column) for column in zip(*trials))
        for label, of in label_of.items():
            row = attribution[(*group, label)]
            y = [of(a) for a in true[known]]
            p = [of(a) for a in predicted[known]]
            assert int(row["n_trials"]) == len(y)
            assert float(row["accuracy"]) == pytest.approx(np.mean(np.array(y) == np.array(p)), abs=1e-12)
            assert float(row["macro_f1"]) == pytest.approx(f1_score(y, p, average="macro"), abs=1e-12)
        row = detection[group]
        assert (int(row["n_known"]), int(row["n_unknown"])) == (known.sum(), (~known).sum())
        assert float(row["auroc"]) == pytest.approx(roc_auc_score(known, det), abs=1e-12)
        eer, threshold = compute_eer(det[known], det[~known])
        assert float(row["eer"]) == pytest.approx(100 * eer) and float(row["eer_threshold"]) == threshold
    for name in ("attribution_confusion.png", "unknown_detection.png"):
        assert (out / "AASIST_CM_EERs_pooled" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_leaves_the_system_outputs_alone(tmp_path, capsys, tmp_path_factory):
    """Every back-end's outputs in their own area, equal to the stages' own run with that back-end."""
    import hashlib
    from sourcetrace import compare
    from stagerun import completed, stage
    completed(tmp_path, tmp_path_factory)
    out = tmp_path / "out"

    def digests():
        return {p.relative_to(out): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*")) if p.is_file() and "_compare" not in str(p)}

    before = digests()
    assert compare.main(["--config", str(tmp_path / "sys.conf"), "--backends", "cosine,knn", "-q"]) == 0
    printed = capsys.readouterr().out
    assert digests() == before
    area = out / "AASIST_CM_compare"
    rows = {r["backend"]: r for r in read_csv_rows(area / "comparison.csv")}
    assert list(rows) == ["cosine", "knn"] and "knn " in printed
    for backend in ("cosine", "knn"):
        assert stage(tmp_path, 4, "--set", f"backend={backend}", "-q") == 0
        assert stage(tmp_path, 5, "--set", f"backend={backend}", "-q") == 0
        capsys.readouterr()
        for name in ("AASIST_CM_evaluation.csv", "AASIST_CM_EERs_pooled/metrics.csv",
                     "AASIST_CM_EERs_pooled/attribution.csv", "AASIST_CM_EERs_pooled/unknown_detection.csv"):
            assert (area / backend / name).read_bytes() == (out / name).read_bytes(), (backend, name)
        pooled = {(r["scenario"], r["label"]): r["eer"] for r in read_csv_rows(out / "AASIST_CM_EERs_pooled/metrics.csv")
                  if r["condition"] == "pooled"}
        assert float(rows[backend]["known_VM"]) == float(pooled[("known", "VocoderModel")])
        assert float(rows[backend]["unknown_ATK"]) == float(pooled[("unknown", "ATK")])
    assert compare.main(["--config", str(tmp_path / "sys.conf"), "--backends", "cosine,plda"]) == 2
    assert "error: --backends 'cosine,plda': each must be one of" in capsys.readouterr().err


def test_stage5_reads_the_same_attribution_from_the_csv(tmp_path, capsys, tmp_path_factory):
    """A CSV made elsewhere (no Arrow copy, utterances from ATK and FileName) gives the same files."""
    import shutil
    from stagerun import completed, stage
    completed(tmp_path, tmp_path_factory)
    out, external = tmp_path / "out", tmp_path / "elsewhere"
    assert stage(tmp_path, 4, "--set", "backend=asnorm", "-q") == 0 and stage(tmp_path, 5, "-q", "--set",
                                                                               "backend=asnorm") == 0
    external.mkdir()
    shutil.copy(out / "AASIST_CM_evaluation.csv", external)
    assert stage(tmp_path, 5, "--set", f"output_dir={external}", "-q") == 0, capsys.readouterr().err
    for name in ("attribution.csv", "unknown_detection.csv", "metrics.csv"):
        assert (external / "AASIST_CM_EERs_pooled" / name).read_text() == \
            (out / "AASIST_CM_EERs_pooled" / name).read_text(), name


@pytest.mark.parametrize("override,expected", [
    ("backend=plda", "'backend' is 'plda'; expected one of cosine, centered, asnorm, knn"),
    ("knn_k=0", "'knn_k' is 0; expected an integer >= 1"),
    ("asnorm_top_n=true", "'asnorm_top_n' is True; expected an integer >= 1"),
])
def test_backend_keys_are_checked(override, expected):
    from conftest import REPO
    from sourcetrace.config import load_config
    from sourcetrace.errors import StageError
    with pytest.raises(StageError) as error:
        load_config(REPO / "config" / "demo.conf", [override])
    assert str(error.value).endswith(expected)
    cfg = load_config(REPO / "config" / "demo.conf")
    assert (cfg["backend"], cfg["asnorm_top_n"], cfg["knn_k"]) == ("cosine", 100, 5)
