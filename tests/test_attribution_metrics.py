"""Attribution and unknown-source detection metrics: hand-worked examples, scikit-learn as oracle."""
import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from sourcetrace.attribution import attribution_tables, attribution_trials
from sourcetrace.metrics import compute_eer
from sourcetrace.metrics.attribution import accuracy, auroc, detection_eer, fpr_at_tpr, macro_f1


def test_accuracy_and_macro_f1_by_hand():
    y_true, y_pred = ["a", "a", "b", "c"], ["a", "b", "b", "d"]
    assert accuracy(y_true, y_pred) == 0.5
    # a: TP 1, FN 1 -> 2/3; b: TP 1, FP 1 -> 2/3; c: FN 1 -> 0; d (only predicted): FP 1 -> 0
    assert macro_f1(y_true, y_pred) == pytest.approx((2 / 3 + 2 / 3) / 4)
    assert macro_f1(["x"] * 3, ["x"] * 3) == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_macro_f1_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 5, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 7, 200))  # classes 5, 6 only predicted
    assert macro_f1(y_true, y_pred) == pytest.approx(f1_score(y_true, y_pred, average="macro"), abs=1e-12)
    assert accuracy(y_true, y_pred) == pytest.approx(np.mean(y_true == y_pred))


def test_auroc_by_hand_ties_count_one_half():
    # pairs: 0.9 beats both (2); each 0.5 ties 0.5 (1/2) and beats 0.1 (1): 2 + 1.5 + 1.5 = 5 of 6
    assert auroc([0.9, 0.5, 0.5], [0.5, 0.1]) == pytest.approx(5 / 6)
    assert auroc([1.0], [1.0]) == 0.5
    assert auroc([2.0, 3.0], [0.0, 1.0]) == 1.0


@pytest.mark.parametrize("seed", range(4))
def test_auroc_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    pos = np.round(rng.normal(0.5, 1, 300), 1)  # rounded: many ties, also across classes
    neg = np.round(rng.normal(0.0, 1, 170), 1)
    expected = roc_auc_score(np.r_[np.ones(pos.size), np.zeros(neg.size)], np.r_[pos, neg])
    assert auroc(pos, neg) == pytest.approx(expected, abs=1e-12)


def test_fpr_at_tpr_by_hand():
    pos = np.arange(1, 21) / 20  # 20 positives 0.05 .. 1.0: TPR >= 95 % keeps 19, threshold 0.10
    neg = np.array([0.0, 0.1, 0.2, 0.5])
    assert fpr_at_tpr(pos, neg, 95) == (0.75, 0.1)
    # 10 positives: ceil(9.5) = 10 must stay, threshold = the lowest positive
    assert fpr_at_tpr(np.arange(2, 12) / 10, neg, 95) == (0.5, 0.2)
    # tied positives at the threshold are all kept
    assert fpr_at_tpr([0.3, 0.3, 0.9], [0.3, 0.1], 50) == (0.5, 0.3)


@pytest.mark.parametrize("seed", range(4))
def test_fpr_at_tpr_equals_a_threshold_sweep(seed):
    rng = np.random.default_rng(seed)
    pos, neg = np.round(rng.normal(1, 1, 57), 1), np.round(rng.normal(0, 1, 80), 1)
    candidates = [t for t in np.unique(np.r_[pos, neg]) if np.mean(pos >= t) >= 0.95]
    best = max(candidates)
    assert fpr_at_tpr(pos, neg, 95) == (np.mean(neg >= best), best)


def test_detection_eer_is_the_reference_eer():
    rng = np.random.default_rng(5)
    pos, neg = rng.normal(1, 1, 50), rng.normal(0, 1, 60)
    assert detection_eer(pos, neg) == compute_eer(pos, neg)
    with pytest.raises(ValueError, match="positive and negative"):
        detection_eer(pos, [])


def evaluation_table(rows):
    """An evaluation table as stage 5 reads it, from (fingerprint, ATK, file, score) rows."""
    am = {"AA01": "am1", "AA03": "am2", "AA05": "am1", "AA09": "am3"}
    vm = {"AA01": "vm1", "AA03": "vm2", "AA05": "vm2", "AA09": "vm1"}
    fp, atk, files, scores = (list(c) for c in zip(*rows))
    flags = [a == f.split("-")[0] for f, a in zip(fp, atk)]
    return pa.table({"AbstractModel": fp, "FileName": files, "AcousticModel": [am[a] for a in atk],
                     "VocoderModel": [vm[a] for a in atk], "ATK": atk, "IsTargetATK": flags,
                     "IsTargetAcousticModel": flags, "IsTargetVocoderModel": flags,
                     "Score": pa.array(scores, pa.float32())})


def test_attribution_and_detection_by_hand():
    fps = ["AA01-co-1", "AA03-co-1", "AA05-co-1"]
    utts = {("AA01", "u1"): [0.9, 0.2, 0.1],  # AA01, right
            ("AA03", "u2"): [0.5, 0.5, 0.4],  # AA03: tie AA01/AA03 -> AA01 (first in name order), wrong
            ("AA05", "u3"): [0.1, 0.3, 0.6],  # AA05, right
            ("AA09", "u4"): [0.5, 0.2, 0.3],  # unknown, detection score 0.5
            ("AA09", "u5"): [0.7, 0.1, 0.1]}  # unknown, 0.7
    rows = [(f, a, u, s[j]) for (a, u), s in utts.items() for j, f in enumerate(fps)]
    rows += [("AA01-nc-all", "AA01", "u1", 0.8)]  # nc-all lacks AA03 and AA05: one condition of one fingerprint
    rows += [("AA01-co-2", "AA01", "u1", 0.8), ("AA03-co-2", "AA01", "u1", 0.9),
             ("AA01-co-2", "AA03", "u2", 0.8)]  # co-2: u2 lacks AA03-co-2's row -> left out
    trials = attribution_trials(evaluation_table(rows), ["AA01", "AA03", "AA05"])
    assert trials.groups == [("co", "1"), ("co", "2"), ("nc", "all")]
    assert trials.incomplete == 1
    attribution, detection = attribution_tables(trials)
    by = {(r["condition"], r["enroll_size"], r["label"]): r for r in attribution}
    co1 = by[("co", "1", "ATK")]
    assert (co1["n_trials"], co1["accuracy"]) == (3, 2 / 3)
    # ATK: AA01 TP1 FP1 -> 2/3, AA03 FN1 -> 0, AA05 TP1 -> 1
    assert co1["macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    # AM: AA01 and AA05 share am1; predictions am1, am1 (for am2), am1 -> am1: TP 2, FP 1; am2: FN 1
    assert by[("co", "1", "AcousticModel")]["accuracy"] == 2 / 3
    assert by[("co", "1", "AcousticModel")]["macro_f1"] == pytest.approx((4 / 5 + 0) / 2)
    # VM: vm1, vm1 (for vm2), vm2 -> vm1: TP1 FP1 -> 2/3; vm2: TP1 FN1 -> 2/3
    assert by[("co", "1", "VocoderModel")]["macro_f1"] == pytest.approx(2 / 3)
    assert by[("co", "2", "ATK")]["accuracy"] == 0.0  # u1 -> AA03-co-2 (0.9)
    assert by[("nc", "all", "ATK")]["accuracy"] == 1.0
    pooled = by[("pooled", "pooled", "ATK")]
    assert (pooled["n_trials"], pooled["accuracy"]) == (5, 3 / 5)
    det = {(r["condition"], r["enroll_size"]): r for r in detection}
    # co-1: known 0.9, 0.5, 0.6 vs unknown 0.5, 0.7: wins 0.9 (2) + 0.5 (tie 1/2) + 0.6 (1) = 3.5 of 6
    assert (det[("co", "1")]["n_known"], det[("co", "1")]["n_unknown"]) == (3, 2)
    assert det[("co", "1")]["auroc"] == pytest.approx(3.5 / 6)
    # TPR >= 95 % keeps all 3 known: threshold 0.5, both unknown at or above
    assert det[("co", "1")]["fpr_at_tpr95"] == 100.0
    eer, threshold = compute_eer(np.float32([0.9, 0.5, 0.6]), np.float32([0.5, 0.7]))
    assert det[("co", "1")]["eer"] == 100 * eer and det[("co", "1")]["eer_threshold"] == threshold
    assert det[("co", "2")].get("auroc") is None and det[("co", "2")]["n_unknown"] == 0
    assert det[("pooled", "pooled")]["n_known"] == 5


def test_attribution_needs_one_am_per_attack():
    table = evaluation_table([("AA01-co-1", "AA01", "u1", 0.5), ("AA01-co-1", "AA01", "u2", 0.5)])
    table = table.set_column(2, "AcousticModel", pa.array(["am1", "am9"]))
    with pytest.raises(ValueError, match="attack AA01 has several AcousticModel values"):
        attribution_trials(table, ["AA01"])


def test_report_has_attribution_and_detection_sections(tmp_path):
    from sourcetrace.attribution import write_attribution
    from sourcetrace.evaluation import write_evaluation
    from sourcetrace.report import markdown
    from test_evaluation_metrics import OPTIONS, small
    folder = tmp_path / "SYS_EERs_pooled"
    folder.mkdir()
    (folder / "pooled_eer_kn.csv").write_text(",EER\nATK,0.0\nAcousticModel,0.0\nVocoderModel,12.5\n")
    (folder / "pooled_eer_ukn.csv").write_text(",EER\nATK,0.0\nAcousticModel,0.0\nVocoderModel,25.0\n")
    write_evaluation(folder, small(), unknown_filter="reference", **OPTIONS)
    without = markdown(tmp_path, ["SYS"], False, tmp_path / "report.md")
    assert "attribution" not in without.lower()  # a stage 5 from before: no section
    rows = [(f, a, u, s) for f, a, u, s in [("AA01-co-1", "AA01", "u1", 0.9), ("AA03-co-1", "AA01", "u1", 0.2),
                                           ("AA01-co-1", "AA03", "u2", 0.6), ("AA03-co-1", "AA03", "u2", 0.4),
                                           ("AA01-co-1", "AA09", "u3", 0.3), ("AA03-co-1", "AA09", "u3", 0.1)]]
    write_attribution(folder, attribution_trials(evaluation_table(rows), ["AA01", "AA03"]))
    text = markdown(tmp_path, ["SYS"], False, tmp_path / "report.md")
    # u1 right, u2 wrong (AA03 -> AA01): 50 %; AM: am1 vs am2 likewise
    assert "| pooled | pooled | 2 | 50.00 | 50.00 |" in text
    # known 0.9, 0.6 vs unknown 0.3: AUROC 1; TPR >= 95 % keeps both, threshold 0.6: FPR 0
    assert "| pooled | pooled | 2 | 1 | 1.000 | 0.00 | 0.00 |" in text
    assert "![SYS, attribution confusion matrix](SYS_EERs_pooled/attribution_confusion.png)" in text
    assert "(SYS_EERs_pooled/unknown_detection.png)" in text


def test_rows_without_conditions_or_utterances_give_empty_files(tmp_path):
    from sourcetrace.attribution import write_attribution
    table = evaluation_table([("AA01-co-1", "AA01", "u1", 0.9), ("AA01-co-1", "AA09", "u2", 0.1)])
    for reason, rows in (("no FileName column", table.drop_columns(["FileName"])),
                         ("no fingerprint named", table.drop_columns(["AbstractModel"]))):
        trials = attribution_trials(rows, ["AA01"])
        assert trials.unavailable.startswith(reason) and len(trials.group) == 0
        paths = write_attribution(tmp_path, trials)
        assert paths[0].read_text() == "condition,enroll_size,label,n_trials,accuracy,macro_f1\npooled,pooled,ATK,0,,\n"
        assert paths[1].read_text().splitlines()[1] == "pooled,pooled,0,0,,,,"


def test_attack_dictionary_entries_without_rows_are_ignored():
    """A CSV read with dictionaries keeps, after filtering, attacks that no longer have rows."""
    rows = [("AA01-co-1", "AA01", "u1", 0.9), ("AA03-co-1", "AA01", "u1", 0.2),
            ("AA01-co-1", "AA03", "u2", 0.3), ("AA03-co-1", "AA03", "u2", 0.4)]
    table = evaluation_table(rows + [("AA01-co-1", "AA05", "u3", 0.5)])
    for column in ("ATK", "AcousticModel", "VocoderModel"):
        table = table.set_column(table.column_names.index(column), column, table.column(column).dictionary_encode())
    table = table.slice(0, 4)  # AA05, am1 and vm2 stay in the dictionaries without rows
    trials = attribution_trials(table, ["AA01", "AA03"])
    attribution, _ = attribution_tables(trials)
    assert [(r["label"], r["accuracy"]) for r in attribution[:3]] == [("ATK", 1.0), ("AcousticModel", 1.0),
                                                                      ("VocoderModel", 1.0)]
