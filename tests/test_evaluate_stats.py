"""Uncertainty, thresholds and calibration helpers in tlhelpers.evaluate: known answers and bad input."""
import numpy as np
import pytest
import torch
from scipy.special import softmax
from sklearn import metrics as skm

from tlhelpers import evaluate as E


def test_wilson_interval_matches_scipy_and_brackets_the_rate():
    lo, hi = E.proportion_ci(5, 8)
    assert lo < 5 / 8 < hi
    assert E.proportion_ci(0, 2)[0] == 0.0 and E.proportion_ci(0, 2)[1] > 0.5   # 0 of 2 says little
    with pytest.raises(ValueError, match="successes <= total"):
        E.proportion_ci(3, 2)


def test_bootstrap_interval_shrinks_with_more_examples_and_is_reproducible():
    rng = np.random.default_rng(0)
    widths = []
    for n in [100, 1600]:
        y = rng.integers(0, 2, n)
        p = np.where(rng.random(n) < 0.8, y, 1 - y)
        v, lo, hi = E.bootstrap_ci(E.accuracy, y, p, n_resamples=500)
        assert lo <= v <= hi
        assert E.bootstrap_ci(E.accuracy, y, p, n_resamples=500) == (v, lo, hi)   # seeded
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_paired_bootstrap_sees_a_difference_a_marginal_comparison_would_blur():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    a = np.where(rng.random(400) < 0.85, y, (y + 1) % 3)
    b = a.copy()
    b[np.flatnonzero(a == y)[:20]] = (y[np.flatnonzero(a == y)[:20]] + 1) % 3   # B: 20 more errors, same examples
    diff, lo, hi = E.paired_bootstrap(E.accuracy, y, a, b, n_resamples=500)
    assert diff == pytest.approx(20 / 400) and lo > 0
    f1 = lambda t, p: skm.f1_score(t, p, average="macro")   # noqa: E731
    assert E.paired_bootstrap(f1, y, a, a, n_resamples=200) == (0.0, 0.0, 0.0)


def test_mcnemar_counts_only_discordant_examples():
    y = np.zeros(100, int)
    a = np.zeros(100, int)
    b = np.zeros(100, int)
    b[:6] = 1   # B wrong on 6 that A gets right
    a[90:93] = 1   # A wrong on 3 that B gets right
    r = E.mcnemar(y, a, b)
    assert (r["a_only"], r["b_only"]) == (6, 3)
    assert r["p_value"] == pytest.approx(0.5078125)   # binomial(9, 1/2), two-sided: P(<=3 or >=6)
    assert E.mcnemar(y, a, a)["p_value"] == 1.0
    # 7 against 1: exact p = 2 * 9/256; mid-p subtracts P(X = 1) = 8/256
    b7 = np.zeros(100, int)
    b7[:7] = 1
    a1 = np.zeros(100, int)
    a1[99] = 1
    r = E.mcnemar(y, a1, b7)
    assert r["p_value"] == pytest.approx(18 / 256) and r["mid_p_value"] == pytest.approx(10 / 256)


def test_threshold_for_recall_meets_the_target_on_the_data_it_was_chosen_on():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    s = rng.random(500) + 0.5 * y
    for target in [0.5, 0.9, 0.99, 1.0]:
        t = E.threshold_for_recall(y, s, recall=target)
        assert (s[y == 1] >= t).mean() >= target
        # the highest such threshold: any higher loses the target
        assert (s[y == 1] > t).mean() < target


@pytest.mark.parametrize("kwargs, message", [
    (dict(y_true=[0, 2], scores=[0.1, 0.2], recall=0.9), "binary"),
    (dict(y_true=[0, 0], scores=[0.1, 0.2], recall=0.9), "at least one positive"),
    (dict(y_true=[0, 1], scores=[0.1, np.nan], recall=0.9), "NaN"),
    (dict(y_true=[0, 1], scores=[0.1, 0.2], recall=1.5), "recall must be"),
    (dict(y_true=[0, 1, 1], scores=[0.1, 0.2], recall=0.5), "same examples"),
])
def test_threshold_for_recall_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        E.threshold_for_recall(kwargs.pop("y_true"), kwargs.pop("scores"), **kwargs)


def _synthetic(temperature, n=4000, seed=3):
    """Labels drawn from softmax(z), predictions reported at softmax(z / temperature)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.5, (n, 4))
    y = np.array([rng.choice(4, p=p) for p in softmax(z, 1)])
    return y, softmax(z / temperature, 1)


def test_calibrated_probabilities_have_small_ece_and_overconfident_ones_large():
    y, p = _synthetic(1.0)
    assert E.expected_calibration_error(y, p) < 0.03
    y, p = _synthetic(0.4)   # sharpened: over-confident
    table = E.reliability_table(y, p)
    assert E.expected_calibration_error(y, p) > 0.08
    assert (table["accuracy"] < table["confidence"]).mean() > 0.8
    assert table["count"].sum() == len(y)


def test_temperature_scaling_recovers_the_distortion_and_keeps_predictions():
    y, p = _synthetic(0.4)
    t = E.fit_temperature(y, p)
    assert t == pytest.approx(1 / 0.4, rel=0.15)
    q = E.apply_temperature(p, t)
    assert (q.argmax(1) == p.argmax(1)).all()
    assert E.expected_calibration_error(y, q) < E.expected_calibration_error(y, p) / 3


@pytest.mark.parametrize("probs, message", [
    ([[2.0, -1.0], [0.5, 0.5]], "pass probabilities, not logits"),
    ([[0.5, 0.5, 0.0], [np.nan, 0.5, 0.5]], "finite"),
    ([0.5, 0.5], "examples, classes"),
    ([[0.5, 0.5]], "same examples"),
])
def test_calibration_functions_reject_logits_and_bad_shapes(probs, message):
    with pytest.raises(ValueError, match=message):
        E.expected_calibration_error([0, 1], probs)


def test_labels_outside_the_probability_columns_are_refused():
    with pytest.raises(ValueError, match="labels range 0..2 but probs has 2 columns"):
        E.fit_temperature([0, 2], [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="temperature must be positive"):
        E.apply_temperature([[0.5, 0.5]], 0)


def test_balanced_accuracy_matches_scikit_learn():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))   # predicts a class never true too
    with pytest.warns(UserWarning, match="not in y_true"):
        expected = skm.balanced_accuracy_score(y, p)
    assert E.balanced_accuracy(y, p) == pytest.approx(expected)
    with pytest.raises(ValueError, match="rows"):
        E.balanced_accuracy(y, p[:-1])


def test_paired_bootstrap_over_runs_covers_seed_to_seed_spread():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 400)
    flip = lambda rate: np.where(rng.random(400) < rate, 1 - y, y)   # noqa: E731
    b = np.stack([flip(0.30) for _ in range(5)])
    same_runs = np.stack([flip(0.20)] * 5)                      # one subset, no seed spread
    spread = np.stack([flip(r) for r in [0.05, 0.1, 0.2, 0.3, 0.35]])
    d1, lo1, hi1 = E.paired_bootstrap_runs(E.accuracy, y, same_runs, b, n_resamples=400)
    d2, lo2, hi2 = E.paired_bootstrap_runs(E.accuracy, y, spread, b, n_resamples=400)
    assert lo1 < d1 < hi1 and lo1 > 0
    assert hi2 - lo2 > hi1 - lo1                                  # run-to-run spread widens it
    assert E.paired_bootstrap_runs(E.accuracy, y, b, b, n_resamples=50) == (0.0, 0.0, 0.0)
    one = E.paired_bootstrap_runs(E.accuracy, y, b[:1], b[1:2], n_resamples=200)
    assert one[0] == pytest.approx(E.accuracy(y, b[0]) - E.accuracy(y, b[1]))


@pytest.mark.parametrize("a, b, match", [
    (np.zeros((2, 10)), np.zeros((3, 10)), "same runs"),
    (np.zeros(10), np.zeros(10), "runs, examples"),
    (np.zeros((2, 9)), np.zeros((2, 9)), "rows"),
])
def test_paired_bootstrap_over_runs_rejects_mismatched_runs(a, b, match):
    with pytest.raises(ValueError, match=match):
        E.paired_bootstrap_runs(E.accuracy, np.zeros(10), a, b)


def test_per_class_report_names_a_class_that_never_occurs():
    with pytest.raises(ValueError, match=r"no examples of \['c'\]"):
        E.per_class_report([0, 1, 1], [0, 1, 2], class_names=["a", "b", "c"])


def test_pixel_confusion_and_iou_count_pixels_skip_ignored_ones_and_refuse_bad_labels():
    from tlhelpers.evaluate import iou, pixel_confusion
    y = np.array([[[0, 0, 1], [2, 2, -100]], [[0, 1, 1], [1, 2, 2]]])
    p = np.array([[[0, 1, 1], [2, 0, 1]], [[0, 1, 1], [1, 2, 0]]])
    per_image = pixel_confusion(y, p, num_classes=3, per_image=True)
    assert per_image.shape == (2, 3, 3) and per_image.sum() == 11   # the ignored pixel is not counted
    total = pixel_confusion(y, p, num_classes=3)
    assert np.array_equal(per_image.sum(0), total)
    assert total.tolist() == [[2, 1, 0], [0, 4, 0], [2, 0, 2]]
    # IoU = TP / (TP + FP + FN): soil 2 / (2 + 1 + 2), class 1 4 / (4 + 1), class 2 2 / (2 + 2)
    assert np.allclose(iou(total), [0.4, 0.8, 0.5]) and np.allclose(iou(per_image), iou(total))
    assert np.isnan(iou(np.diag([3, 0]))[1])   # absent from truth and predictions: undefined, not 0 or 1
    with pytest.raises(ValueError, match="outside 0..2"):
        pixel_confusion(np.array([0, 3]), np.array([0, 1]), num_classes=3)
    with pytest.raises(ValueError, match="same size"):
        pixel_confusion(np.zeros((2, 2)), np.zeros((2, 3)), num_classes=2)


def test_operating_point_counts_flags_at_the_threshold_and_refuses_one_class():
    from tlhelpers.evaluate import operating_point, threshold_for_recall
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.45, 0.2, 0.6, 0.3, 0.1, 0.05, 0.45])
    t = threshold_for_recall(y, s, recall=0.75)
    assert t == 0.45
    # flagged: 0.9, 0.8, 0.45 (sick) and 0.6, 0.45 (healthy): a score equal to the threshold is flagged
    assert operating_point(y, s, threshold=t) == {"sensitivity": 0.75, "specificity": 0.6,
                                                   "accuracy": 6 / 9}
    with pytest.raises(ValueError, match="both classes"):
        operating_point([1, 1], [0.2, 0.9])


def test_cluster_bootstrap_widens_the_interval_when_examples_repeat():
    """Five photos of each of 60 tiles are not 300 independent test examples: resampling whole
    tiles gives about the interval of 60 examples, resampling photos one that is far too narrow."""
    rng = np.random.default_rng(0)
    right = rng.random(60) < 0.7                      # one verdict per tile...
    y = np.zeros(300, dtype=int)
    pred = np.where(np.repeat(right, 5), 0, 1)        # ...shared by its five photos
    tiles = np.repeat(np.arange(60), 5)
    _, lo_img, hi_img = E.bootstrap_ci(E.accuracy, y, pred, n_resamples=500)
    value, lo, hi = E.bootstrap_ci(E.accuracy, y, pred, n_resamples=500, groups=tiles)
    _, lo_60, hi_60 = E.bootstrap_ci(E.accuracy, y[::5], pred[::5], n_resamples=500)
    assert lo < value < hi
    assert hi - lo > 1.8 * (hi_img - lo_img)
    assert abs((hi - lo) - (hi_60 - lo_60)) < 0.05
    # one example per group is the ordinary bootstrap, draw for draw
    assert E.bootstrap_ci(E.accuracy, y, pred, n_resamples=200, groups=np.arange(300)) == \
        E.bootstrap_ci(E.accuracy, y, pred, n_resamples=200)
    d, lo_d, hi_d = E.paired_bootstrap(E.accuracy, y, pred, np.zeros(300), n_resamples=300, groups=tiles)
    _, lo_di, hi_di = E.paired_bootstrap(E.accuracy, y, pred, np.zeros(300), n_resamples=300)
    assert hi_d - lo_d > 1.8 * (hi_di - lo_di)
    runs = np.stack([pred, pred])
    _, lo_r, hi_r = E.paired_bootstrap_runs(E.accuracy, y, runs, np.zeros((2, 300)), n_resamples=300,
                                            groups=tiles)
    assert hi_r - lo_r > 1.8 * (hi_di - lo_di)


@pytest.mark.parametrize("groups, match", [(np.arange(10), "one id per test example"),
                                           (np.zeros(20), "single group")])
def test_cluster_bootstrap_rejects_bad_groups(groups, match):
    with pytest.raises(ValueError, match=match):
        E.bootstrap_ci(E.accuracy, np.zeros(20, dtype=int), np.zeros(20, dtype=int), groups=groups)


def _boxes(rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def test_detection_matches_follow_coco_and_average_precision_equals_torchmetrics():
    # image 0: two raccoons, found once well, once too loosely (IoU < 0.5), plus a duplicate of the first;
    # image 1: one raccoon found; image 2: no raccoon, one false alarm; image 3: a raccoon never found
    targets = [
        {"boxes": _boxes([[0, 0, 10, 10], [20, 20, 40, 40]]), "labels": torch.tensor([1, 1])},
        {"boxes": _boxes([[5, 5, 25, 25]]), "labels": torch.tensor([1])},
        {"boxes": _boxes([]), "labels": torch.tensor([], dtype=torch.int64)},
        {"boxes": _boxes([[0, 0, 30, 30]]), "labels": torch.tensor([1])},
    ]
    preds = [
        {"boxes": _boxes([[0, 0, 10, 11], [0, 0, 10, 10], [20, 20, 60, 60]]),
         "scores": torch.tensor([0.9, 0.6, 0.8]), "labels": torch.tensor([1, 1, 1])},
        {"boxes": _boxes([[5, 5, 24, 25]]), "scores": torch.tensor([0.7]), "labels": torch.tensor([1])},
        {"boxes": _boxes([[50, 50, 70, 70]]), "scores": torch.tensor([0.85]), "labels": torch.tensor([1])},
        {"boxes": _boxes([]), "scores": torch.tensor([]), "labels": torch.tensor([], dtype=torch.int64)},
    ]
    counts, m = E.detection_matches(preds, targets, max_detections=5)
    assert counts.tolist() == [2, 1, 0, 1] and m.shape == (4, 5, 2)
    # best first: 0.9 takes the first box, 0.8 overlaps the second by 0.25 only, 0.6 finds the first taken
    assert m[0, :3].tolist() == [[pytest.approx(0.9), 1.0], [pytest.approx(0.8), 0.0], [pytest.approx(0.6), 0.0]]
    assert m[2, 0, 1] == 0 and np.isnan(m[3]).all()
    # by hand: sorted 0.9 TP, 0.85 FP, 0.8 FP, 0.7 TP, 0.6 FP over 4 boxes; the envelope is 1 up to
    # recall 0.25 and 0.5 up to recall 0.5, and recall never passes 0.5
    ap = E.average_precision(counts, m)
    assert ap == pytest.approx((26 * 1.0 + 25 * 0.5) / 101)
    tm = pytest.importorskip("torchmetrics.detection")
    metric = tm.MeanAveragePrecision(iou_type="bbox")
    metric.update(preds, targets)
    assert ap == pytest.approx(float(metric.compute()["map_50"]), abs=1e-6)
    # a stricter match can only lose true positives
    _, strict = E.detection_matches(preds, targets, iou_threshold=0.95, max_detections=5)
    assert E.average_precision(counts, strict) <= ap
    # resampling images works through the bootstrap helpers
    value, low, high = E.bootstrap_ci(E.average_precision, counts, m, n_resamples=50)
    assert value == ap and 0 <= low <= high <= 1


def test_detection_matches_refuse_mismatched_lists_and_empty_ground_truth_is_nan():
    one = [{"boxes": _boxes([[0, 0, 5, 5]]), "labels": torch.tensor([1])}]
    with pytest.raises(ValueError, match="2 predictions for 1 targets"):
        E.detection_matches(one * 2, one)
    none = [{"boxes": _boxes([]), "labels": torch.tensor([], dtype=torch.int64)}]
    pred = [{"boxes": _boxes([[0, 0, 5, 5]]), "scores": torch.tensor([0.5]), "labels": torch.tensor([1])}]
    counts, m = E.detection_matches(pred, none)
    assert np.isnan(E.average_precision(counts, m))
    counts, m = E.detection_matches([{**pred[0], "boxes": _boxes([]), "scores": torch.tensor([]),
                                             "labels": torch.tensor([], dtype=torch.int64)}], one)
    assert E.average_precision(counts, m) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_macro_f1_and_roc_auc_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 200)
    p = np.where(rng.random(200) < 0.6, y, rng.integers(0, 4, 200))   # predicts a class never true too
    assert E.macro_f1(y, p) == pytest.approx(skm.f1_score(y, p, average="macro", zero_division=0))
    assert E.macro_f1(np.array(["b", "a"])[y % 2], np.array(["b", "a"])[p % 2]) == pytest.approx(
        skm.f1_score(y % 2, p % 2, average="macro"))   # any label type
    yb = y % 2
    scores = np.round(rng.random(200) + 0.3 * yb, 1)   # rounded: many ties, which count half
    assert E.roc_auc(yb, scores) == pytest.approx(skm.roc_auc_score(yb, scores))
    assert E.roc_auc(np.where(yb == 1, 7, 3), scores) == pytest.approx(skm.roc_auc_score(yb, scores))  # 7 positive
    i = rng.integers(0, 200, 200)   # a bootstrap resample, with repeats
    assert E.roc_auc(yb[i], scores[i]) == pytest.approx(skm.roc_auc_score(yb[i], scores[i]))


def test_fast_metrics_refuse_bad_input():
    with pytest.raises(ValueError, match="rows"):
        E.macro_f1([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="both classes"):
        E.roc_auc([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ValueError, match="positive class's column"):
        E.roc_auc([0, 1], [[0.8, 0.2], [0.3, 0.7]])
    with pytest.raises(ValueError, match="NaN"):
        E.roc_auc([0, 1], [0.2, np.nan])
    with pytest.raises(ValueError, match="rows"):
        E.accuracy([0, 1, 1], [0, 1])
    assert E.accuracy([0, 1, 2], np.array([[0], [1], [1]])) == pytest.approx(2 / 3)   # a column, not broadcast
    probs = np.full((3, 3), 1 / 3)   # probabilities, not labels: refused, not broadcast
    for metric in (E.accuracy, E.balanced_accuracy, E.macro_f1):
        with pytest.raises(ValueError, match="argmax"):
            metric([0, 1, 2], probs)
