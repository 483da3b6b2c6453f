"""fmnist_c.metrics against hand-computed values (always) and scikit-learn / SciPy (when
installed)."""
import math
from fractions import Fraction
from statistics import NormalDist

import numpy as np
import pytest

from fmnist_c import metrics
from fmnist_c.data import CLASS_NAMES

# a small case worked by hand: labels 0, 1, 2
Y_TRUE = [0, 0, 0, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 1, 0, 1, 2, 2, 2, 0, 2]
CM = [[2, 1, 0],
      [0, 1, 1],
      [1, 0, 3]]


def random_labels(n=500, k=10, seed=0, accuracy=0.8):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, k, n)
    y_pred = np.where(rng.random(n) < accuracy, y_true, rng.integers(0, k, n))
    return y_true, y_pred


def mcnemar_arrays(b, c, both_right=7, both_wrong=3):
    """Labels where a is right and b wrong on b samples, the reverse on c samples."""
    y_true = np.zeros(b + c + both_right + both_wrong, dtype=np.int64)
    pred_a = np.concatenate([np.zeros(b), np.ones(c), np.zeros(both_right), np.ones(both_wrong)])
    pred_b = np.concatenate([np.ones(b), np.zeros(c), np.zeros(both_right), np.full(both_wrong, 2)])
    return y_true, pred_a.astype(np.int64), pred_b.astype(np.int64)


# ----------------------------------------------------------------------------- hand values

def test_accuracy_by_hand():
    assert metrics.accuracy_score(Y_TRUE, Y_PRED) == pytest.approx(6 / 9)
    w = [1, 1, 1, 1, 1, 1, 1, 1, 4]
    assert metrics.accuracy_score(Y_TRUE, Y_PRED, sample_weight=w) == pytest.approx(9 / 12)


def test_confusion_matrix_by_hand():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CM)


def test_confusion_matrix_labels_reorder_and_drop():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, labels=[2, 0])
    # samples with actual or predicted class 1 are left out
    np.testing.assert_array_equal(cm, [[3, 1], [0, 2]])
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, labels=[0, 1, 2, 7])
    assert cm.shape == (4, 4) and cm[3].sum() == 0 and cm[:, 3].sum() == 0


def test_confusion_matrix_strings():
    names = np.array(["bag", "coat", "shirt"])
    cm = metrics.confusion_matrix(names[Y_TRUE], list(names[Y_PRED]))
    np.testing.assert_array_equal(cm, CM)


def test_confusion_matrix_normalize_by_hand():
    cm = np.array(CM, dtype=float)
    true = metrics.confusion_matrix(Y_TRUE, Y_PRED, normalize="true")
    np.testing.assert_allclose(true, cm / [[3], [2], [4]])
    np.testing.assert_allclose(true.sum(axis=1), 1.0)
    pred = metrics.confusion_matrix(Y_TRUE, Y_PRED, normalize="pred")
    np.testing.assert_allclose(pred, cm / [3, 2, 4])
    np.testing.assert_allclose(metrics.confusion_matrix(Y_TRUE, Y_PRED, normalize="all"), cm / 9)
    # an empty row (class 7 never occurs) stays 0 instead of NaN
    empty = metrics.confusion_matrix(Y_TRUE, Y_PRED, labels=[0, 1, 2, 7], normalize="true")
    np.testing.assert_array_equal(empty[3], 0.0)


def test_precision_recall_f1_by_hand():
    p, r, f1, s = metrics.precision_recall_f1(Y_TRUE, Y_PRED)
    np.testing.assert_allclose(p, [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(r, [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_allclose(f1, [2 / 3, 1 / 2, 3 / 4])
    np.testing.assert_array_equal(s, [3, 2, 4])
    assert s.dtype == np.int64


def test_precision_recall_f1_zero_division_is_zero():
    # class 2 is never predicted, class 3 never occurs
    p, r, f1, s = metrics.precision_recall_f1([0, 1, 2], [0, 1, 1], labels=[0, 1, 2, 3])
    np.testing.assert_allclose(p, [1, 0.5, 0, 0])
    np.testing.assert_allclose(r, [1, 1, 0, 0])
    np.testing.assert_allclose(f1, [1, 2 / 3, 0, 0])
    np.testing.assert_array_equal(s, [1, 1, 1, 0])


def test_f1_score_by_hand():
    y_true, y_pred = [0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 3, fp 1, fn 1 -> 0.75
    np.testing.assert_allclose(metrics.f1_score(y_true, y_pred, average=None), [0.5, 0.75])
    assert metrics.f1_score(y_true, y_pred) == pytest.approx(0.625)
    assert metrics.f1_score(y_true, y_pred, average="weighted") == pytest.approx((0.5 * 2 + 0.75 * 4) / 6)
    assert metrics.f1_score(y_true, y_pred, average="micro") == pytest.approx(4 / 6)


def test_classification_report_by_hand():
    report = metrics.classification_report(Y_TRUE, Y_PRED, class_names=["a", "b", "c"])
    assert report.splitlines()[0].split() == ["precision", "recall", "f1-score", "support"]
    assert "           a     0.6667    0.6667    0.6667         3" in report
    assert "    accuracy                         0.6667         9" in report
    macro = (2 / 3 + 1 / 2 + 3 / 4) / 3
    weighted = (2 / 3 * 3 + 1 / 2 * 2 + 3 / 4 * 4) / 9
    assert f"   macro avg     {macro:.4f}    {macro:.4f}    {macro:.4f}         9" in report
    assert f"weighted avg     {weighted:.4f}" in report

    d = metrics.classification_report(Y_TRUE, Y_PRED, class_names=["a", "b", "c"], output_dict=True)
    assert list(d) == ["a", "b", "c", "accuracy", "macro avg", "weighted avg"]
    assert d["c"] == {"precision": 0.75, "recall": 0.75, "f1-score": 0.75, "support": 4}
    assert d["accuracy"] == pytest.approx(6 / 9)
    assert d["macro avg"]["f1-score"] == pytest.approx(macro)
    assert d["weighted avg"]["recall"] == pytest.approx(weighted)


def test_classification_report_default_names():
    y_true, y_pred = random_labels()
    report = metrics.classification_report(y_true, y_pred, digits=2)
    for name in CLASS_NAMES:
        assert name in report
    # names can also be indexed by label when fewer classes occur
    d = metrics.classification_report([0, 6, 6], [0, 6, 0], class_names=CLASS_NAMES, output_dict=True)
    assert set(d) >= {"T-shirt/top", "Shirt"}
    assert "2" in metrics.classification_report([0, 2, 12], [0, 2, 12])


# ----------------------------------------------------------------------------- vs scikit-learn

@pytest.mark.parametrize("normalize", [None, "true", "pred", "all"])
@pytest.mark.parametrize("labels", [None, [3, 1, 0, 9, 4], list(range(12))])
def test_confusion_matrix_matches_sklearn(normalize, labels):
    skm = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = random_labels(n=700, seed=1)
    ours = metrics.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)
    theirs = skm.confusion_matrix(y_true, y_pred, labels=labels, normalize=normalize)
    assert ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


def test_scores_match_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = random_labels(n=999, seed=2, accuracy=0.6)
    y_pred[y_pred == 4] = 5  # class 4 is never predicted: zero division
    w = np.random.default_rng(3).random(len(y_true))
    assert metrics.accuracy_score(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert metrics.accuracy_score(y_true, y_pred, sample_weight=w) == pytest.approx(
        skm.accuracy_score(y_true, y_pred, sample_weight=w))
    for labels in (None, [4, 0, 11]):
        ours = metrics.precision_recall_f1(y_true, y_pred, labels=labels)
        theirs = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, average=None,
                                                     zero_division=0)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-12)
    for average in (None, "macro", "weighted", "micro"):
        np.testing.assert_allclose(metrics.f1_score(y_true, y_pred, average=average),
                                   skm.f1_score(y_true, y_pred, average=average, zero_division=0),
                                   rtol=1e-12)


@pytest.mark.parametrize("digits", [2, 4])
def test_classification_report_matches_sklearn(digits):
    skm = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = random_labels(n=1234, seed=4)
    y_pred[y_pred == 8] = 3
    ours = metrics.classification_report(y_true, y_pred, digits=digits)
    theirs = skm.classification_report(y_true, y_pred, target_names=list(CLASS_NAMES),
                                       digits=digits, zero_division=0)
    assert ours == theirs

    ours = metrics.classification_report(y_true, y_pred, output_dict=True)
    theirs = skm.classification_report(y_true, y_pred, target_names=list(CLASS_NAMES),
                                       output_dict=True, zero_division=0)
    assert list(ours) == list(theirs)
    assert ours["accuracy"] == pytest.approx(theirs["accuracy"])
    for key in theirs:
        if key != "accuracy":
            assert ours[key] == pytest.approx(theirs[key]), key


def test_classification_report_strings_match_sklearn():
    skm = pytest.importorskip("sklearn.metrics")
    names = np.array(["cat", "dog", "a much longer class name"])
    y_true, y_pred = random_labels(n=300, k=3, seed=5)
    assert metrics.classification_report(names[y_true], names[y_pred], digits=3) == \
        skm.classification_report(names[y_true], names[y_pred], digits=3)


# ----------------------------------------------------------------------------- confusions

def fmnist_like_cm():
    cm = np.diag(np.full(10, 1000)).astype(np.int64)
    cm[6, 6] = 1000
    cm[6, 0] = 194  # shirt row: 1000 + 194 + 150 + 126 = 1470
    cm[6, 2] = 150
    cm[6, 4] = 126
    cm[2, 4] = 160
    cm[0, 6] = 1
    return cm


def test_top_confusions():
    found = metrics.top_confusions(fmnist_like_cm(), k=3)
    assert [(c.actual, c.predicted, c.count) for c in found] == [
        ("Shirt", "T-shirt/top", 194), ("Pullover", "Coat", 160), ("Shirt", "Pullover", 150)]
    assert found[0].rate == pytest.approx(194 / 1470)
    assert found[1].rate == pytest.approx(160 / 1160)
    assert str(found[0]) == "Shirt is predicted as T-shirt/top 194 times (13.2% of Shirt images)"
    assert isinstance(found[0].count, int)


def test_top_confusions_skips_zero_cells_and_names():
    found = metrics.top_confusions(CM, k=10, class_names=["a", "b", "c"])
    # the three nonzero off-diagonal cells, ties in row-major order
    assert [(c.actual, c.predicted) for c in found] == [("a", "b"), ("b", "c"), ("c", "a")]
    assert str(found[0]) == "a is predicted as b 1 time (33.3% of a images)"
    assert [c.actual for c in metrics.top_confusions(CM)] == ["0", "1", "2"]


def test_describe_confusions():
    text = metrics.describe_confusions(fmnist_like_cm(), k=2)
    assert text.splitlines() == [
        "Shirt is predicted as T-shirt/top 194 times (13.2% of Shirt images)",
        "Pullover is predicted as Coat 160 times (13.8% of Pullover images)"]
    assert metrics.describe_confusions(np.eye(3)) == "No class is confused with another."


@pytest.mark.parametrize("cm, error", [
    (np.ones((2, 3)), ValueError),
    (np.ones(4), ValueError),
    (np.zeros((0, 0)), ValueError),
    ([[1, -1], [0, 1]], ValueError),
    ([[1, np.nan], [0, 1]], ValueError),
    ([["a", "b"], ["c", "d"]], TypeError),
])
def test_top_confusions_rejects_bad_matrices(cm, error):
    with pytest.raises(error):
        metrics.top_confusions(cm)


def test_top_confusions_rejects_bad_k_and_names():
    with pytest.raises(ValueError, match="k must be"):
        metrics.top_confusions(CM, k=0)
    with pytest.raises(ValueError, match="class names"):
        metrics.top_confusions(CM, class_names=["a", "b"])


# ----------------------------------------------------------------------------- intervals

def successes(x, n):
    """y_true, y_pred with x correct predictions out of n."""
    return np.zeros(n, dtype=np.int64), np.concatenate([np.zeros(x), np.ones(n - x)]).astype(np.int64)


def wilson_roots(x, n, z):
    """The Wilson bounds as the roots of (p_hat - p)^2 = z^2 p (1 - p) / n in p."""
    p_hat = x / n
    # (1 + z^2/n) p^2 - (2 p_hat + z^2/n) p + p_hat^2 = 0
    return np.sort(np.roots([1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat]))


def test_accuracy_ci_wilson_84_of_100():
    acc, low, high = metrics.accuracy_ci(*successes(84, 100))
    assert acc == 0.84
    np.testing.assert_allclose([low, high], wilson_roots(84, 100, 1.959963984540054), rtol=1e-10)
    assert (round(low, 4), round(high, 4)) == (0.7558, 0.8990)


def test_accuracy_ci_wilson_newcombe_1998():
    # Newcombe (1998), Stat. Med. 17:857, example 81/263: Wilson 95% = 0.2553 to 0.3662
    acc, low, high = metrics.accuracy_ci(*successes(81, 263))
    assert acc == pytest.approx(81 / 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_accuracy_ci_other_levels_and_normal():
    z99 = 2.5758293035489004
    _, low, high = metrics.accuracy_ci(*successes(84, 100), confidence=0.99)
    np.testing.assert_allclose([low, high], wilson_roots(84, 100, z99), rtol=1e-10)
    acc, low, high = metrics.accuracy_ci(*successes(84, 100), method="normal")
    half = 1.959963984540054 * math.sqrt(0.84 * 0.16 / 100)
    assert (low, high) == pytest.approx((0.84 - half, 0.84 + half), rel=1e-12)
    # the normal interval is clipped to [0, 1]; Wilson's lower bound for all-correct is n/(n+z^2)
    assert metrics.accuracy_ci(*successes(5, 5), method="normal") == (1.0, 1.0, 1.0)
    acc, low, high = metrics.accuracy_ci(*successes(20, 20))
    assert high == 1.0 and low == pytest.approx(20 / (20 + 1.959963984540054 ** 2))


def test_accuracy_ci_rejects_bad_arguments():
    y_true, y_pred = successes(8, 10)
    with pytest.raises(ValueError, match="confidence"):
        metrics.accuracy_ci(y_true, y_pred, confidence=95)
    with pytest.raises(ValueError, match="method"):
        metrics.accuracy_ci(y_true, y_pred, method="exact")


# ----------------------------------------------------------------------------- McNemar

def exact_p(b, c):
    """Two-sided exact binomial p-value with rational arithmetic."""
    n, m = b + c, min(b, c)
    return float(min(Fraction(1), Fraction(2 * sum(math.comb(n, i) for i in range(m + 1)), 2 ** n)))


def test_mcnemar_exact_known_value():
    result = metrics.mcnemar(*mcnemar_arrays(10, 2))
    assert (result.b, result.c) == (10, 2)
    assert result.statistic == 2
    assert result.pvalue == pytest.approx(79 / 2048, rel=1e-12)  # 2 (1 + 12 + 66) / 2^12
    assert round(result.pvalue, 4) == 0.0386
    # swapping the models swaps b and c, not the p-value
    y_true, pred_a, pred_b = mcnemar_arrays(10, 2)
    swapped = metrics.mcnemar(y_true, pred_b, pred_a)
    assert (swapped.b, swapped.c) == (2, 10) and swapped.pvalue == pytest.approx(result.pvalue)


@pytest.mark.parametrize("b, c", [(0, 0), (0, 1), (3, 3), (7, 0), (12, 12), (1, 23), (400, 350),
                                  (3000, 2900), (20000, 1000)])
def test_mcnemar_exact_against_rational_arithmetic(b, c):
    result = metrics.mcnemar(*mcnemar_arrays(b, c), exact=True)
    assert result.pvalue == pytest.approx(exact_p(b, c), rel=1e-9, abs=1e-300)
    assert 0 <= result.pvalue <= 1


def test_mcnemar_exact_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(5, 1), (9, 15), (30, 60), (100, 130)]:
        expected = stats.binomtest(min(b, c), b + c, 0.5).pvalue
        assert metrics.mcnemar(*mcnemar_arrays(b, c), exact=True).pvalue == pytest.approx(expected, rel=1e-9)


def test_mcnemar_chi_square_known_value():
    result = metrics.mcnemar(*mcnemar_arrays(150, 86))
    statistic = 63 ** 2 / 236
    assert result.statistic == pytest.approx(statistic, rel=1e-12)
    assert round(result.statistic, 3) == 16.818
    # chi-square with 1 df is Z^2, so P(X > s) = 2 (1 - Phi(sqrt(s)))
    assert result.pvalue == pytest.approx(2 * (1 - NormalDist().cdf(math.sqrt(statistic))), rel=1e-9)
    assert 4.0e-5 < result.pvalue < 4.2e-5


def test_mcnemar_chi_square_matches_scipy_and_edges():
    stats = pytest.importorskip("scipy.stats")
    for b, c in [(30, 12), (41, 77), (500, 520)]:
        result = metrics.mcnemar(*mcnemar_arrays(b, c))
        assert result.pvalue == pytest.approx(stats.chi2.sf(result.statistic, 1), rel=1e-9)


def test_mcnemar_choice_of_test_and_ties():
    assert metrics.mcnemar(*mcnemar_arrays(20, 4)).statistic == 4  # b + c < 25: exact
    assert metrics.mcnemar(*mcnemar_arrays(20, 5)).statistic == pytest.approx(14 ** 2 / 25)
    assert metrics.mcnemar(*mcnemar_arrays(20, 4), exact=False).statistic == pytest.approx(15 ** 2 / 24)
    tie = metrics.mcnemar(*mcnemar_arrays(40, 40))
    assert (tie.statistic, tie.pvalue) == (0.0, 1.0)
    none = metrics.mcnemar(*mcnemar_arrays(0, 0), exact=False)
    assert (none.statistic, none.pvalue, none.b, none.c) == (0.0, 1.0, 0, 0)
    with pytest.raises(ValueError, match="exact"):
        metrics.mcnemar(*mcnemar_arrays(1, 1), exact="yes")


def test_mcnemar_length_mismatch_names_the_arrays():
    y_true, pred_a, pred_b = mcnemar_arrays(4, 2)
    with pytest.raises(ValueError, match=r"y_true and pred_b have different lengths: 16 and 15"):
        metrics.mcnemar(y_true, pred_a, pred_b[:-1])


# ----------------------------------------------------------------------------- bad input

def test_length_mismatch_names_both_lengths():
    with pytest.raises(ValueError, match=r"y_true and y_pred have different lengths: 3 and 2"):
        metrics.accuracy_score([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="3 and 2"):
        metrics.confusion_matrix([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.accuracy_score([0, 1], [0, 1], sample_weight=[1, 1, 1])


@pytest.mark.parametrize("func", [metrics.accuracy_score, metrics.confusion_matrix,
                                  metrics.precision_recall_f1, metrics.f1_score,
                                  metrics.classification_report, metrics.accuracy_ci])
def test_bad_labels_are_rejected(func):
    with pytest.raises(ValueError, match="1-D"):
        func([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="empty"):
        func([], [])
    with pytest.raises(TypeError, match="integer"):
        func([0.5, 1.0], [0, 1])
    with pytest.raises(TypeError, match="strings"):
        func(["a", "b"], [0, 1])
    with pytest.raises(TypeError):
        func([None, 1], [0, 1])


def test_integral_floats_and_bools_are_labels():
    assert metrics.accuracy_score([0.0, 1.0, 2.0], [0, 1, 1]) == pytest.approx(2 / 3)
    np.testing.assert_array_equal(metrics.confusion_matrix([True, False], [True, True]), [[0, 1], [0, 1]])


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="normalize"):
        metrics.confusion_matrix(Y_TRUE, Y_PRED, normalize="rows")
    with pytest.raises(ValueError, match="repeat"):
        metrics.confusion_matrix(Y_TRUE, Y_PRED, labels=[0, 1, 1])
    with pytest.raises(ValueError, match="y_true"):
        metrics.confusion_matrix(Y_TRUE, Y_PRED, labels=[5, 6])
    with pytest.raises(TypeError):
        metrics.confusion_matrix(Y_TRUE, Y_PRED, labels=["a", "b"])
    with pytest.raises(ValueError, match="average"):
        metrics.f1_score(Y_TRUE, Y_PRED, average="samples")
    with pytest.raises(ValueError, match="digits"):
        metrics.classification_report(Y_TRUE, Y_PRED, digits=-1)
    with pytest.raises(ValueError, match="class names"):
        metrics.classification_report(Y_TRUE, Y_PRED, class_names=["a", "b"])
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.accuracy_score([0, 1], [0, 1], sample_weight=[0, 0])


def test_inputs_are_not_modified():
    y_true, y_pred = random_labels(n=100)
    before = y_true.copy(), y_pred.copy()
    metrics.confusion_matrix(y_true, y_pred, normalize="true")
    metrics.classification_report(y_true, y_pred)
    metrics.mcnemar(y_true, y_pred, y_true)
    np.testing.assert_array_equal(y_true, before[0])
    np.testing.assert_array_equal(y_pred, before[1])
