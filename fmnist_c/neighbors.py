"""KNeighborsClassifier: exact k-nearest neighbours searched in C (csrc/neighbors/), on the
pixels' own bytes when they are uint8, with one search answering every k up to the
largest (the validation sweep over k costs one search per metric)."""
import numpy as np

from . import _core
from ._base import (BaseEstimator, ClassifierMixin, FileMixin, check_images, check_labels,
                    check_not_validation_data, check_positive, check_sample_weight, n_threads,
                    not_fitted)

_METRICS = _core.knn_metrics()  # csrc/neighbors/knn.h: enum fm_knn_metric
_WEIGHTS = ("uniform", "distance")
_KERNEL = "auto"  # the distance kernels' SIMD ("portable", "avx2", "avx512", "amx"; tests pin each)


def _exact_input(X):
    """True when X holds bytes (uint8 or bool) that the integer kernels take as they are."""
    return X is not None and not hasattr(X, "toarray") and np.asarray(X).dtype in (np.uint8,
                                                                                   np.bool_)


def vote(dist, codes, n_classes, k, weights, sample_weight=None):
    """(n, n_classes) class probabilities from the first k of each query's neighbours:
    dist (n, >= k) ascending and codes (n, >= k) their class codes. Distance weights are
    1 / d; a query with neighbours at distance 0 counts those alone (as scikit-learn)."""
    d, c = dist[:, :k], codes[:, :k]
    if weights == "uniform":
        w = np.ones_like(d)
    else:
        with np.errstate(divide="ignore"):
            w = 1.0 / d
        exact = d == 0
        hit = exact.any(axis=1)
        w[hit] = exact[hit]
    if sample_weight is not None:
        w = w * sample_weight
    proba = np.zeros((len(d), n_classes))
    np.add.at(proba, (np.arange(len(d))[:, None], c), w)
    total = proba.sum(axis=1, keepdims=True)
    # all weights zero (rows of weight 0 only): uniform over the neighbours' votes instead
    zero = total[:, 0] == 0
    if zero.any():
        np.add.at(proba, (np.flatnonzero(zero)[:, None], c[zero]), 1.0)
        total = proba.sum(axis=1, keepdims=True)
    return proba / total


class KNeighborsClassifier(FileMixin, ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classification, as scikit-learn's KNeighborsClassifier, with an
    exact search in C.

    uint8 input (pixels) is kept as uint8 and searched in exact integer arithmetic (AMX or
    AVX-512 VNNI dot products and VPSADBW sums where the CPU has them); float input is searched with
    the package's SGEMM and the candidates re-ranked in float64, so the neighbours equal a
    float64 brute force. The same model on X / 255 finds the same neighbours (up to the
    order of rows at exactly equal distance). Ties in distance: the smaller training index
    first. Time and memory are linear in the number of queries.

    Parameters
    ----------
    n_neighbors : int
    weights : {"uniform", "distance"}
        "distance" weighs each neighbour by 1 / distance.
    metric : {"euclidean", "manhattan", "cosine"}
    n_jobs : None, -1 or int
        OpenMP threads of the search (the results do not depend on it).

    fit's sample_weight multiplies each training row's vote. ``predict_proba(X,
    n_neighbors=k)`` and ``predict(X, n_neighbors=k)`` vote with the first k neighbours;
    ``staged_k_proba(X, ks)`` answers several k from one search.
    """

    def __init__(self, n_neighbors=5, weights="uniform", metric="euclidean", n_jobs=None):
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.n_jobs = n_jobs

    def _check_params(self):
        if self.weights not in _WEIGHTS:
            raise ValueError(f"weights must be 'uniform' or 'distance', got {self.weights!r}")
        if self.metric not in _METRICS:
            raise ValueError(f"metric must be one of {sorted(_METRICS)}, got {self.metric!r}")
        return check_positive(self.n_neighbors, "n_neighbors")

    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Keep the training rows (uint8 as uint8, anything else as float32); returns self.
        validation_data (X_val, y_val), when given, is scored into ``validation_score_``."""
        check_not_validation_data(sample_weight)
        exact = _exact_input(X)
        X = check_images(X, dtype=np.uint8 if exact else np.float32)
        y = check_labels(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        self._check_params()
        n_threads(self.n_jobs)
        for attr in ("classes_", "validation_score_", "_fit_X"):
            self.__dict__.pop(attr, None)
        codes = self._encode_labels(y)
        self._fit_X, self._y, self._sample_weight = X, codes, sw
        self.n_features_in_ = X.shape[1]
        self.n_samples_fit_ = X.shape[0]
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = self._check_width(check_images(Xv, name="validation X", dtype=(
                np.uint8 if _exact_input(Xv) else np.float32)), "validation X")
            self.validation_score_ = self.score(Xv, check_labels(yv, len(Xv), "validation y"))
        return self

    def _check_fitted(self):
        if not hasattr(self, "_fit_X"):
            raise not_fitted(type(self).__name__)

    def _k(self, n_neighbors):
        k = self._check_params() if n_neighbors is None else check_positive(n_neighbors,
                                                                              "n_neighbors")
        if k > self.n_samples_fit_:
            raise ValueError(f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {k}, "
                             f"n_samples_fit = {self.n_samples_fit_}, n_samples = "
                             f"{self.n_samples_fit_}")
        return k

    def _search(self, X, k):
        """(distances (n, k) float64, indices (n, k) int64) of X's k nearest training rows."""
        self._check_fitted()
        self._check_params()
        exact = _exact_input(X) and self._fit_X.dtype == np.uint8
        X = self._check_width(check_images(X, dtype=np.uint8 if exact else np.float32))
        train = self._fit_X if exact else self._fit_X.astype(np.float32, copy=False)
        return _core.knn_search(X, train, k, _METRICS[self.metric], kernel=_KERNEL,
                                nthreads=n_threads(self.n_jobs))

    def kneighbors(self, X, n_neighbors=None, return_distance=True):
        """The n_neighbors (default: the model's) nearest training rows of each row of X:
        (distances, indices), ascending by distance, ties by smaller index; indices alone
        when return_distance is False."""
        self._check_fitted()
        dist, idx = self._search(X, self._k(n_neighbors))
        return (dist, idx) if return_distance else idx

    def staged_k_proba(self, X, ks):
        """Class probabilities for every k in `ks` from one search with max(ks) neighbours:
        (len(ks), n_samples, n_classes), each equal to predict_proba(X, n_neighbors=k)."""
        self._check_fitted()
        ks = [check_positive(k, "n_neighbors") for k in np.atleast_1d(ks).tolist()]
        if not ks:
            raise ValueError("ks must name at least one n_neighbors")
        dist, idx = self._search(X, self._k(max(ks)))
        codes = self._y[idx]
        sw = None if self._sample_weight is None else self._sample_weight[idx]
        return np.stack([vote(dist, codes, len(self.classes_), k, self.weights, sw) for k in ks])

    def staged_k_scores(self, X, y, ks):
        """Accuracy on (X, y) for every k in `ks`, from one search."""
        proba = self.staged_k_proba(X, ks)
        y = check_labels(y, proba.shape[1])
        return np.array([np.mean(self.classes_[p.argmax(axis=1)] == y) for p in proba])

    def predict_proba(self, X, n_neighbors=None):
        """Votes of the n_neighbors (default: the model's) nearest training rows, weighted
        as ``weights`` says: (n_samples, n_classes)."""
        self._check_fitted()
        return self.staged_k_proba(X, [self._k(n_neighbors)])[0]

    def predict(self, X, n_neighbors=None):
        """The class with the most (weighted) votes; ties go to the first class."""
        proba = self.predict_proba(X, n_neighbors)
        return self.classes_[np.argmax(proba, axis=1)]

    # ---- files ------------------------------------------------------------------------
    def _file_contents(self):
        """the settings, classes and the kept training rows (uint8 or float32), their label
        codes and weights (FileMixin's save)"""
        arrays = {"classes": self._file_classes(), "fit_X": self._fit_X, "codes": self._y}
        if self._sample_weight is not None:
            arrays["sample_weight"] = self._sample_weight
        return {"params": self._file_params()}, arrays

    @classmethod
    def _from_file(cls, config, arrays):
        self = cls(**cls._params_from_file(config["params"]))
        self._check_params()
        n_threads(self.n_jobs)
        X, codes, classes = arrays["fit_X"], arrays["codes"], arrays["classes"]
        sw = arrays.get("sample_weight")
        if (X.ndim != 2 or X.dtype not in (np.uint8, np.float32) or 0 in X.shape
                or classes.ndim != 1 or len(classes) < 2 or codes.dtype != np.int64
                or codes.shape != (len(X),) or codes.min() < 0 or codes.max() >= len(classes)
                or (sw is not None and (sw.dtype != np.float32 or sw.shape != codes.shape
                                        or not np.isfinite(sw).all() or (sw < 0).any()
                                        or sw.sum() <= 0))
                or (X.dtype == np.float32 and not np.isfinite(X).all())):
            raise ValueError("the KNeighborsClassifier model file's arrays do not fit together")
        self.classes_, self._fit_X, self._y, self._sample_weight = classes, X, codes, sw
        self.n_features_in_, self.n_samples_fit_ = X.shape[1], X.shape[0]
        return self


class TunedKNeighborsClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest neighbours with k, the metric and the weights chosen on fit's
    validation_data (which it needs): one search per metric with max(ks) neighbours scores
    every (k, weights) on the validation set; the best (the first in the order of
    ``metrics``, ``weights`` and ascending k among ties) is the model, fitted on the
    training rows and, with ``refit_with_validation``, the validation rows too (a kNN
    "fit" only stores rows, so nothing chosen depends on the refit).

    Fitted: ``model_`` (a KNeighborsClassifier), ``val_scores_`` {(metric, weights):
    accuracies over ks}, ``best_params_``."""

    def __init__(self, ks=tuple(range(1, 21)), metrics=("euclidean", "manhattan", "cosine"),
                 weights=("uniform", "distance"), refit_with_validation=True, n_jobs=None):
        self.ks = ks
        self.metrics = metrics
        self.weights = weights
        self.refit_with_validation = refit_with_validation
        self.n_jobs = n_jobs

    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        if validation_data is None:
            raise ValueError("TunedKNeighborsClassifier chooses k and the metric on "
                             "validation_data; give fit(X, y, validation_data=(X_val, y_val))")
        ks = [check_positive(k, "ks") for k in self.ks]
        Xv, yv = validation_data
        yv_ = check_labels(yv, len(np.asarray(Xv)), "validation y")
        self.val_scores_, best = {}, (-1.0, None)
        for metric in self.metrics:
            m = KNeighborsClassifier(max(ks), metric=metric, n_jobs=self.n_jobs).fit(
                X, y, sample_weight)
            dist, idx = m.kneighbors(Xv)
            codes = m._y[idx]
            sw = None if m._sample_weight is None else m._sample_weight[idx]
            for w in self.weights:
                if w not in _WEIGHTS:
                    raise ValueError(f"weights must be 'uniform' or 'distance', got {w!r}")
                scores = np.array([np.mean(m.classes_[vote(dist, codes, len(m.classes_), k, w,
                                                           sw).argmax(axis=1)] == yv_)
                                   for k in ks])
                self.val_scores_[(metric, w)] = scores
                if scores.max() > best[0]:
                    best = (scores.max(), dict(n_neighbors=ks[int(scores.argmax())],
                                               metric=metric, weights=w))
        self.best_params_ = best[1]
        self.validation_score_ = float(best[0])
        if self.refit_with_validation:
            X = np.concatenate([check_images(X, dtype=m._fit_X.dtype),
                                check_images(Xv, dtype=m._fit_X.dtype)])
            y = np.concatenate([np.asarray(y), np.asarray(yv)])
            sample_weight = None if sample_weight is None else np.concatenate(
                [np.asarray(sample_weight, float), np.ones(len(yv))])
        self.model_ = KNeighborsClassifier(**self.best_params_, n_jobs=self.n_jobs).fit(
            X, y, sample_weight)
        self.classes_ = self.model_.classes_
        self.n_features_in_ = self.model_.n_features_in_
        return self

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise not_fitted(type(self).__name__)

    def predict_proba(self, X):
        self._check_fitted()
        return self.model_.predict_proba(X)

    def predict(self, X):
        self._check_fitted()
        return self.model_.predict(X)
