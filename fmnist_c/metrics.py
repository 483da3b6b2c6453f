"""Classification metrics for comparing models: scores, confusion matrices, intervals, tests.

Pure NumPy and the standard library. Numbers follow scikit-learn's definitions (division
by zero gives 0) so results can be checked against it, but scikit-learn is not needed.
"""
import math
from collections import namedtuple
from statistics import NormalDist

import numpy as np

__all__ = [
    "accuracy_score",
    "confusion_matrix",
    "precision_recall_f1",
    "f1_score",
    "classification_report",
    "top_confusions",
    "describe_confusions",
    "accuracy_ci",
    "mcnemar",
    "Confusion",
    "AccuracyCI",
    "McNemarResult",
]

_NORMALIZE = (None, "true", "pred", "all")


# ----------------------------------------------------------------------------- validation

def _as_labels(y, name):
    """A 1-D, non-empty array of integer (int64) or string labels."""
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    kind = a.dtype.kind
    if kind in "iub":
        return a.astype(np.int64, copy=False)
    if kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise TypeError(f"{name} must hold integer class labels, got non-integer floats")
        return a.astype(np.int64)
    if kind in "US":
        return a.astype(str, copy=False)
    if kind == "O":
        if all(isinstance(v, str) for v in a):
            return a.astype(str)
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in a):
            return a.astype(np.int64)
    raise TypeError(f"{name} must hold integer or string class labels, got dtype {a.dtype}")


def _check_labels(**arrays):
    """Validate label arrays given by name: 1-D, non-empty, same length, same kind."""
    items = [(name, _as_labels(y, name)) for name, y in arrays.items()]
    first_name, first = items[0]
    for name, a in items[1:]:
        if len(a) != len(first):
            raise ValueError(
                f"{first_name} and {name} have different lengths: {len(first)} and {len(a)}")
        if (a.dtype.kind == "U") != (first.dtype.kind == "U"):
            kinds = ["strings" if x.dtype.kind == "U" else "integers" for x in (first, a)]
            raise TypeError(f"{first_name} holds {kinds[0]} but {name} holds {kinds[1]}")
    return [a for _, a in items]


def _resolve_labels(labels, *ys):
    """The label order: `labels` as given (checked), or the sorted union of `ys`."""
    if labels is None:
        return np.unique(np.concatenate(ys))
    labels = _as_labels(labels, "labels")
    if (labels.dtype.kind == "U") != (ys[0].dtype.kind == "U"):
        raise TypeError("labels and y_true must both be integers or both be strings")
    if len(np.unique(labels)) != len(labels):
        raise ValueError("labels must not repeat")
    return labels


def _label_index(y, labels):
    """Position of each y in `labels`, and a mask of the ys that are in it."""
    order = np.argsort(labels, kind="stable")
    pos = np.minimum(np.searchsorted(labels[order], y), len(labels) - 1)
    found = labels[order][pos] == y
    return order[pos], found


def _check_cm(cm):
    """A square, non-negative, finite numeric matrix."""
    a = np.asarray(cm)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"confusion matrix must be numeric, got dtype {a.dtype}")
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"confusion matrix must be square and non-empty, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError("confusion matrix must hold finite, non-negative values")
    return a


def _safe_divide(num, den):
    """num / den elementwise, 0 where den is 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _normalize_cm(cm, normalize):
    """Rows ("true"), columns ("pred") or the whole matrix ("all") summing to 1."""
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    if normalize is None:
        return cm
    if normalize == "true":
        return _safe_divide(cm, cm.sum(axis=1, keepdims=True))
    if normalize == "pred":
        return _safe_divide(cm, cm.sum(axis=0, keepdims=True))
    return _safe_divide(cm, cm.sum())


def _class_names(labels, class_names=None):
    """Display names for `labels`.

    Given names are matched by position when there are as many as labels, otherwise by
    integer label (names[label]). Without names, integer labels 0..9 get Fashion-MNIST's
    class names and anything else its own text.
    """
    labels = list(labels.tolist() if isinstance(labels, np.ndarray) else labels)
    is_index = all(isinstance(v, int) and not isinstance(v, bool) for v in labels)
    if class_names is None:
        from .data import CLASS_NAMES
        if is_index and all(0 <= v < len(CLASS_NAMES) for v in labels):
            return [CLASS_NAMES[v] for v in labels]
        return [str(v) for v in labels]
    names = [str(n) for n in class_names]
    if len(names) == len(labels):
        return names
    if is_index and all(0 <= v < len(names) for v in labels):
        return [names[v] for v in labels]
    raise ValueError(f"{len(names)} class names do not fit the {len(labels)} labels {labels}")


def _cm_class_names(k, class_names=None):
    """Names for the rows of a k x k matrix: Fashion-MNIST's ten when k == 10."""
    if class_names is None and k != 10:
        return [str(i) for i in range(k)]
    names = _class_names(np.arange(k), class_names)
    if len(names) != k:
        raise ValueError(f"{len(names)} class names given for a {k}x{k} matrix")
    return names


# ----------------------------------------------------------------------------- scores

def accuracy_score(y_true, y_pred, sample_weight=None):
    """Fraction of predictions equal to the truth (weighted by `sample_weight` if given)."""
    y_true, y_pred = _check_labels(y_true=y_true, y_pred=y_pred)
    correct = y_true == y_pred
    if sample_weight is None:
        return float(np.mean(correct))
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != y_true.shape:
        raise ValueError(f"y_true and sample_weight have different lengths: {len(y_true)} "
                         f"and {w.shape[0] if w.ndim == 1 else w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() == 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero")
    return float(np.sum(w * correct) / np.sum(w))


def confusion_matrix(y_true, y_pred, labels=None, normalize=None):
    """Counts C[i, j] of samples of actual class labels[i] predicted as labels[j].

    labels: the classes and their order (default: sorted union of both arrays); samples
    whose actual or predicted class is not listed are left out, as in scikit-learn.
    normalize: None (int64 counts), "true" (rows sum to 1), "pred" (columns sum to 1) or
    "all" (the matrix sums to 1); empty rows or columns stay 0.
    """
    y_true, y_pred = _check_labels(y_true=y_true, y_pred=y_pred)
    if normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    labels = _resolve_labels(labels, y_true, y_pred)
    it, in_true = _label_index(y_true, labels)
    ip, in_pred = _label_index(y_pred, labels)
    if not in_true.any():
        raise ValueError("At least one label specified must be in y_true")
    keep = in_true & in_pred
    k = len(labels)
    cm = np.bincount(it[keep] * k + ip[keep], minlength=k * k).reshape(k, k).astype(np.int64)
    return _normalize_cm(cm, normalize)


def precision_recall_f1(y_true, y_pred, labels=None):
    """Per-class (precision, recall, f1, support) arrays in the order of `labels`.

    Precision = TP / predicted, recall = TP / support, F1 = 2 TP / (support + predicted);
    a zero denominator gives 0. Support is the int64 count of actual samples per class.
    """
    y_true, y_pred = _check_labels(y_true=y_true, y_pred=y_pred)
    labels = _resolve_labels(labels, y_true, y_pred)
    k = len(labels)
    it, in_true = _label_index(y_true, labels)
    ip, in_pred = _label_index(y_pred, labels)
    support = np.bincount(it[in_true], minlength=k)
    predicted = np.bincount(ip[in_pred], minlength=k)
    tp = np.bincount(it[in_true & (y_true == y_pred)], minlength=k)
    precision = _safe_divide(tp, predicted)
    recall = _safe_divide(tp, support)
    f1 = _safe_divide(2 * tp, support + predicted)
    return precision, recall, f1, support.astype(np.int64)


def f1_score(y_true, y_pred, average="macro", labels=None):
    """F1 per class (average=None) or averaged: "macro" (plain mean over classes),
    "weighted" (by support) or "micro" (from global counts; equals accuracy when every
    class is included)."""
    if average not in (None, "macro", "weighted", "micro"):
        raise ValueError(f"average must be None, 'macro', 'weighted' or 'micro', got {average!r}")
    y_true, y_pred = _check_labels(y_true=y_true, y_pred=y_pred)
    if average == "micro":
        labels = _resolve_labels(labels, y_true, y_pred)
        _, in_true = _label_index(y_true, labels)
        _, in_pred = _label_index(y_pred, labels)
        tp = np.sum(in_true & (y_true == y_pred))
        return float(_safe_divide(2 * tp, in_true.sum() + in_pred.sum()))
    _, _, f1, support = precision_recall_f1(y_true, y_pred, labels)
    if average is None:
        return f1
    if average == "macro":
        return float(np.mean(f1))
    return float(_safe_divide(np.sum(f1 * support), np.sum(support)))


def classification_report(y_true, y_pred, class_names=None, digits=4, output_dict=False):
    """Precision, recall, F1 and support per class, then accuracy, macro and weighted
    averages: a text table laid out like scikit-learn's, or a dict with the same keys
    ("precision", "recall", "f1-score", "support"; "accuracy" holds a float)."""
    y_true, y_pred = _check_labels(y_true=y_true, y_pred=y_pred)
    if isinstance(digits, bool) or not isinstance(digits, (int, np.integer)) or digits < 0:
        raise ValueError(f"digits must be a non-negative integer, got {digits!r}")
    labels = _resolve_labels(None, y_true, y_pred)
    names = _class_names(labels, class_names)
    p, r, f1, s = precision_recall_f1(y_true, y_pred, labels)
    total = int(s.sum())
    accuracy = accuracy_score(y_true, y_pred)
    rows = [(name, p[i], r[i], f1[i], int(s[i])) for i, name in enumerate(names)]
    averages = [
        ("macro avg", p.mean(), r.mean(), f1.mean(), total),
        ("weighted avg", *(float(np.sum(m * s) / total) for m in (p, r, f1)), total),
    ]
    if output_dict:
        keys = ("precision", "recall", "f1-score", "support")
        report = {name: dict(zip(keys, (float(a), float(b), float(c), n)))
                  for name, a, b, c, n in rows}
        report["accuracy"] = accuracy
        report.update({name: dict(zip(keys, (float(a), float(b), float(c), n)))
                       for name, a, b, c, n in averages})
        return report
    width = max(max(len(n) for n in names), len("weighted avg"), digits)
    header = "{:>{width}s} ".format("", width=width) + "".join(
        f" {h:>9}" for h in ("precision", "recall", "f1-score", "support"))
    row_fmt = "{:>{width}s} " + " {:>9.{digits}f}" * 3 + " {:>9}\n"
    lines = [header, "\n\n"]
    lines += [row_fmt.format(*row, width=width, digits=digits) for row in rows]
    lines.append("\n")
    lines.append("{:>{width}s} ".format("accuracy", width=width) + " " * 20
                 + " {:>9.{digits}f} {:>9}\n".format(accuracy, total, digits=digits))
    lines += [row_fmt.format(*row, width=width, digits=digits) for row in averages]
    return "".join(lines)


# ----------------------------------------------------------------------------- confusions

class Confusion(namedtuple("Confusion", "actual predicted count rate")):
    """One off-diagonal cell: images of class `actual` predicted as `predicted`;
    rate = count / number of `actual` images."""

    __slots__ = ()

    def __str__(self):
        count = self.count
        if float(count).is_integer():
            n = int(count)
            how_often = f"{n} time" if n == 1 else f"{n} times"
        else:
            how_often = f"with weight {count:.3g}"
        return (f"{self.actual} is predicted as {self.predicted} {how_often} "
                f"({self.rate:.1%} of {self.actual} images)")


def top_confusions(cm, k=5, class_names=None):
    """The k largest off-diagonal cells of a confusion matrix (rows = actual), largest
    count first; cells that are 0 are never listed, so fewer than k may come back.

    class_names defaults to Fashion-MNIST's for a 10 x 10 matrix, else "0".."n-1".
    """
    cm = _check_cm(cm)
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    names = _cm_class_names(cm.shape[0], class_names)
    off = cm.astype(np.float64)
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    row_sums = cm.sum(axis=1)
    out = []
    for i, j in zip(*np.unravel_index(flat, cm.shape)):
        if off[i, j] <= 0:
            break
        count = int(cm[i, j]) if cm.dtype.kind in "iu" else float(cm[i, j])
        out.append(Confusion(names[i], names[j], count, float(cm[i, j] / row_sums[i])))
    return out


def describe_confusions(cm, k=5, class_names=None):
    """The answer to "which classes does it confuse?" in words, one confusion a line."""
    found = top_confusions(cm, k, class_names)
    if not found:
        return "No class is confused with another."
    return "\n".join(str(c) for c in found)


# ----------------------------------------------------------------------------- inference

AccuracyCI = namedtuple("AccuracyCI", "accuracy low high")
McNemarResult = namedtuple("McNemarResult", "statistic pvalue b c")


def accuracy_ci(y_true, y_pred, confidence=0.95, method="wilson"):
    """Accuracy with a two-sided confidence interval for it, as (accuracy, low, high).

    method "wilson": the Wilson score interval (good even near 0 or 1 and for small n);
    "normal": the Wald interval acc +- z sqrt(acc (1 - acc) / n), clipped to [0, 1].
    """
    if method not in ("wilson", "normal"):
        raise ValueError(f"method must be 'wilson' or 'normal', got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    y_true, y_pred = _check_labels(y_true=y_true, y_pred=y_pred)
    n = len(y_true)
    acc = float(np.mean(y_true == y_pred))
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    if method == "normal":
        half = z * math.sqrt(acc * (1 - acc) / n)
        return AccuracyCI(acc, max(0.0, acc - half), min(1.0, acc + half))
    z2 = z * z
    denom = 1 + z2 / n
    centre = (acc + z2 / (2 * n)) / denom
    half = z * math.sqrt(acc * (1 - acc) / n + z2 / (4 * n * n)) / denom
    return AccuracyCI(acc, max(0.0, centre - half), min(1.0, centre + half))


def _binomial_two_sided(m, n):
    """Two-sided p-value of m successes (m <= n / 2) in n fair coin flips:
    2 P(X <= m), summed in log space so large n neither overflows nor underflows early."""
    if n == 0:
        return 1.0
    i = np.arange(1, m + 1)
    # log C(n, i) = sum over j <= i of log((n - j + 1) / j)
    log_terms = np.concatenate(([0.0], np.cumsum(np.log(n - i + 1) - np.log(i)))) - n * math.log(2)
    top = log_terms.max()
    log_tail = top + math.log(np.sum(np.exp(log_terms - top)))
    return min(1.0, 2 * math.exp(log_tail))


def mcnemar(y_true, pred_a, pred_b, exact=None):
    """McNemar's test: do models a and b have the same error rate on these samples?

    b = samples a gets right and b wrong, c = samples a gets wrong and b right; only
    these discordant pairs count. exact=None picks the exact binomial test when
    b + c < 25, else the chi-square test with continuity correction,
    statistic = max(|b - c| - 1, 0)^2 / (b + c) on 1 degree of freedom. (R and statsmodels
    do not clip at 0, which only matters when b == c: there they give p slightly below 1.)
    For the exact test the statistic is min(b, c), as in statsmodels.
    """
    y_true, pred_a, pred_b = _check_labels(y_true=y_true, pred_a=pred_a, pred_b=pred_b)
    if exact not in (None, True, False):
        raise ValueError(f"exact must be None, True or False, got {exact!r}")
    right_a = pred_a == y_true
    right_b = pred_b == y_true
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    if exact is None:
        exact = b + c < 25
    if exact:
        return McNemarResult(float(min(b, c)), _binomial_two_sided(min(b, c), b + c), b, c)
    if b + c == 0:
        return McNemarResult(0.0, 1.0, b, c)
    statistic = max(abs(b - c) - 1, 0) ** 2 / (b + c)
    # chi-square with 1 df: P(X > x) = P(|Z| > sqrt(x)) = erfc(sqrt(x / 2))
    return McNemarResult(statistic, math.erfc(math.sqrt(statistic / 2)), b, c)
