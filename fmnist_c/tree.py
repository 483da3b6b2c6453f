"""DecisionTreeClassifier: CART grown in C on binned features, and the machinery it shares
with RandomForestClassifier (binning, growing trees, prediction cut at any depth)."""
import math

import numpy as np

from . import _core
from ._base import (BaseEstimator, ClassifierMixin, FileMixin, check_images, check_labels,
                    check_not_validation_data, check_positive, check_sample_weight, class_weights,
                    n_threads, not_fitted, progress, seed_from)
from ._training import run_in_worker

_CRITERIA = _core.CRITERIA  # csrc/trees/tree.h: enum fm_criterion
# Nodes of at most this many samples sort their codes (insertion sort up to 32, counting
# sort above) instead of filling 256-bin histograms. benchmarks/bench_forest.py
# --small-node: 20 trees on the study split fit fastest around 256; histograms in every
# node were 15% (one thread, CPU time) to 70% (two threads, busy machine) slower. Since
# gini nodes with whole weights (bootstrap counts) and at most 12 classes count into 16-bit
# class lanes at any size, this only chooses for the others; re-measured then (10 trees,
# one thread, CPU time, busy machine), 64..512 were within the noise of each other.
_SMALL_NODE = 256
_KERNEL = "auto"  # the lane scan's SIMD ("portable" or "avx2": the same trees; tests pin each)
_UNLIMITED = 2**62
# how often the waiting main thread wakes for Ctrl-C and the progress bar
_FITTED = ("classes_", "n_classes_", "n_features_in_", "_nodes", "_offsets", "_max_depths",
           "oob_score_", "oob_decision_function_", "validation_score_")
_FIELDS = ("left", "right", "feature", "threshold", "value", "impurity", "n_node_samples",
           "weighted_n_node_samples")


class Tree:
    """The node arrays of one fitted tree, read-only, in depth-first preorder (a node's
    children come after it). As in scikit-learn: ``children_left[i] == -1`` marks a leaf,
    whose ``feature`` and ``threshold`` are -2; a sample goes left when
    ``x[feature] <= threshold``. ``value`` is (node_count, n_classes): the weighted class
    fractions of each node's training samples (internal nodes too, so a tree can be cut
    at any depth). ``impurity``, ``n_node_samples`` (distinct training rows) and
    ``weighted_n_node_samples`` (their total weight, bootstrap multiplicity included)."""

    def __init__(self, arrays, max_depth, n_features):
        for name in _FIELDS:
            a = arrays[name]
            a.flags.writeable = False
            setattr(self, name, a)
        self.max_depth = int(max_depth)
        self.n_features = n_features

    children_left = property(lambda self: self.left)
    children_right = property(lambda self: self.right)
    node_count = property(lambda self: len(self.left))
    n_leaves = property(lambda self: int((self.left == -1).sum()))
    n_classes = property(lambda self: self.value.shape[1])

    def compute_feature_importances(self, normalize=True):
        """Total weighted impurity decrease brought by each feature, over the root's weight."""
        return _importances(self.__dict__, np.array([0, self.node_count]), self.n_features,
                            normalize)[0]

    def __repr__(self):
        return f"Tree(node_count={self.node_count}, max_depth={self.max_depth})"


def _importances(arrays, offsets, n_features, normalize):
    """(n_trees, n_features) impurity-decrease importances of a flat forest."""
    left, right = arrays["left"], arrays["right"]
    n_trees = len(offsets) - 1
    tree = np.repeat(np.arange(n_trees), np.diff(offsets))
    split = np.flatnonzero(left >= 0)
    base = offsets[tree[split]]
    wi = arrays["weighted_n_node_samples"] * arrays["impurity"]
    gain = wi[split] - wi[base + left[split]] - wi[base + right[split]]
    out = np.bincount(tree[split] * n_features + arrays["feature"][split], weights=gain,
                      minlength=n_trees * n_features).reshape(n_trees, n_features).astype(float)
    out /= arrays["weighted_n_node_samples"][offsets[:-1]][:, None]
    if normalize:
        total = out.sum(axis=1, keepdims=True)
        np.divide(out, total, out=out, where=total > 0)
    return out


def _resolve_max_features(max_features, d):
    if max_features is None:
        return d
    if isinstance(max_features, str):
        if max_features == "sqrt":
            return max(1, int(math.sqrt(d)))
        if max_features == "log2":
            return max(1, int(math.log2(d)))
        raise ValueError(f"max_features must be None, 'sqrt', 'log2', an int or a float, "
                         f"got {max_features!r}")
    if isinstance(max_features, (int, np.integer)) and not isinstance(max_features, bool):
        if not 1 <= max_features <= d:
            raise ValueError(f"max_features must be in [1, {d}], got {max_features}")
        return int(max_features)
    if isinstance(max_features, (float, np.floating)):
        if not 0.0 < max_features <= 1.0:
            raise ValueError(f"max_features as a float must be in (0, 1], got {max_features}")
        return max(1, int(max_features * d))
    raise TypeError(f"max_features must be None, 'sqrt', 'log2', an int or a float, "
                    f"got {max_features!r}")


def _count_or_fraction(value, name, n, lo):
    """An int >= lo, or a float fraction of n (rounded up, as scikit-learn does)."""
    if isinstance(value, (float, np.floating)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"{name} as a float must be in (0, 1], got {value}")
        return max(lo, math.ceil(value * n))
    if check_positive(value, name) < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return int(value)


class _BaseTrees(FileMixin, ClassifierMixin, BaseEstimator):
    """Fitting and prediction shared by the tree and the forest. Fitted trees live in one
    flat set of node arrays (``_nodes``) with ``_offsets``: tree t owns nodes
    offsets[t]..offsets[t+1], child ids local to the tree."""

    _max_features_default = None

    def _tree_params(self, n, d):
        if self.criterion not in _CRITERIA:
            raise ValueError(f"criterion must be 'gini' or 'entropy', got {self.criterion!r}")
        max_depth = _UNLIMITED if self.max_depth is None else check_positive(self.max_depth, "max_depth")
        max_bins = check_positive(self.max_bins, "max_bins")
        if not 2 <= max_bins <= 256:
            raise ValueError(f"max_bins must be in [2, 256], got {max_bins}")
        min_weight = check_positive(self.min_weight_fraction_leaf, "min_weight_fraction_leaf",
                                    float, allow_zero=True)
        if min_weight > 0.5:
            raise ValueError(f"min_weight_fraction_leaf must be in [0, 0.5], got {min_weight}")
        return dict(
            criterion=_CRITERIA[self.criterion], max_depth=max_depth,
            min_samples_split=_count_or_fraction(self.min_samples_split, "min_samples_split", n, 2),
            min_samples_leaf=_count_or_fraction(self.min_samples_leaf, "min_samples_leaf", n, 1),
            min_weight_fraction_leaf=min_weight,
            max_features=_resolve_max_features(self.max_features, d),
            min_impurity_decrease=check_positive(self.min_impurity_decrease,
                                                 "min_impurity_decrease", float, allow_zero=True),
            small_node=_SMALL_NODE, kernel=_KERNEL)

    def _prepare(self, X, y, sample_weight):
        """Validate once: (X as uint8 or float32, class codes, weights or None, params)."""
        check_not_validation_data(sample_weight)
        X = np.asarray(X) if X is not None and not hasattr(X, "toarray") else X
        exact = X is not None and X.dtype in (np.uint8, np.bool_)
        X = check_images(X, dtype=np.uint8 if exact else np.float32)
        y = check_labels(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        params = self._tree_params(*X.shape)
        threads = n_threads(getattr(self, "n_jobs", None))
        self._clear()
        codes = self._encode_labels(y)
        cw = class_weights(self.class_weight, codes, self.classes_)
        sw = cw if sw is None else (sw if cw is None else sw * cw)
        return X, codes, sw, params, threads

    def _grow(self, X, codes, sw, params, threads, n_trees, n_draw, seed):
        """Bin X once, grow the trees in one C call on a worker thread, and set the fitted
        attributes. The main thread waits, updates the progress bar and, on Ctrl-C, raises
        the kernel's stop flag: the build ends within a node, whatever the tree size."""
        bins, edges, n_edges = _core.tree_bin(X, max_bins=int(self.max_bins), nthreads=threads)
        args = (bins, np.ascontiguousarray(bins.T), edges, n_edges, codes, sw, len(self.classes_),
                0, n_trees, seed, n_draw)
        control = np.zeros(2, np.int64)  # [stop, trees done]
        bar = progress(n_trees, getattr(self, "verbose", 0), type(self).__name__, unit="tree")
        try:  # Ctrl-C included: the kernel is stopped; leave a clean estimator
            sizes, max_depths, *arrays = run_in_worker(  # fresh arrays from the kernel: no copies
                lambda: _core.forest_fit(*args, nthreads=threads, control=control, **params),
                control, bar, "fmnist_c-fit")
        except BaseException:
            self._clear()
            raise
        nodes = dict(zip(_FIELDS, arrays))
        for a in nodes.values():
            a.flags.writeable = False
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._max_depths = max_depths
        self._nodes = nodes
        self.n_features_in_ = X.shape[1]
        self.n_classes_ = len(self.classes_)

    def _walk_args(self):
        n = self._nodes
        return n["left"], n["right"], n["feature"], n["threshold"]

    def _check_fitted(self):
        if not hasattr(self, "_nodes"):
            raise not_fitted(type(self).__name__)

    def _score_validation(self, validation_data):
        """validation_score_: the accuracy on fit's validation_data (a tree chooses nothing
        on it; the contract every estimator's fit shares takes it)."""
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = self._check_width(check_images(Xv, name="validation X"), "validation X")
            self.validation_score_ = float(np.mean(self.predict(Xv) == check_labels(
                yv, Xv.shape[0], "validation y")))

    def _clear(self):
        for attr in _FITTED:
            self.__dict__.pop(attr, None)

    def __setstate__(self, state):
        self.__dict__.update(state)
        for a in state.get("_nodes", {}).values():
            a.flags.writeable = False

    # ---- files ------------------------------------------------------------------------
    def _file_contents(self):
        """settings, classes and the node arrays (FileMixin's save); oob_decision_function_
        (a row per training sample) is left out, oob_score_ and validation_score_ kept"""
        config = {"params": self._file_params(), "n_features_in": self.n_features_in_,
                  **{name: getattr(self, name) for name in ("oob_score_", "validation_score_")
                     if hasattr(self, name)}}
        return config, {"classes": self._file_classes(), "offsets": self._offsets,
                        "max_depths": self._max_depths, **self._nodes}

    @classmethod
    def _from_file(cls, config, arrays):
        self = cls(**cls._params_from_file(config["params"]))
        d = int(config["n_features_in"])
        self._tree_params(1, max(d, 1))
        classes, offsets, depths = arrays["classes"], arrays["offsets"], arrays["max_depths"]
        nodes = {name: np.ascontiguousarray(arrays[name]) for name in _FIELDS}
        n, k = len(nodes["left"]), len(classes)
        kinds = {"left": "i", "right": "i", "feature": "i", "n_node_samples": "i"}
        if not (classes.ndim == 1 and k >= 2 and 1 <= d <= 2**24 and offsets.ndim == 1
                and offsets.dtype == np.int64 and len(offsets) >= 2
                and (len(offsets) == 2 or not issubclass(cls, DecisionTreeClassifier))
                and depths.shape == (len(offsets) - 1,) and depths.dtype == np.int64
                and nodes["value"].shape == (n, k) and nodes["value"].dtype == np.float32
                and np.isfinite(nodes["value"]).all()
                and all(a.ndim == 1 and len(a) == n and a.dtype.kind == kinds.get(name, "f")
                        for name, a in nodes.items() if name != "value")):
            raise ValueError(f"the {cls.__name__} model file's arrays do not fit together")
        for a in nodes.values():
            a.flags.writeable = False
        self.classes_, self.n_classes_, self.n_features_in_ = classes, k, d
        self._nodes, self._offsets, self._max_depths = nodes, offsets, depths
        for name in ("oob_score_", "validation_score_"):
            if name in config:
                setattr(self, name, float(config[name]))
        self._apply(np.zeros((1, d), np.float32), None)  # the walk's own check of the trees
        return self

    # ---- prediction -------------------------------------------------------------------
    def staged_depth_proba(self, X, depths):
        """Class probabilities with every tree cut at each depth in `depths` (a node at the
        cut depth answers with its class fractions): (len(depths), n_samples, n_classes).
        Equal to refitting with ``max_depth=d`` and the same random_state, for every d."""
        X = self._check_X(X)
        depths = np.asarray(depths)
        if depths.ndim != 1 or len(depths) == 0 or not np.issubdtype(depths.dtype, np.integer) \
                or (depths < 0).any():
            raise ValueError(f"depths must be a non-empty list of ints >= 0, got {depths!r}")
        order = np.argsort(depths, kind="stable")
        out = _core.forest_predict(X, *self._walk_args(), self._nodes["value"], self._offsets,
                                   depths[order].astype(np.int64),
                                   nthreads=n_threads(getattr(self, "n_jobs", None)))
        result = np.empty_like(out)
        result[order] = out
        return result

    def staged_depth_scores(self, X, y, depths):
        """Accuracy on (X, y) with every tree cut at each depth in `depths` (one pass)."""
        X = self._check_X(X)
        y = check_labels(y, X.shape[0])
        proba = self.staged_depth_proba(X, depths)
        return np.array([np.mean(self.classes_[p.argmax(axis=1)] == y) for p in proba])

    def predict_proba(self, X, max_depth=None):
        """Mean class fractions of the leaves reached (nodes at depth `max_depth` act as
        leaves when it is given): (n_samples, n_classes)."""
        depth = _UNLIMITED if max_depth is None else check_positive(max_depth, "max_depth",
                                                                     allow_zero=True)
        return self.staged_depth_proba(X, [depth])[0]

    def predict(self, X, max_depth=None):
        """Most probable class; `max_depth` cuts every tree as in predict_proba."""
        proba = self.predict_proba(X, max_depth)
        return self.classes_[np.argmax(proba, axis=1)]

    def _apply(self, X, max_depth):
        X = self._check_X(X)
        depth = _UNLIMITED if max_depth is None else check_positive(max_depth, "max_depth",
                                                                     allow_zero=True)
        return _core.forest_apply(X, *self._walk_args(), self._offsets, depth,
                                  nthreads=n_threads(getattr(self, "n_jobs", None)))

    def _tree(self, t):
        a, b = self._offsets[t], self._offsets[t + 1]
        return Tree({name: arr[a:b] for name, arr in self._nodes.items()}, self._max_depths[t],
                    self.n_features_in_)


class DecisionTreeClassifier(_BaseTrees):
    """A CART classification tree grown in C, as scikit-learn's DecisionTreeClassifier.

    Features are binned once per fit: uint8 input (pixels) is exact, one bin per value;
    float input gets at most ``max_bins`` bins, one per distinct value when it has so few
    (so ``X / 255`` grows the same tree as the uint8 pixels it came from), else quantiles.
    Each node's split is the best over its bins; thresholds are midpoints between
    neighbouring bin values, in the input's own units.

    Parameters
    ----------
    criterion : {"gini", "entropy"}
    max_depth : None or int
        None grows until leaves are pure or too small to split.
    min_samples_split, min_samples_leaf : int, or float fraction of n_samples
    min_weight_fraction_leaf : float, 0..0.5
        Every leaf weighs at least this fraction of the total sample weight (as in
        scikit-learn: sample_weight times class_weight; a forest's tree, its bootstrap's).
    min_impurity_decrease : float
        Split only if the weighted impurity decrease (as in scikit-learn) reaches this.
    max_features : None, "sqrt", "log2", int or float
        Features examined per node (drawn at random; constant ones do not count).
    class_weight : None, "balanced" or dict
    max_bins : int, 2..256
        Bins per float feature.
    random_state : None, int, RandomState or Generator
        Seeds the features drawn at each node; a node's draws depend on its position only.

    Fitted attributes: ``tree_`` (a :class:`Tree`), ``classes_``, ``n_classes_``,
    ``n_features_in_``, ``feature_importances_``. ``predict_proba(X, max_depth=d)`` cuts
    the tree at depth d, as if it had been fitted with ``max_depth=d``. Ctrl-C stops a
    fit within a fraction of a second and leaves the estimator unfitted.
    """

    def __init__(self, criterion="gini", max_depth=None, min_samples_split=2, min_samples_leaf=1,
                 min_weight_fraction_leaf=0.0, min_impurity_decrease=0.0, max_features=None,
                 class_weight=None, max_bins=256, random_state=None):
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.min_impurity_decrease = min_impurity_decrease
        self.max_features = max_features
        self.class_weight = class_weight
        self.max_bins = max_bins
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Grow the tree on (X, y); returns self. Rows of weight 0 are left out before the
        features are binned, so they move no threshold: weights 0 and 2 act as leaving a
        row out and repeating it. validation_data (X_val, y_val), when given, is scored
        into ``validation_score_``."""
        X, codes, sw, params, threads = self._prepare(X, y, sample_weight)
        if sw is not None and not sw.all():
            kept = np.flatnonzero(sw)
            X, codes, sw = X[kept], codes[kept], sw[kept]
        self._grow(X, codes, sw, params, threads, 1, 0, seed_from(self.random_state))
        self._score_validation(validation_data)
        return self

    @property
    def tree_(self):
        self._check_fitted()
        return self._tree(0)

    @property
    def feature_importances_(self):
        """Impurity-based importances, summing to 1 (all 0 for a single-leaf tree)."""
        return self.tree_.compute_feature_importances()

    def apply(self, X, max_depth=None):
        """Index of the leaf (or, with max_depth, the node at the cut) each sample reaches."""
        return self._apply(X, max_depth)[:, 0]

    def get_depth(self):
        return self.tree_.max_depth

    def get_n_leaves(self):
        return self.tree_.n_leaves
