"""Every metric of `metrics.csv` against hand-worked values, and the file's layout."""
import math

import numpy as np
import pytest

from sourcetrace.evaluation import EvaluationRows, evaluate, format_metrics_csv, write_evaluation
from sourcetrace.metrics import bootstrap, compute_eer, detection, pooled_eers, scenario_masks
from sourcetrace.metrics.bootstrap import bootstrap_eers, fingerprint_weights, percentile_interval
from sourcetrace.metrics.detection import decimate
from sourcetrace.metrics.detection import (ScoreBlocks, block_starts, det_points, eer, min_cllr, min_dcf,
                                           pav_blocks, rocch_eer)
from sourcetrace.metrics.groups import condition_groups

# Example A: targets [1, 3], non-targets [0, 2, 3, 4] (N_t = 2, N_n = 4).
# Blocks (score: targets, non-targets): 0: 0,1  1: 1,0  2: 0,1  3: 1,1  4: 0,1.
# Boundaries k = 0..5: targets below 0,0,1,1,2,2; non-targets below 0,1,1,2,3,4, so
# P_miss = 0, 0, .5, .5, 1, 1 and P_fa = 1, .75, .75, .5, .25, 0.
A = ([1, 3], [0, 2, 3, 4])
# Example B, a tie: targets [3, 3], non-targets [1, 3]. Blocks 1: 0,1 and 3: 2,1.
B = ([3, 3], [1, 3])


def blocks(example):
    return ScoreBlocks.from_scores(*example)


def test_blocks_and_det_points_by_hand():
    a = blocks(A)
    assert a.scores.tolist() == [0, 1, 2, 3, 4]
    assert a.n_target.tolist() == [0, 1, 0, 1, 0] and a.n_nontarget.tolist() == [1, 0, 1, 1, 1]
    p_miss, p_fa = det_points(a)
    assert p_miss.tolist() == [0, 0, .5, .5, 1, 1] and p_fa.tolist() == [1, .75, .75, .5, .25, 0]


def test_eer_by_hand_example_a():
    # sorted: 0n 1t 2n 3t 3n 4n; FRR 0 | 0 .5 .5 1 1 1, FAR 1 | .75 .75 .5 .5 .25 0:
    # |FRR - FAR| is first smallest (0) at position 3, the score 2
    assert eer(blocks(A)) == (0.5, 2.0) == compute_eer(*A)


def test_eer_ties_sort_targets_first():
    # sorted 1n 3t 3t 3n: FRR 0 | 0 .5 1 1, FAR 1 | .5 .5 .5 0: EER .5 at position 2 (score 3);
    # non-targets first would give 1n 3n 3t 3t and EER 0
    assert eer(blocks(B)) == (0.5, 3.0) == compute_eer(*B)


def test_eer_prepended_point_threshold():
    # inverted scores: FRR 0 | .5 1 1 1, FAR 1 | 1 1 .5 0 -> first minimum |0| at position 2
    assert eer(blocks(([0, 1], [2, 3]))) == compute_eer([0, 1], [2, 3]) == (1.0, 1.0)
    # perfect separation: position 2 (FRR 0, FAR 0); threshold the score there
    assert eer(blocks(([2, 3], [0, 1]))) == (0.0, 1.0)
    # one target above one non-target: FRR 0 | 0 1, FAR 1 | 0 0 -> position 1 (score 0)
    assert eer(blocks(([1], [0]))) == (0.0, 0.0)


def test_eer_equals_reference_on_random_tied_scores():
    rng = np.random.default_rng(3)
    for _ in range(500):
        target = rng.integers(0, 6, rng.integers(1, 12)) / 2
        nontarget = rng.integers(-2, 4, rng.integers(1, 12)) / 2
        assert eer(ScoreBlocks.from_scores(target, nontarget)) == compute_eer(target, nontarget)


def test_min_dcf_by_hand():
    a = blocks(A)
    # p = .5, costs 1: (.5 P_miss + .5 P_fa) / .5 = P_miss + P_fa = 1, .75, 1.25, 1, 1.25, 1
    assert min_dcf(a, 0.5, 1, 1) == 0.75
    # p = .25: (.25 P_miss + .75 P_fa) / .25 = P_miss + 3 P_fa = 3, 2.25, 2.75, 2, 1.75, 1:
    # the threshold beyond the largest score
    assert min_dcf(a, 0.25, 1, 1) == 1.0
    # p = .75: (.75 P_miss + .25 P_fa) / .25 = 3 P_miss + P_fa = 1, .75, 2.25, 2, 3.25, 3
    assert min_dcf(a, 0.75, 1, 1) == 0.75
    # p = .5, c_fa = 4: (.5 P_miss + 2 P_fa) / .5 = P_miss + 4 P_fa = 4, 3, 3.5, 2.5, 2, 1
    assert min_dcf(a, 0.5, 1, 4) == 1.0


def test_min_dcf_never_splits_a_tie():
    # B: P_miss 0, 0, 1 and P_fa 1, .5, 0 -> P_miss + P_fa = 1, .5, 1 (splitting the tie at 3
    # between its targets and its non-target would give 0 + .5 ... never considered)
    assert min_dcf(blocks(B), 0.5, 1, 1) == 0.5


def test_pav_by_hand():
    # A: blocks 0, 1, 0, .5 (weight 2), 0 -> PAV pools all but the first: 0 (1 row), 2/5 (5 rows)
    t, n = pav_blocks(blocks(A))
    assert t.tolist() == [0, 2] and n.tolist() == [1, 3]
    # B: tied scores are one block (2 targets, 1 non-target) above a non-target
    t, n = pav_blocks(blocks(B))
    assert t.tolist() == [0, 2] and n.tolist() == [1, 1]
    # increasing posteriors are left alone; collinear blocks pool (same calibrated score)
    # blocks 0: 0 t, 2 n; 1: 1, 1; 2: 1, 1; 3: 2, 0 (posteriors 0, .5, .5, 1)
    t, n = pav_blocks(blocks(([1, 2, 3, 3], [0, 0, 1, 2])))
    assert t.tolist() == [0, 2, 2] and n.tolist() == [2, 2, 0]


def test_min_cllr_by_hand():
    # A: prior log-odds log(2/4). Pooled block 1 (0 targets): LLR -inf, its non-target costs 0.
    # Pooled block 2 (2 targets, 3 non-targets): LLR = log(2/3) - log(1/2) = log(4/3);
    # targets cost log2(1 + 3/4) each, its 3 non-targets log2(1 + 4/3) each.
    expected = (math.log2(1.75) + 3 / 4 * math.log2(7 / 3)) / 2
    assert min_cllr(blocks(A)) == pytest.approx(expected, abs=1e-15)
    # B: prior log-odds 0; block (2 t, 1 n): LLR log 2: targets log2(1.5), non-target log2(3)
    assert min_cllr(blocks(B)) == pytest.approx((math.log2(1.5) + math.log2(3) / 2) / 2, abs=1e-15)
    # perfect separation: both LLRs infinite, each costs 0
    assert min_cllr(blocks(([2, 3], [0, 1]))) == 0.0
    # no information: one block of posterior = prior, LLR 0, Cllr = 1 bit
    assert min_cllr(blocks(([1, 1], [1, 1, 1]))) == 1.0


def test_rocch_eer_by_hand():
    # A: hull vertices (P_fa, P_miss) = (1, 0), (.75, 0), (0, 1); the horizontal segment gives 0,
    # the line P_miss = (.75 - P_fa) / .75 meets P_miss = P_fa at 3/7
    assert rocch_eer(blocks(A)) == pytest.approx(3 / 7, abs=1e-15)
    # B: (1, 0), (.5, 0), (0, 1): P_miss = 1 - 2 P_fa meets the diagonal at 1/3
    assert rocch_eer(blocks(B)) == pytest.approx(1 / 3, abs=1e-15)
    assert rocch_eer(blocks(([2, 3], [0, 1]))) == 0.0  # hull (1,0), (0,0), (0,1)
    assert rocch_eer(blocks(([1, 1], [1, 1, 1]))) == 0.5  # the chance line


def test_block_starts():
    assert block_starts(np.array([1.0, 1.0, 2.0, 3.0, 3.0])).tolist() == [0, 2, 3]


def explicit_resample_eer(scores, labels, fingerprint, weights):
    rows = np.repeat(np.arange(scores.size), weights[fingerprint])
    return compute_eer(scores[rows][labels[rows]], scores[rows][~labels[rows]])[0]


def test_bootstrap_eers_by_hand():
    # fingerprint 0: target 3, non-target 1; fingerprint 1: target 2, non-target 4
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    labels = np.array([False, True, True, False])
    fingerprint = np.array([0, 1, 0, 1])
    weights = np.array([[2, 0], [0, 2], [1, 1], [0, 1]])
    # [2, 0]: 1n 1n 3t 3t -> EER 0; [0, 2]: 2t 2t 4n 4n -> 1; [1, 1]: 1n 2t 3t 4n -> .5
    found = bootstrap_eers(labels, fingerprint, block_starts(scores), weights)
    assert found[:3].tolist() == [0.0, 1.0, 0.5]
    assert found[3] == 1.0
    # percentiles of [0, .5, 1] with linear interpolation: 2.5 % at 0.05 -> .025, 97.5 % -> .975
    assert percentile_interval(found[:3]) == pytest.approx((0.025, 0.975), abs=1e-15)


def test_bootstrap_without_targets_is_nan():
    labels = np.array([False, True])
    found = bootstrap_eers(labels, np.array([0, 1]), np.array([0, 1]), np.array([[2, 0], [1, 1]]))
    assert math.isnan(found[0]) and found[1] == 0.0
    assert percentile_interval(np.array([np.nan])) is None


@pytest.mark.parametrize("grid_rows", [3, 4096])
def test_bootstrap_equals_reference_on_the_resampled_multiset(grid_rows, monkeypatch):
    monkeypatch.setattr(bootstrap, "GRID_ROWS", grid_rows)
    rng = np.random.default_rng(5)
    n = 400
    scores = np.sort(rng.integers(0, 40, n) / 8)  # many ties
    labels = rng.random(n) < 0.3
    fingerprint = rng.integers(0, 6, n)
    weights = fingerprint_weights(6, 50, seed=1)
    found = bootstrap_eers(labels, fingerprint, block_starts(scores), weights)
    for r in range(50):
        assert found[r] == explicit_resample_eer(scores, labels, fingerprint, weights[r])


def test_fingerprint_weights():
    weights = fingerprint_weights(5, 200, seed=7)
    assert weights.shape == (200, 5) and (weights.sum(axis=1) == 5).all()
    assert (weights == fingerprint_weights(5, 200, seed=7)).all()
    assert not (weights == fingerprint_weights(5, 200, seed=8)).all()


def test_decimate_keeps_ends_and_spaces_points_along_the_curve():
    p_miss = np.full(6, 0.5)  # logit 0
    # logit(P_fa) = 0, .001, .002, .003, 5, 5.001: the long step holds half of the length
    p_fa = 1 / (1 + np.exp(-np.array([0, 0.001, 0.002, 0.003, 5, 5.001])))
    assert decimate(p_miss, p_fa, max_points=3).tolist() == [0, 4, 5]
    assert decimate(p_miss, p_fa, max_points=6).tolist() == [0, 1, 2, 3, 4, 5]


def test_decimate_thins_long_curves_first(monkeypatch):
    monkeypatch.setattr(detection, "CANDIDATES", 3)
    p_miss = np.full(6, 0.5)
    p_fa = 1 / (1 + np.exp(-np.array([0, 0.001, 0.002, 0.003, 5, 5.001])))
    # every 6 // 3 = 2nd point and the last: 0, 2, 4, 5; half the length is reached at point 4
    assert decimate(p_miss, p_fa, max_points=3).tolist() == [0, 4, 5]


def test_decimate_to_at_most_2000_points():
    rng = np.random.default_rng(0)
    p_miss, p_fa = det_points(ScoreBlocks.from_scores(rng.normal(1, 1, 6000), rng.normal(0, 1, 6000)))
    kept = decimate(p_miss, p_fa)
    assert kept.size <= 2000 and kept[0] == 0 and kept[-1] == p_miss.size - 1 and (np.diff(kept) > 0).all()


def test_condition_groups_order_and_parsing():
    names = ["AA01-nc-10", "AA01-co-1", "AA03-nc-all", "AA01-nc-2", "not-a-fingerprint", "AA03-co-1"]
    groups = condition_groups(names)
    assert [(c, s, codes.tolist()) for c, s, codes in groups] == [
        ("co", "1", [1, 5]), ("nc", "2", [3]), ("nc", "10", [0]), ("nc", "all", [2])]


# A small pooled set: three fingerprints, eight rows.
#  row score fingerprint   known  ATK AM  VM
#  r0  0.9   AA01-co-1     yes    T   T   T
#  r1  0.2   AA01-co-1     yes    F   T   T
#  r2  0.5   AA01-co-1     no     F   T   F
#  r3  0.8   AA01-nc-all   yes    T   T   T
#  r4  0.3   AA01-nc-all   yes    F   F   F
#  r5  0.4   AA01-nc-all   no     F   F   T
#  r6  0.7   AA03-co-1     yes    T   T   T
#  r7  0.6   AA03-co-1     no     F   T   F
NAMES = ["AA01-co-1", "AA01-nc-all", "AA03-co-1"]
T, F = True, False
SMALL = dict(scores=np.array([0.9, 0.2, 0.5, 0.8, 0.3, 0.4, 0.7, 0.6]),
             is_known=np.array([T, T, F, T, T, F, T, F]),
             labels={"ATK": np.array([T, F, F, T, F, F, T, F]), "AcousticModel": np.array([T, T, T, T, F, F, T, T]),
                     "VocoderModel": np.array([T, T, F, T, F, T, T, F])},
             fingerprint=np.array([0, 0, 0, 1, 1, 1, 2, 2]), fingerprint_names=NAMES)
OPTIONS = dict(dcf_operating_points=[[0.01, 1, 1], [0.1, 1, 1]], bootstrap_resamples=50, bootstrap_seed=0)


def small(**labels):
    return EvaluationRows(**{**SMALL, "labels": {**SMALL["labels"], **labels}})


def cells(table):
    return [(r["scenario"], r["label"], r["condition"], r["enroll_size"], r["n_target"], r["n_nontarget"])
            for r in table]


def test_metrics_rows_layout_and_counts_reference_filter():
    table, _, _ = evaluate(small(), unknown_filter="reference", **OPTIONS)
    # known: rows r0 r1 r3 r4 r6; co-1 = r0 r1 (+ r6), nc-all = r3 r4.
    # unknown (reference): unknown rows r2 r5 r7 and ATK targets r0 r3 r6, for every label
    assert cells(table) == [
        ("known", "ATK", "pooled", "pooled", 3, 2), ("known", "ATK", "co", "1", 2, 1), ("known", "ATK", "nc", "all", 1, 1),
        ("known", "AcousticModel", "pooled", "pooled", 4, 1), ("known", "AcousticModel", "co", "1", 3, 0),
        ("known", "AcousticModel", "nc", "all", 1, 1),
        ("known", "VocoderModel", "pooled", "pooled", 4, 1), ("known", "VocoderModel", "co", "1", 3, 0),
        ("known", "VocoderModel", "nc", "all", 1, 1),
        ("unknown", "ATK", "pooled", "pooled", 3, 3), ("unknown", "ATK", "co", "1", 2, 2), ("unknown", "ATK", "nc", "all", 1, 1),
        ("unknown", "AcousticModel", "pooled", "pooled", 5, 1), ("unknown", "AcousticModel", "co", "1", 4, 0),
        ("unknown", "AcousticModel", "nc", "all", 1, 1),
        ("unknown", "VocoderModel", "pooled", "pooled", 4, 2), ("unknown", "VocoderModel", "co", "1", 2, 2),
        ("unknown", "VocoderModel", "nc", "all", 2, 0)]
    by = {c[:4]: r for c, r in zip(cells(table), table)}
    # known VM pooled: sorted .2t .3n .7t .8t .9t, FRR 0 | .25 .25 .5 .75 1, FAR 1 | 1 0 0 0 0:
    # first minimum at position 2 (score .3): EER (.25 + 0) / 2
    vm = by[("known", "VocoderModel", "pooled", "pooled")]
    assert (vm["eer"], vm["eer_threshold"]) == (12.5, 0.3)
    # a group without non-targets: counts only, every metric cell empty
    empty = by[("known", "VocoderModel", "co", "1")]
    assert [k for k in empty if k not in ("scenario", "label", "condition", "enroll_size")] == ["n_target", "n_nontarget"]
    # confidence intervals only on pooled rows
    assert all(("eer_ci_low" in r) == (r["condition"] == "pooled") for r in table if "eer" in r)


def test_fingerprints_without_rows_make_no_group():
    rows = EvaluationRows(**{**SMALL, "fingerprint_names": NAMES + ["AA05-nc-1000"]})
    table, _, _ = evaluate(rows, unknown_filter="reference", **OPTIONS)
    assert cells(table) == cells(evaluate(small(), unknown_filter="reference", **OPTIONS)[0])


def test_per_label_filter_counts():
    table, _, _ = evaluate(small(), unknown_filter="per_label", **OPTIONS)
    unknown = {c[1:4]: c[4:] for c in cells(table) if c[0] == "unknown"}
    # AM: unknown rows r2 r5 r7 and AM targets r0 r1 r3 r6 -> 6 targets (r0 r1 r2 r3 r6 r7), 1 (r5)
    assert unknown[("AcousticModel", "pooled", "pooled")] == (6, 1)
    # VM: r2 r5 r7 and VM targets r0 r1 r3 r6 -> targets r0 r1 r3 r5 r6, non-targets r2 r7
    assert unknown[("VocoderModel", "pooled", "pooled")] == (5, 2)
    assert unknown[("ATK", "pooled", "pooled")] == (3, 3)  # as the reference filter


def test_architecture_labels_present_and_absent():
    with_arch = small(AmArchit=np.array([T, T, T, F, F, F, T, T]), VmArchit=np.array([T, T, F, T, F, T, T, T]))
    table, curves, _ = evaluate(with_arch, unknown_filter="reference", **OPTIONS)
    labels = ["ATK", "AcousticModel", "VocoderModel", "AmArchit", "VmArchit"]
    assert list(dict.fromkeys(r["label"] for r in table)) == labels
    am_arch = [r for r in table if r["label"] == "AmArchit" and r["scenario"] == "known"]
    # known rows r0 r1 r3 r4 r6: targets r0 r1 r6, non-targets r3 r4; group nc-all = r3 r4
    assert cells(am_arch) == [("known", "AmArchit", "pooled", "pooled", 3, 2), ("known", "AmArchit", "co", "1", 3, 0),
                              ("known", "AmArchit", "nc", "all", 0, 2)]
    # sorted .2t .3n .7t .8n .9t: FRR 0 | 1/3 1/3 2/3 2/3 1, FAR 1 | 1 .5 .5 0 0 -> position 2
    # (FRR 1/3, FAR 1/2) and 3 (2/3, 1/2) are both 1/6 away; in float64 position 3 is nearer
    assert (am_arch[0]["eer"], am_arch[0]["eer_threshold"]) == (100 * ((2 / 3 + 1 / 2) / 2), 0.7)
    assert "eer" not in am_arch[2] and "min_cllr" not in am_arch[2]  # a group without targets
    assert [c[0] for c in curves["known"]] == labels
    table, curves, _ = evaluate(small(), unknown_filter="reference", **OPTIONS)
    assert list(dict.fromkeys(r["label"] for r in table)) == labels[:3]
    assert [c[0] for c in curves["known"]] == labels[:3]


def test_group_and_pooled_values_equal_the_definitions_on_random_rows():
    rng = np.random.default_rng(11)
    n = 3000
    names = [f"AA0{a}-{c}-{s}" for a in (1, 3) for c, s in (("co", "1"), ("nc", "10"), ("nc", "all"))]
    fingerprint = rng.integers(0, len(names), n)
    rows = EvaluationRows(scores=np.round(rng.normal(0, 1, n), 1), is_known=rng.random(n) < 0.5,
                          labels={k: rng.random(n) < 0.3 for k in ("ATK", "AcousticModel", "VocoderModel")},
                          fingerprint=fingerprint, fingerprint_names=names)
    for mode in ("reference", "per_label"):
        table, _, _ = evaluate(rows, unknown_filter=mode, **OPTIONS)
        reference = pooled_eers(rows.scores, rows.is_known, rows.labels, mode)
        masks = scenario_masks(rows.is_known, rows.labels, mode)
        for r in table:
            y = rows.labels[r["label"]]
            m = masks[r["scenario"]][r["label"]]
            if r["condition"] == "pooled":
                expected = reference[r["scenario"]][r["label"]]
                assert (r["eer"], r["eer_threshold"]) == (100 * expected.eer, expected.threshold)
            else:
                m = m & np.isin(fingerprint, [names.index(f"{a}-{r['condition']}-{r['enroll_size']}") for a in ("AA01", "AA03")])
            target, nontarget = rows.scores[m & y], rows.scores[m & ~y]
            eer_value, threshold = compute_eer(target, nontarget)
            b = ScoreBlocks.from_scores(target, nontarget)
            assert (r["eer"], r["eer_threshold"]) == (100 * eer_value, threshold)
            assert (r["min_cllr"], r["rocch_eer"], r["min_dcf_0.01_1_1"]) == (min_cllr(b), 100 * rocch_eer(b), min_dcf(b, 0.01, 1, 1))


def test_write_evaluation_files(tmp_path):
    paths = write_evaluation(tmp_path / "out", small(), unknown_filter="reference", **OPTIONS)
    assert [p.name for p in paths] == ["metrics.csv", "det_known.png", "det_unknown.png", "det_points.csv"]
    lines = paths[0].read_text().splitlines()
    assert lines[0] == ("scenario,label,condition,enroll_size,n_target,n_nontarget,eer,eer_threshold,eer_ci_low,"
                        "eer_ci_high,rocch_eer,min_cllr,min_dcf_0.01_1_1,min_dcf_0.1_1_1")
    assert lines[8] == "known,VocoderModel,co,1,3,0,,,,,,,,"
    assert lines[7].startswith("known,VocoderModel,pooled,pooled,4,1,12.5,0.3,")
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths[1:3])
    points = paths[3].read_text().splitlines()
    assert points[0] == "scenario,label,p_miss,p_fa"
    # known VM: blocks .2 (1 t) .3 (1 n) .7 .8 .9 (1 t each): P_miss 0 .25 .25 .5 .75 1, P_fa 1 1 0 0 0 0
    vm = [line.split(",")[2:] for line in points if line.startswith("known,VocoderModel,")]
    assert [(float(m), float(f)) for m, f in vm] == [(0, 1), (.25, 1), (.25, 0), (.5, 0), (.75, 0), (1, 0)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)  # no temporaries


def test_bootstrap_off_leaves_intervals_empty():
    table, _, _ = evaluate(small(), unknown_filter="reference", **{**OPTIONS, "bootstrap_resamples": 0})
    assert not any("eer_ci_low" in r for r in table)
    text = format_metrics_csv(table, OPTIONS["dcf_operating_points"])
    assert text.splitlines()[1].split(",")[8:10] == ["", ""]


@pytest.mark.parametrize("change, message", [
    ({"dcf_operating_points": [[0.01, 1]]}, "dcf_operating_points: [0.01, 1] is not"),
    ({"dcf_operating_points": [[1.5, 1, 1]]}, "0 < p_target < 1"),
    ({"dcf_operating_points": [[0.1, 1, 1], [0.1, 1.0, 1]]}, "repeated point"),
    ({"bootstrap_resamples": -1}, "bootstrap_resamples must be an integer >= 0"),
    ({"bootstrap_seed": True}, "bootstrap_seed must be an integer >= 0"),
    ({"unknown_filter": "per_attack"}, "unknown_filter must be 'reference' or 'per_label'"),
])
def test_bad_options_are_value_errors(change, message):
    options = {"unknown_filter": "reference", **OPTIONS, **change}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        evaluate(small(), **options)


def test_inconsistent_rows_are_value_errors():
    with pytest.raises(ValueError, match="one entry per score"):
        EvaluationRows(**{**SMALL, "is_known": SMALL["is_known"][:3]})
    with pytest.raises(ValueError, match="fingerprint codes"):
        EvaluationRows(**{**SMALL, "fingerprint_names": NAMES[:2]})
    with pytest.raises(ValueError, match="missing \\['ATK'\\]"):
        EvaluationRows(**{**SMALL, "labels": {k: SMALL["labels"][k] for k in ("AcousticModel", "VocoderModel")}})


def test_labels_a_corpus_lacks_are_left_out():
    """Without vocoder labels the rows are valid; the table has the same ATK and AM rows as with them."""
    labels = {k: SMALL["labels"][k] for k in ("ATK", "AcousticModel")}
    without, _, _ = evaluate(EvaluationRows(**{**SMALL, "labels": labels}), unknown_filter="reference", **OPTIONS)
    full, _, _ = evaluate(small(), unknown_filter="reference", **OPTIONS)
    assert without == [row for row in full if row["label"] in ("ATK", "AcousticModel")]
