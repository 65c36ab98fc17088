"""EER exactly as the reference computes it, and the STOPA pooling rules."""
import numpy as np
import pytest

from sourcetrace.metrics import EER, compute_eer, format_pooled_csv, pooled_eers, scenario_masks


def test_hand_worked_eer():
    # sorted: 0(n) 1(t) 2(n) 3(t); FRR 0,0,.5,.5,1; FAR 1,.5,.5,0,0 -> |diff| minimal (0) at i=2
    eer, threshold = compute_eer([1.0, 3.0], [2.0, 0.0])
    assert eer == 0.5 and threshold == 1.0


def test_perfect_separation_is_zero():
    eer, threshold = compute_eer([0.9, 0.8], [0.1, 0.2, 0.3])
    assert eer == 0.0 and threshold == 0.3


def test_all_scores_tied_targets_sort_first():
    # stable sort keeps targets before the tied non-target: labels 1,1,0 ->
    # FRR 0,.5,1,1 and FAR 1,1,1,0; the first minimum |FRR-FAR| = 0 is at i=2: EER = 1
    eer, threshold = compute_eer([0.5, 0.5], [0.5])
    assert eer == 1.0 and threshold == 0.5


def test_tie_between_target_and_nontarget():
    # sorted: .1(n) .2(t) .4(n) .6(t) .6(n); FRR 0,0,.5,.5,1,1; FAR 1,2/3,2/3,1/3,1/3,0.
    # |FRR-FAR| at i=2 and i=3 are both 1/6 on paper; in float64 i=2 is (just) smaller
    eer, threshold = compute_eer([0.2, 0.6], [0.6, 0.1, 0.4])
    assert eer == pytest.approx((0.5 + 2 / 3) / 2, abs=1e-15) and threshold == 0.2


def test_inverted_scores_give_eer_one():
    eer, threshold = compute_eer([0.0], [1.0])  # labels 1,0: FRR 0,1,1; FAR 1,1,0 -> i=1
    assert eer == 1.0 and threshold == 0.0


def test_empty_class_is_an_error():
    with pytest.raises(ValueError, match="0 targets"):
        compute_eer([], [0.1])


ATTACKS = np.array(["AA01", "AA01", "AA02", "AA02", "AA03", "AA09"])
LABELS = {"ATK": np.array([1, 0, 0, 1, 0, 0], bool),
          "AcousticModel": np.array([1, 1, 0, 1, 1, 0], bool),
          "VocoderModel": np.array([1, 0, 1, 1, 0, 1], bool)}


def test_known_scenario_keeps_known_attacks_only():
    masks = scenario_masks(np.isin(ATTACKS, ["AA01", "AA02"]), LABELS, "reference")
    for mask in masks["known"].values():
        assert mask.tolist() == [True, True, True, True, False, False]


def test_unknown_scenario_reference_filter_uses_target_atk_for_all_labels():
    masks = scenario_masks(np.isin(ATTACKS, ["AA01", "AA02"]), LABELS, "reference")
    for mask in masks["unknown"].values():
        assert mask.tolist() == [True, False, False, True, True, True]


def test_unknown_scenario_per_label_filter():
    masks = scenario_masks(np.isin(ATTACKS, ["AA01", "AA02"]), LABELS, "per_label")
    assert masks["unknown"]["ATK"].tolist() == [True, False, False, True, True, True]
    assert masks["unknown"]["AcousticModel"].tolist() == [True, True, False, True, True, True]
    assert masks["unknown"]["VocoderModel"].tolist() == [True, False, True, True, True, True]


def test_pooled_eers_equal_reference_on_each_row_set():
    rng = np.random.default_rng(0)
    n = 3000
    attacks = rng.choice(["AA01", "AA02", "AA03", "AA04"], n)
    labels = {name: rng.random(n) < 0.3 for name in ("ATK", "AcousticModel", "VocoderModel")}
    scores = np.round(rng.random(n), 3)
    known = ["AA01", "AA03"]
    for mode in ("reference", "per_label"):
        results = pooled_eers(scores, np.isin(attacks, known), labels, mode)
        masks = scenario_masks(np.isin(attacks, known), labels, mode)
        for scenario in ("known", "unknown"):
            for name, y in labels.items():
                m = masks[scenario][name]
                eer, threshold = compute_eer(scores[m & y], scores[m & ~y])
                found = results[scenario][name]
                assert (found.eer, found.threshold) == (eer, threshold)
                assert (found.n_target, found.n_nontarget) == ((m & y).sum(), (m & ~y).sum())


def test_pooled_csv_format_matches_reference_files():
    results = {"ATK": EER(0.3534, 0, 1, 1), "AcousticModel": EER(0.386912, 0, 1, 1),
               "VocoderModel": EER(0.37101, 0, 1, 1)}
    assert format_pooled_csv(results) == ",EER\nATK,35.34\nAcousticModel,38.69\nVocoderModel,37.1\n"
