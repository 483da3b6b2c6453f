"""GradientBoostingClassifier: multiclass gradient-boosted trees grown in C (one tree per
class a round, leaf-wise, on gradient/hessian histograms of the byte bins), with early
stopping on a validation set, staged predictions and save/load."""
import warnings

import numpy as np

from . import _core
from ._base import (BaseEstimator, ClassifierMixin, FileMixin, check_images, check_labels,
                    check_not_validation_data, check_positive, check_sample_weight, class_weights,
                    n_threads, not_fitted, progress, record_epoch, seed_from)
from ._training import hold_out, run_in_worker

_KERNEL = "auto"      # the split scan's SIMD ("portable" or "avx512": the same trees)
_UNLIMITED = 2**30
_FIELDS = ("left", "right", "feature", "threshold", "value", "gain", "count", "hess")
# boost_round's arrays: n_nodes, left, right, feature, bin, count, threshold, value, gain, hess
_ROUND_INDEX = {"left": 1, "right": 2, "feature": 3, "count": 5, "threshold": 6, "value": 7,
                "gain": 8, "hess": 9}
_FITTED = ("classes_", "n_classes_", "n_features_in_", "n_estimators_", "best_iteration_",
           "history_", "_nodes", "_offsets", "_base")
_STAGE_CHUNK = 16  # rounds a staged_predict_proba call to C evaluates at once
_SCORINGS = ("loss", "accuracy")  # what early stopping watches on the validation set


def _softmax(raw):
    p = np.exp(raw - raw.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p


def _log_loss(raw, codes):
    """Mean multiclass log loss of raw scores (n, k) for class codes."""
    shifted = raw - raw.max(axis=1, keepdims=True)
    logz = np.log(np.exp(shifted).sum(axis=1))
    return float(np.mean(logz - shifted[np.arange(len(codes)), codes]))


def _check_trees(nodes, offsets, base, classes, n_rounds, n_features):
    """ValueError unless a loaded model's arrays make n_rounds rounds of well-formed trees
    (what fm_forest_check asks of a walk: children after their parent inside the tree,
    features in range) with finite leaf values and base scores."""
    k, n_trees = len(classes), len(offsets) - 1
    sizes = np.diff(offsets)
    sane = (classes.ndim == 1 and k >= 2 and base.shape == (k,) and n_rounds >= 1 and
            n_trees == n_rounds * k and 1 <= n_features <= 2**24 and offsets[0] == 0 and
            (sizes >= 1).all() and len({len(a) for a in nodes.values()}) == 1 and
            offsets[-1] == len(nodes["left"]) and all(
                nodes[name].ndim == 1 and nodes[name].dtype.kind == kind for name, kind in
                (("left", "i"), ("right", "i"), ("feature", "i"), ("threshold", "f"),
                 ("value", "f"), ("gain", "f"))) and
            np.isfinite(base).all() and np.abs(base).max() < 1e300)
    if not sane:
        raise ValueError("the model file's trees do not match its classes and rounds")
    local = np.arange(offsets[-1]) - np.repeat(offsets[:-1], sizes)
    size = np.repeat(sizes, sizes)
    left, right, feature = nodes["left"], nodes["right"], nodes["feature"]
    leaf = (left == -1) & (right == -1)
    split = (left > local) & (left < size) & (right > local) & (right < size) & \
        (feature >= 0) & (feature < n_features)
    if not (leaf | split).all() or not np.isfinite(nodes["value"]).all():
        raise ValueError("the model file holds malformed trees or non-finite leaf values")


def _fraction(value, name):
    value = check_positive(value, name, float)
    if value > 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {value!r}")
    return value


class GradientBoostingClassifier(FileMixin, ClassifierMixin, BaseEstimator):
    """Gradient-boosted trees for classification, grown in C, as LightGBM's LGBMClassifier.

    The name is scikit-learn's, whose users look for it; the hyper-parameters are
    LightGBM's (``num_leaves``, ``min_child_samples``, ``reg_lambda``, ``colsample_bytree``),
    whose growth this follows: each round adds one tree per class to the softmax's raw
    scores, grown leaf-wise (the leaf whose best split gains most is split next) on
    gradient and hessian histograms of binned features. uint8 input (pixels) is exact, one
    bin per value, and ``X / 255`` grows the same trees; float input gets at most
    ``max_bins`` quantile bins. Every tree is grown by one thread (n_jobs threads grow a
    round's trees side by side), so a random_state gives the same model for any n_jobs.

    Parameters
    ----------
    n_estimators : int
        Boosting rounds (each adds n_classes trees).
    learning_rate : float
        Each leaf value is multiplied by it.
    num_leaves : int
        Leaves per tree, >= 2.
    max_depth : None or int
        Depth limit (None: only num_leaves limits a tree).
    min_child_samples : int
        Rows each leaf must keep.
    min_child_weight : float
        Hessian sum each leaf must keep.
    reg_lambda : float
        L2 penalty on leaf values.
    min_split_gain : float
        A split must lower the loss by more than this.
    subsample : float in (0, 1]
        Each row joins a round's trees with this probability.
    colsample_bytree, colsample_bynode : float in (0, 1]
        Fraction of the features a tree may use, and of those each node tries.
    max_bins : int, 2..256
        Bins per float feature.
    n_iter_no_change : None or int
        Stop when the validation ``scoring`` has not improved for this many rounds, and keep
        the rounds up to the best. The validation set is fit's ``validation_data``, or
        ``validation_fraction`` of the training rows held out.
    scoring : "loss" or "accuracy"
        What early stopping and ``best_iteration_`` watch on the validation set: the log
        loss (lowest; LightGBM's default metric) or the accuracy (highest, the first round
        reaching it). The log loss turns flat while the accuracy still climbs: on
        Fashion-MNIST it stops a fit tens of rounds earlier.
    validation_fraction : float
        Held out for early stopping when fit gets no validation_data.
    class_weight : None, "balanced" or dict
    n_jobs : None or int
        Threads (None or -1: all cores). Does not change the model.
    random_state : None, int, RandomState or Generator
        Seeds row and feature subsampling.
    verbose : int
        1 shows a progress bar over rounds (with the validation accuracy when there is one).

    Fitted attributes: ``classes_``, ``n_classes_``, ``n_features_in_``,
    ``n_estimators_`` (rounds kept), ``best_iteration_`` (rounds with the best validation
    ``scoring``, or None without validation), ``history_`` (per round run, also those early
    stopping dropped: training ``loss`` and ``accuracy``; ``val_loss`` and ``val_accuracy``
    with validation), and
    ``feature_importances_`` (split gains, summing to 1). Ctrl-C stops a fit within a
    node and leaves the rounds finished so far as a usable model (the KeyboardInterrupt
    still propagates).
    """

    def __init__(self, n_estimators=100, learning_rate=0.1, num_leaves=31, max_depth=None,
                 min_child_samples=20, min_child_weight=1e-3, reg_lambda=0.0, min_split_gain=0.0,
                 subsample=1.0, colsample_bytree=1.0, colsample_bynode=1.0, max_bins=256,
                 n_iter_no_change=None, validation_fraction=0.1, scoring="loss", class_weight=None,
                 n_jobs=None, random_state=None, verbose=0):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.max_depth = max_depth
        self.min_child_samples = min_child_samples
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.min_split_gain = min_split_gain
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.colsample_bynode = colsample_bynode
        self.max_bins = max_bins
        self.n_iter_no_change = n_iter_no_change
        self.validation_fraction = validation_fraction
        self.scoring = scoring
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    # ---- fitting ----------------------------------------------------------------------
    def _round_params(self):
        num_leaves = check_positive(self.num_leaves, "num_leaves")
        if num_leaves < 2:
            raise ValueError(f"num_leaves must be >= 2, got {num_leaves}")
        max_bins = check_positive(self.max_bins, "max_bins")
        if not 2 <= max_bins <= 256:
            raise ValueError(f"max_bins must be in [2, 256], got {max_bins}")
        if self.n_iter_no_change is not None:
            check_positive(self.n_iter_no_change, "n_iter_no_change")
        if _fraction(self.validation_fraction, "validation_fraction") >= 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if not (isinstance(self.scoring, str) and self.scoring in _SCORINGS):
            raise ValueError(f"scoring must be one of {_SCORINGS}, got {self.scoring!r}")
        check_positive(self.n_estimators, "n_estimators")
        return dict(
            num_leaves=num_leaves,
            max_depth=_UNLIMITED if self.max_depth is None else min(
                check_positive(self.max_depth, "max_depth"), _UNLIMITED),
            min_child_samples=check_positive(self.min_child_samples, "min_child_samples"),
            min_child_weight=check_positive(self.min_child_weight, "min_child_weight", float,
                                            allow_zero=True),
            reg_lambda=check_positive(self.reg_lambda, "reg_lambda", float, allow_zero=True),
            min_split_gain=check_positive(self.min_split_gain, "min_split_gain", float,
                                          allow_zero=True),
            learning_rate=check_positive(self.learning_rate, "learning_rate", float),
            subsample=_fraction(self.subsample, "subsample"),
            colsample_bytree=_fraction(self.colsample_bytree, "colsample_bytree"),
            colsample_bynode=_fraction(self.colsample_bynode, "colsample_bynode"))

    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Boost on (X, y); returns self. Rows of weight 0 are left out before binning.
        validation_data (X_val, y_val), when given, is scored after every round
        (``history_``) and is what n_iter_no_change watches."""
        check_not_validation_data(sample_weight)
        X = np.asarray(X) if X is not None and not hasattr(X, "toarray") else X
        exact = X is not None and X.dtype in (np.uint8, np.bool_)
        X = check_images(X, dtype=np.uint8 if exact else np.float32)
        y = check_labels(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        params = self._round_params()
        threads = n_threads(self.n_jobs)
        seed = seed_from(self.random_state)
        self._clear()
        codes = self._encode_labels(y)
        cw = class_weights(self.class_weight, codes, self.classes_)
        sw = cw if sw is None else (sw if cw is None else sw * cw)
        if sw is not None and not sw.all():
            kept = np.flatnonzero(sw)
            X, codes, sw = X[kept], codes[kept], sw[kept]
        val = None
        self.n_features_in_ = X.shape[1]
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = self._check_width(check_images(Xv, name="validation X"), "validation X")
            val = (Xv, self._codes_for(check_labels(yv, Xv.shape[0], "validation y"),
                                       "validation y"))
        elif self.n_iter_no_change is not None:
            rng = np.random.default_rng([seed, 2])
            X, codes, sw, (Xv, cv) = hold_out(X, codes, sw, self.validation_fraction, rng)
            val = (np.ascontiguousarray(Xv, dtype=np.float32), cv)
        self._boost(X, codes, sw, val, params, threads, seed)
        return self

    def _boost(self, X, codes, sw, val, params, threads, seed):
        """Bin X, run the rounds on a worker thread (the main thread waits, shows progress
        and, on Ctrl-C, raises the kernels' stop flag), and keep the rounds up to the best."""
        k = len(self.classes_)
        self.n_classes_ = k
        bins, edges, n_edges = _core.tree_bin(X, max_bins=int(self.max_bins), nthreads=threads)
        prior = np.bincount(codes, weights=sw, minlength=k)
        self._base = np.log(np.maximum(prior / prior.sum(), 1e-15))  # LightGBM's start
        state = _core.boost_start(bins, np.ascontiguousarray(bins.T), edges, n_edges, codes, sw,
                                  k, params["num_leaves"],
                                  root_pass=params["colsample_bytree"] >= 1, nthreads=threads)
        score = np.tile(self._base, (X.shape[0], 1))
        val_raw = None if val is None else np.tile(self._base, (val[0].shape[0], 1))
        control = np.zeros(2, np.int64)  # [stop, rounds done]
        rounds, history, out = [], {"loss": [], "accuracy": []}, {}
        bar = progress(self.n_estimators, self.verbose, type(self).__name__, unit="round")

        def work():
            best, stale = np.inf, 0
            for r in range(self.n_estimators):
                trees = _core.boost_round(state, score, seed, r, **params, nthreads=threads,
                                          control=control, kernel=_KERNEL)
                rounds.append(trees)
                scores = None
                if val is not None:
                    val_raw[...] += self._raw([trees], val[0], np.zeros(k), threads)[0]
                    scores = (_log_loss(val_raw, val[1]),
                              float(np.mean(val_raw.argmax(axis=1) == val[1])))
                out["postfix"] = record_epoch(history, _log_loss(score, codes),
                                              float(np.mean(score.argmax(axis=1) == codes)),
                                              scores)
                control[1] = r + 1
                if scores is not None:
                    watched = scores[0] if self.scoring == "loss" else -scores[1]
                    best, stale = (watched, 0) if watched < best else (best, stale + 1)
                    if self.n_iter_no_change is not None and stale >= self.n_iter_no_change:
                        break

        def show_postfix():
            if "postfix" in out:
                bar.set_postfix(out.pop("postfix"))

        try:
            run_in_worker(work, control, bar, "fmnist_c-boost", on_wake=show_postfix)
        except BaseException as e:  # Ctrl-C included: the kernel is stopped
            if isinstance(e, KeyboardInterrupt) and rounds:  # keep the rounds done
                self._keep(rounds[:int(control[1])], history, val is not None, early=False)
                warnings.warn(f"fit interrupted: the model keeps its {self.n_estimators_} "
                              f"finished rounds", RuntimeWarning, stacklevel=3)
            else:
                self._clear()
            raise
        self._keep(rounds, history, val is not None, early=self.n_iter_no_change is not None)

    def _keep(self, rounds, history, validated, early):
        """Set the fitted trees from the rounds' arrays: all of them, or with early stopping
        those up to the best validation scoring (the first of equals)."""
        n = len(rounds)
        history = {key: v[:n] for key, v in history.items()}
        watched = (np.asarray(history["val_loss"]) if self.scoring == "loss" else
                   -np.asarray(history["val_accuracy"])) if validated else None
        self.best_iteration_ = int(np.argmin(watched)) + 1 if validated else None
        if early and validated:
            n = self.best_iteration_
        self.history_ = history
        self._nodes, self._offsets = self._flatten(rounds[:n])
        self.n_estimators_ = n

    @staticmethod
    def _flatten(rounds):
        """Rounds' (k, capacity) arrays -> flat node arrays and tree offsets."""
        sizes = np.concatenate([r[0] for r in rounds]) if rounds else np.zeros(0, np.int64)
        nodes = {}
        for name in _FIELDS:
            parts = [r[_ROUND_INDEX[name]][c, :m] for r in rounds for c, m in enumerate(r[0])]
            dtype = rounds[0][_ROUND_INDEX[name]].dtype if rounds else np.float32
            nodes[name] = np.concatenate(parts) if parts else np.zeros(0, dtype)
            nodes[name].flags.writeable = False
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return nodes, offsets

    def _raw(self, rounds, X, base, threads, stages=None):
        nodes, offsets = self._flatten(rounds)
        stages = np.array([len(rounds)] if stages is None else stages, np.int64)
        return _core.boost_predict(X, nodes["left"], nodes["right"], nodes["feature"],
                                   nodes["threshold"], nodes["value"], offsets, base, stages,
                                   nthreads=threads)

    def _clear(self):
        for attr in _FITTED:
            self.__dict__.pop(attr, None)

    def _check_fitted(self):
        if not hasattr(self, "_nodes"):
            raise not_fitted(type(self).__name__)

    def __setstate__(self, state):
        self.__dict__.update(state)
        for a in state.get("_nodes", {}).values():
            a.flags.writeable = False

    # ---- prediction -------------------------------------------------------------------
    def _staged_raw(self, X, stages):
        n = self._nodes
        return _core.boost_predict(X, n["left"], n["right"], n["feature"], n["threshold"],
                                   n["value"], self._offsets, self._base,
                                   np.asarray(stages, np.int64), nthreads=n_threads(self.n_jobs))

    def decision_function(self, X):
        """Raw class scores (n_samples, n_classes): the softmax's inputs ((n,) margins for
        two classes, as scikit-learn gives them)."""
        X = self._check_X(X)
        return self._binary_margin(self._staged_raw(X, [self.n_estimators_])[0])

    def predict_proba(self, X):
        """Class probabilities, the softmax of the summed trees: (n_samples, n_classes)."""
        X = self._check_X(X)
        return _softmax(self._staged_raw(X, [self.n_estimators_])[0])

    def staged_predict_proba(self, X):
        """predict_proba after each round, 1 .. n_estimators_, from one fit (a generator);
        rounds are evaluated a few at a time, each tree walked once."""
        X = self._check_X(X)
        for first in range(1, self.n_estimators_ + 1, _STAGE_CHUNK):
            stages = np.arange(first, min(first + _STAGE_CHUNK, self.n_estimators_ + 1))
            for raw in self._staged_raw(X, stages):
                yield _softmax(raw)

    def staged_predict(self, X):
        """predict after each round (a generator)."""
        for proba in self.staged_predict_proba(X):
            yield self.classes_[np.argmax(proba, axis=1)]

    @property
    def feature_importances_(self):
        """Total split gain of each feature, over all trees, summing to 1 (all 0 when no
        tree split)."""
        self._check_fitted()
        split = self._nodes["left"] >= 0
        out = np.bincount(self._nodes["feature"][split], weights=self._nodes["gain"][split],
                          minlength=self.n_features_in_).astype(np.float64)
        total = out.sum()
        return out / total if total > 0 else out

    # ---- files ------------------------------------------------------------------------
    def _file_contents(self):
        """settings, classes and the trees (FileMixin's save)"""
        config = {"params": self._file_params(), "n_features_in": self.n_features_in_,
                  "n_estimators": self.n_estimators_, "best_iteration": self.best_iteration_,
                  "history": self.history_}
        return config, {"classes": self._file_classes(), "base": self._base,
                        "offsets": self._offsets, **self._nodes}

    @classmethod
    def _from_file(cls, config, arrays):
        self = cls(**cls._params_from_file(config["params"]))
        self.classes_ = arrays["classes"]
        self.n_classes_ = len(self.classes_)
        self.n_features_in_ = int(config["n_features_in"])
        self.n_estimators_ = int(config["n_estimators"])
        best = config["best_iteration"]
        self.best_iteration_ = None if best is None else int(best)
        self.history_ = {str(key): [float(v) for v in values]
                         for key, values in dict(config["history"]).items()}
        self._base = np.ascontiguousarray(arrays["base"], np.float64)
        self._offsets = np.ascontiguousarray(arrays["offsets"], np.int64)
        self._nodes = {name: np.ascontiguousarray(arrays[name]) for name in _FIELDS}
        for a in self._nodes.values():
            a.flags.writeable = False
        _check_trees(self._nodes, self._offsets, self._base, self.classes_, self.n_estimators_,
                     self.n_features_in_)
        return self
