"""SVC: kernel support vector classification solved in C (csrc/svm/): the problem
scikit-learn's SVC (libsvm) solves, one-vs-one over class pairs, with the same fitted
attributes."""
import numpy as np

from . import _core
from ._base import (BaseEstimator, ClassifierMixin, FileMixin, check_finite_outputs,
                    check_images, check_labels, check_not_validation_data, check_positive,
                    check_sample_weight, class_weights, n_threads, not_fitted, progress,
                    seed_from)
from ._svm_proba import couple, fit_sigmoids
from ._training import run_in_worker

_KERNELS = ("linear", "poly", "rbf")
# scales of byte-valued input the solver recognises: pixels as given, and pixels / 255
# (float32 k / 255 is the same whether divided in float32 or float64 and cast)
_BYTE_SCALES = (1.0, 1.0 / 255)
# what save writes besides classes and gamma (the public binary model is derived from these)
_SAVED = ("support_", "support_vectors_", "n_support_", "_dual_coef_", "_intercept_", "n_iter_",
          "objective_", "kernel_rows_")
_FITTED = ("classes_", "n_features_in_", "support_", "support_vectors_", "n_support_",
           "dual_coef_", "intercept_", "n_iter_", "fit_status_", "_gamma", "probA_", "probB_",
           "objective_", "kernel_rows_", "_intercept_", "_dual_coef_", "_sv_bytes")


class SVC(FileMixin, ClassifierMixin, BaseEstimator):
    """C-support vector classification with a kernel, as scikit-learn's ``SVC``.

    The dual problem is libsvm's, solved the way libsvm solves it (SMO with second-order
    working-set selection, shrinking, a kernel-row cache of ``cache_size`` MB for each
    pair being solved), with kernel rows computed in blocks by SIMD kernels and the class
    pairs spread over ``n_jobs`` threads; the result does not depend on the thread count.
    Inputs are taken as given: scale pixels yourself (``X / 255``), as ``gamma="scale"``
    adapts to the variance of what it is given.

    Parameters
    ----------
    C : float
        Penalty of the slack variables (the box 0 <= alpha_i <= C, times class and sample
        weights).
    kernel : {"rbf", "linear", "poly"}
    degree, gamma, coef0 : kernel parameters: poly is (gamma u.v + coef0)^degree, rbf
        exp(-gamma |u - v|^2). gamma "scale" is 1 / (n_features * X.var()), "auto"
        1 / n_features, or a float.
    shrinking : bool
        libsvm's shrinking heuristic (speed only).
    probability : bool
        Fit Platt sigmoids for predict_proba: on ``validation_data`` when fit gets it, else
        on 5-fold cross-validated decision values as libsvm does (five more fits).
    tol : float
        Stopping tolerance on the maximal KKT violation.
    cache_size : float
        Kernel-row cache in MB, for each class pair being solved (so up to n_jobs times
        this in all).
    class_weight : None, "balanced" or dict
        Multiplies C per class.
    max_iter : int
        Iterations per pair, -1 for no limit.
    decision_function_shape : {"ovr", "ovo"}
        As scikit-learn: "ovr" gives (n, n_classes) vote counts plus a confidence in
        (-1/3, 1/3); "ovo" the (n, n_pairs) decision values of pairs (0,1), (0,2), ...
    random_state : None, int, RandomState or Generator
        The folds of probability=True's cross-validation.
    verbose : int
        0 silent, 1 a progress bar over class pairs.
    n_jobs : None or int
        Threads (None or -1: all cores).

    Fitted attributes, as scikit-learn: ``support_`` (indices into X), ``support_vectors_``
    (float32), ``n_support_``, ``dual_coef_`` (n_classes - 1, n_SV), ``intercept_``
    (n_pairs), ``classes_``, ``n_features_in_``, ``n_iter_`` (per pair), ``fit_status_``
    (1 when a pair hit max_iter), ``probA_``/``probB_`` with probability=True; and
    ``objective_`` (each pair's dual objective) and ``kernel_rows_`` ((n_pairs, 2):
    kernel rows computed and cache misses), which scikit-learn does not have.
    """

    def __init__(self, C=1.0, kernel="rbf", degree=3, gamma="scale", coef0=0.0, shrinking=True,
                 probability=False, tol=1e-3, cache_size=200, class_weight=None, max_iter=-1,
                 decision_function_shape="ovr", random_state=None, verbose=0, n_jobs=None):
        self.C = C
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.shrinking = shrinking
        self.probability = probability
        self.tol = tol
        self.cache_size = cache_size
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.decision_function_shape = decision_function_shape
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    # ---- validation -------------------------------------------------------------------
    def _check_hyper_params(self):
        check_positive(self.C, "C", float)
        check_positive(self.tol, "tol", float)
        check_positive(self.cache_size, "cache_size", float)
        check_positive(self.degree, "degree", allow_zero=True)
        if isinstance(self.coef0, bool) or not isinstance(self.coef0, (int, float, np.number)) \
                or not np.isfinite(self.coef0):
            raise ValueError(f"coef0 must be a finite number, got {self.coef0!r}")
        if self.kernel not in _KERNELS:
            raise ValueError(f"kernel must be one of {_KERNELS}, got {self.kernel!r}")
        if not (isinstance(self.gamma, str) and self.gamma in ("scale", "auto")):
            check_positive(self.gamma, "gamma", float)
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) \
                or self.max_iter < -1 or self.max_iter == 0:
            raise ValueError(f"max_iter must be -1 or a positive int, got {self.max_iter!r}")
        if self.decision_function_shape not in ("ovr", "ovo"):
            raise ValueError(f"decision_function_shape must be 'ovr' or 'ovo', got "
                             f"{self.decision_function_shape!r}")
        n_threads(self.n_jobs)

    def _gamma_for(self, X):
        if self.gamma == "scale":
            var = float(X.var(dtype=np.float64))
            return 1.0 / (X.shape[1] * var) if var != 0 else 1.0
        if self.gamma == "auto":
            return 1.0 / X.shape[1]
        return float(self.gamma)

    # ---- training ---------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, *, validation_data=None, groups=None):
        """Fit on (X, y); returns self.

        validation_data : optional (X_val, y_val); with probability=True the sigmoids are
        fitted on its decision values instead of five cross-validation fits.
        groups : optional (n,) ints; with probability=True and no validation_data, the rows
        of one group share a cross-validation fold (as scikit-learn's GroupKFold: copies
        of one image, such as HOGSVC's virtual support vectors, would otherwise be held out
        while their twins train, and the sigmoids would learn an overconfident scale)."""
        self._check_hyper_params()
        check_not_validation_data(sample_weight)
        X = check_images(X)
        y = check_labels(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (X.shape[0],) or groups.dtype.kind not in "iu":
                raise ValueError(f"groups must be {X.shape[0]} ints (one per row of X), got "
                                 f"shape {groups.shape} of {groups.dtype}")
            groups = np.unique(groups, return_inverse=True)[1].reshape(-1)
        self._clear()
        codes = self._encode_labels(y)
        self.n_features_in_ = X.shape[1]
        val = None
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = self._check_width(check_images(Xv, name="validation X"), "validation X")
            val = (Xv, self._codes_for(check_labels(yv, Xv.shape[0], "validation y"),
                                        "validation y"))
        cw = class_weights(self.class_weight, codes, self.classes_)
        bound = np.full(X.shape[0], float(self.C))
        for w in (cw, sw):
            if w is not None:
                bound *= w
        self._gamma = self._gamma_for(X)
        try:
            self._set_model(*self._solve(X, codes, bound))
            if self.probability:
                self._calibrate(X, codes, bound, val, groups)
        except BaseException:
            self._clear()
            raise
        return self

    def _kernel_args(self):
        return (self.kernel, float(self._gamma), float(self.coef0), int(self.degree))

    def _solve(self, X, codes, bound):
        """The one-vs-one fit of the rows with bound > 0 (libsvm leaves zero-weight rows
        out): ((support_, support_vectors_, n_support_, dual_coef_), intercept, objective,
        n_iter, kernel rows)."""
        k = len(self.classes_)
        keep = np.flatnonzero(bound > 0)
        order = keep[np.argsort(codes[keep], kind="stable")]
        count = np.bincount(codes[order], minlength=k).astype(np.int64)
        if (count == 0).any():
            missing = self.classes_[count == 0].tolist()
            raise ValueError(f"classes {missing} have no sample with a positive weight")
        coef, rho, obj, n_iter, rows = self._run(X, order, count, bound[order])
        return self._model_from(coef, count, order, X), -rho, obj, n_iter, rows

    def _set_model(self, model, intercept, obj, n_iter, rows):
        self.support_, self.support_vectors_, self.n_support_, self._dual_coef_ = model
        self._intercept_ = intercept
        self.n_iter_ = np.abs(n_iter).astype(np.int32)
        self.fit_status_ = int((n_iter < 0).any())
        self.objective_ = obj
        self.kernel_rows_ = rows
        self._sv_bytes = _byte_rows(self.support_vectors_)  # for _pair_values
        binary = len(self.classes_) == 2  # scikit-learn's public binary model favours classes_[1]
        self.intercept_ = -intercept if binary else intercept
        self.dual_coef_ = -self._dual_coef_ if binary else self._dual_coef_

    def _run(self, X, order, count, bound):
        """svm_fit of the rows X[order] on a worker thread; the main thread waits, shows
        progress, and on Ctrl-C raises the kernel's stop flag (a pair stops within 1,000
        iterations). Byte-valued rows go to C as bytes (see _byte_rows)."""
        xb, scale = _byte_rows(X)
        Xg = X[order] if xb is None else xb[order]
        k = len(count)
        control = np.zeros(2, np.int64)  # [stop, pairs done]
        threads = n_threads(self.n_jobs)  # read here: a caller's threadpool_limits binds here
        bar = progress(k * (k - 1) // 2, self.verbose, "SVC", unit="pair")
        return run_in_worker(
            lambda: _core.svm_fit(Xg, count, bound, *self._kernel_args(), float(self.tol),
                                  int(float(self.cache_size) * (1 << 20)), int(self.max_iter),
                                  bool(self.shrinking), nthreads=threads, control=control,
                                  byte_scale=scale),
            control, bar, "fmnist_c-svm")

    @staticmethod
    def _model_from(coef, count, order, X):
        """support_, support_vectors_, n_support_, dual_coef_ (libsvm's layout) from the
        pairs' coefficients over the class-grouped rows order."""
        k, n = len(count), len(order)
        start = np.concatenate([[0], np.cumsum(count)])
        per_pair = []
        nonzero = np.zeros(n, bool)
        at = 0
        for a in range(k):
            for b in range(a + 1, k):
                ca, cb = coef[at:at + count[a]], coef[at + count[a]:at + count[a] + count[b]]
                at += count[a] + count[b]
                per_pair.append((a, b, ca, cb))
                nonzero[start[a]:start[a + 1]] |= ca != 0
                nonzero[start[b]:start[b + 1]] |= cb != 0
        sv_rows = np.flatnonzero(nonzero)
        pos = np.cumsum(nonzero) - 1  # grouped row -> its column among the SVs
        dual = np.zeros((k - 1, len(sv_rows)))
        for a, b, ca, cb in per_pair:
            ia, ib = np.flatnonzero(ca), np.flatnonzero(cb)
            dual[b - 1, pos[start[a] + ia]] = ca[ia]
            dual[a, pos[start[b] + ib]] = cb[ib]
        n_support = np.array([nonzero[start[c]:start[c + 1]].sum() for c in range(k)], np.int32)
        support = order[sv_rows].astype(np.int32)
        return support, X[support], n_support, dual

    def _clear(self):
        for attr in _FITTED:
            self.__dict__.pop(attr, None)

    def __setstate__(self, state):
        """A fitted SVC pickled before the byte path (b5d03d3) has no _sv_bytes: recomputed
        from its support vectors, as _set_model does."""
        self.__dict__.update(state)
        if "_dual_coef_" in state and "_sv_bytes" not in state:
            self._sv_bytes = _byte_rows(self.support_vectors_)

    def _check_fitted(self):
        if not hasattr(self, "_dual_coef_"):
            raise not_fitted(type(self).__name__)

    # ---- prediction -------------------------------------------------------------------
    def _pair_values(self, X, model=None):
        """(n, n_pairs) libsvm decision values: positive votes for the pair's first class.
        When X and the support vectors are bytes of one scale (see _byte_rows), both reach C
        as bytes: the kernel from exact integer dot products, as the fit computed it."""
        sv, n_support, dual, intercept = model or (self.support_vectors_, self.n_support_,
                                                   self._dual_coef_, self._intercept_)
        start = np.concatenate([[0], np.cumsum(n_support)]).astype(np.int64)
        svb, scale = _byte_rows(sv) if model else self._sv_bytes
        # X tested at the support vectors' scale only: an image takes the same path alone
        # as in any batch (all-0-or-1 rows would also read as bytes of scale 1)
        xb = None if svb is None else _byte_rows(X, (scale,))[0]
        if xb is not None:
            X, sv = xb, svb
        return check_finite_outputs(_core.svm_decision(
            X, sv, dual, start, -intercept, *self._kernel_args(),
            nthreads=n_threads(self.n_jobs), byte_scale=scale if xb is not None else 1.0))

    def decision_function(self, X):
        """Decision values: (n,) for two classes (positive: classes_[1]); else
        (n, n_classes) for "ovr" or (n, n_pairs) for "ovo", as scikit-learn."""
        dec = self._pair_values(self._check_X(X))
        k = len(self.classes_)
        if k == 2:
            return -dec[:, 0]
        if self.decision_function_shape == "ovo":
            return dec
        return _ovr_decision(dec, k)

    def predict(self, X):
        """Labels by one-vs-one vote (dec > 0 votes for the pair's first class, ties go to
        the lowest class), as libsvm."""
        dec = self._pair_values(self._check_X(X))
        return self.classes_[_votes(dec, len(self.classes_)).argmax(axis=1)]

    @property
    def predict_proba(self):
        """Class probabilities from the pairs' Platt sigmoids coupled as libsvm does (Wu,
        Lin and Weng's second method); only with probability=True (as in scikit-learn,
        hasattr(model, "predict_proba") is False otherwise)."""
        if not self.probability:
            raise AttributeError("predict_proba is available when probability=True")
        return self._predict_proba

    def _predict_proba(self, X):
        dec = self._pair_values(self._check_X(X))
        return couple(dec, self.probA_, self.probB_, len(self.classes_))

    # ---- files ------------------------------------------------------------------------
    def _file_contents(self):
        """settings, classes and the support vectors (FileMixin's save)"""
        arrays = {"classes": self._file_classes(), "gamma": np.float64(self._gamma),
                  **{name: getattr(self, name) for name in _SAVED}}
        if self.probability:
            arrays.update(probA=self.probA_, probB=self.probB_)
        return {"params": self._file_params(), "n_features": self.n_features_in_}, arrays

    @classmethod
    def _from_file(cls, config, arrays):
        self = cls(**cls._params_from_file(config["params"]))
        self._check_hyper_params()
        self.classes_ = arrays["classes"]
        self.n_features_in_ = int(config["n_features"])
        self._gamma = float(arrays["gamma"])
        for name in _SAVED:
            setattr(self, name, arrays[name])
        k, (nsv, d) = len(self.classes_), self.support_vectors_.shape
        if self.probability:
            self.probA_, self.probB_ = arrays["probA"], arrays["probB"]
        pairs = k * (k - 1) // 2
        if (k < 2 or d != self.n_features_in_ or self._dual_coef_.shape != (k - 1, nsv)
                or self._intercept_.shape != (pairs,) or self.n_support_.shape != (k,)
                or int(self.n_support_.sum()) != nsv or (self.n_support_ < 0).any()
                or self.support_vectors_.dtype != np.float32
                or (self.probability and (self.probA_.shape, self.probB_.shape) != ((pairs,),) * 2)):
            raise ValueError("the SVC model file's arrays do not fit together")
        self._set_model((self.support_, self.support_vectors_, self.n_support_, self._dual_coef_),
                        self._intercept_, self.objective_, self.n_iter_, self.kernel_rows_)
        return self

    # ---- probability calibration ------------------------------------------------------
    def _calibrate(self, X, codes, bound, val, groups=None):
        """probA_, probB_: each pair's sigmoid 1 / (1 + exp(A f + B)) fitted to decision
        values the model did not train on: validation_data's when given (no refits), else
        5-fold cross-validation as libsvm (five fits on 4/5 of the rows; folds stratified
        by class, so each fit sees every class; with `groups` (0..G-1 per row) a group's
        rows share a fold, dealt with its first row's class). A class of fewer than 5
        rows (groups) cannot be in every fold's training part: then the sigmoids fit the
        model's own training decision values, which overstate its confidence."""
        group = np.arange(X.shape[0]) if groups is None else groups
        live = bound > 0
        if val is not None:
            dec, target = self._pair_values(val[0]), val[1]
        elif min(len(np.unique(group[live & (codes == c)]))
                 for c in range(len(self.classes_))) < 5:
            dec, target = self._pair_values(X), codes
        else:
            rng = np.random.default_rng(seed_from(self.random_state))
            first = np.unique(group, return_index=True)[1]  # each group's first row
            group_fold = np.empty(len(first), np.int64)
            for c in range(len(self.classes_)):
                mine = np.flatnonzero(codes[first] == c)
                group_fold[rng.permutation(mine)] = np.arange(len(mine)) % 5
            fold = group_fold[group]
            dec = np.zeros((X.shape[0], len(self.intercept_)))
            for f in range(5):
                (_, sv, n_support, dual), intercept, *_ = self._solve(X, codes, bound * (fold != f))
                held = fold == f
                dec[held] = self._pair_values(X[held], (sv, n_support, dual, intercept))
            target = codes
        self.probA_, self.probB_ = fit_sigmoids(dec, target, len(self.classes_))


def _byte_rows(X, scales=_BYTE_SCALES):
    """(bytes, scale) when every value of X is scale * b for a byte b and a scale of
    `scales`, else (None, 1.0). The solver then computes distances and dot products of
    the bytes exactly in integers and multiplies them by scale^2: the kernel of the values
    b / 255 themselves rather than of their float32 roundings (which differ by at most 2^-25
    relative, below the float32 kernel values' own rounding), so the problem is the same."""
    if X.shape[1] > 32768:  # beyond that, byte dot products overflow int32
        return None, 1.0
    for scale in scales:
        table = (np.arange(256, dtype=np.float32) / np.float32(1 / scale)).astype(np.float32)
        out = np.empty(X.shape, np.uint8)
        # chunks of 256 rows: temporaries that stay in cache and below NumPy's huge-page
        # size (4 MB), which a fresh mapping would clear; 4,096 rows took twice the time
        for i in range(0, X.shape[0], 256):
            x = X[i:i + 256]
            b = np.rint(x * np.float32(1 / scale))
            if not ((b >= 0) & (b <= 255)).all():
                break
            out[i:i + 256] = b
            if not np.array_equal(table[out[i:i + 256]], x):
                break
        else:
            return out, scale
    return None, 1.0


def _votes(dec, k, zero_to_first=False):
    """(n, k) one-vs-one votes from (n, n_pairs) decision values: dec > 0 votes for the
    pair's first class (libsvm's predict), or dec >= 0 (scikit-learn's "ovr" shape)."""
    votes = np.zeros((dec.shape[0], k), np.int64)
    p = 0
    for a in range(k):
        for b in range(a + 1, k):
            first = dec[:, p] >= 0 if zero_to_first else dec[:, p] > 0
            votes[:, a] += first
            votes[:, b] += ~first
            p += 1
    return votes


def _ovr_decision(dec, k):
    """scikit-learn's one-vs-rest shape of one-vs-one values: votes plus the summed
    confidences squashed into (-1/3, 1/3), so ties break toward the more confident class."""
    conf = np.zeros((dec.shape[0], k))
    p = 0
    for a in range(k):
        for b in range(a + 1, k):
            conf[:, a] += dec[:, p]
            conf[:, b] -= dec[:, p]
            p += 1
    return _votes(dec, k, zero_to_first=True) + conf / (3 * (np.abs(conf) + 1))


class SVCGrid(SVC):
    """SVC with C and gamma chosen on fit's validation_data: every (C, gamma factor) of
    the grid is fitted on ``subset`` training rows (drawn with random_state), scored on
    the validation set, and the best (the first among equals) is refitted on all rows.
    gamma factors multiply gamma="scale". ``grid_scores_`` lists [C, gamma, validation
    accuracy]; ``C`` and ``gamma`` are left as given, the chosen ones are ``best_C_`` and
    ``best_gamma_`` (the model itself is fitted with them)."""

    def __init__(self, Cs=(3.0, 10.0, 30.0), gamma_factors=(0.5, 1.0, 2.0), subset=10000,
                 cache_size=1000, random_state=None, verbose=0, n_jobs=None):
        self.Cs = Cs
        self.gamma_factors = gamma_factors
        self.subset = subset
        self.cache_size = cache_size
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    def __getattr__(self, name):  # SVC's other settings, at their defaults
        defaults = SVC().get_params()
        if name in defaults:
            return defaults[name]
        raise AttributeError(name)

    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        if validation_data is None:
            raise ValueError("SVCGrid chooses C and gamma on validation_data; pass it to fit")
        X = check_images(X)
        rng = np.random.default_rng(seed_from(self.random_state))
        part = np.sort(rng.permutation(X.shape[0])[:int(self.subset)])
        scale = SVC()._gamma_for(X)
        scores = []
        for C in self.Cs:
            for f in self.gamma_factors:
                m = SVC(C=C, gamma=scale * f, cache_size=self.cache_size, n_jobs=self.n_jobs)
                m.fit(X[part], np.asarray(y)[part])
                scores.append([float(C), float(scale * f), float(m.score(*validation_data))])
        best = max(range(len(scores)), key=lambda i: (scores[i][2], -i))
        self.best_C_, self.best_gamma_ = scores[best][0], scores[best][1]
        C, gamma = self.__dict__.get("C"), self.__dict__.get("gamma")
        self.__dict__.update(C=self.best_C_, gamma=self.best_gamma_)
        try:
            super().fit(X, y, sample_weight, validation_data=validation_data)
        finally:
            for name, value in (("C", C), ("gamma", gamma)):
                if value is None:
                    self.__dict__.pop(name)
        self.grid_scores_ = scores
        return self
