"""RandomForestClassifier: bagged CART trees grown in parallel in C (OpenMP), with a depth
sweep that costs one fit: every tree can be cut at any depth when predicting."""
import warnings

import numpy as np

from . import _core
from ._base import check_positive, n_threads, seed_from
from .tree import DecisionTreeClassifier, _BaseTrees, _importances


class RandomForestClassifier(_BaseTrees):
    """A random forest of CART trees, as scikit-learn's RandomForestClassifier.

    Trees are grown in C, in parallel over trees with OpenMP and the GIL released, on
    features binned once per fit (exact for uint8 pixels; see DecisionTreeClassifier).
    Tree t's bootstrap and its nodes' feature draws derive from (random_state, t) and the
    node's position only, so the same random_state gives the same forest for any n_jobs,
    and a forest grown deep and cut at depth d (``predict_proba(X, max_depth=d)``,
    ``staged_depth_scores``) equals a forest fitted with ``max_depth=d``.

    Parameters
    ----------
    n_estimators : int
        Number of trees.
    criterion, max_depth, min_samples_split, min_samples_leaf, min_weight_fraction_leaf,
    min_impurity_decrease, class_weight, max_bins : as in DecisionTreeClassifier.
    max_features : None, "sqrt", "log2", int or float
        Features examined per node; default "sqrt".
    bootstrap : bool
        Grow each tree on a bootstrap sample (else on all rows).
    max_samples : None, int or float
        Draws per bootstrap: None n_samples, an int, or a fraction of n_samples.
    oob_score : bool
        Score each training sample with the trees that did not see it: ``oob_score_`` and
        ``oob_decision_function_``.
    n_jobs : None or int
        Threads (None or -1: all cores). Does not change the result.
    random_state : None, int, RandomState or Generator
    verbose : int
        1 shows a progress bar over trees.

    Fitted attributes: ``estimators_`` (DecisionTreeClassifier views of the trees),
    ``classes_``, ``n_classes_``, ``n_features_in_``, ``feature_importances_``, and with
    oob_score ``oob_score_``, ``oob_decision_function_``. Ctrl-C stops a fit within a
    fraction of a second (the kernel polls a stop flag between nodes) and leaves the
    estimator unfitted, ready to fit again.
    """

    def __init__(self, n_estimators=100, criterion="gini", max_depth=None, min_samples_split=2,
                 min_samples_leaf=1, min_weight_fraction_leaf=0.0, min_impurity_decrease=0.0,
                 max_features="sqrt", class_weight=None, max_bins=256, bootstrap=True,
                 max_samples=None, oob_score=False, n_jobs=None, random_state=None, verbose=0):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_fraction_leaf = min_weight_fraction_leaf
        self.min_impurity_decrease = min_impurity_decrease
        self.max_features = max_features
        self.class_weight = class_weight
        self.max_bins = max_bins
        self.bootstrap = bootstrap
        self.max_samples = max_samples
        self.oob_score = oob_score
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def _n_draw(self, n):
        if not self.bootstrap:
            if self.max_samples is not None:
                raise ValueError("max_samples needs bootstrap=True")
            if self.oob_score:
                raise ValueError("oob_score needs bootstrap=True")
            return 0
        if self.max_samples is None:
            return n
        if isinstance(self.max_samples, (float, np.floating)):
            if not 0.0 < self.max_samples <= 1.0:
                raise ValueError(f"max_samples as a float must be in (0, 1], got {self.max_samples}")
            return max(1, round(self.max_samples * n))
        if not 1 <= check_positive(self.max_samples, "max_samples") <= n:
            raise ValueError(f"max_samples must be in [1, {n}], got {self.max_samples}")
        return int(self.max_samples)

    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Grow n_estimators trees on bootstraps of (X, y); returns self. validation_data
        (X_val, y_val), when given, is scored into ``validation_score_``."""
        n_trees = check_positive(self.n_estimators, "n_estimators")
        X, codes, sw, params, threads = self._prepare(X, y, sample_weight)
        n_draw = self._n_draw(X.shape[0])
        seed = seed_from(self.random_state)
        self._grow(X, codes, sw, params, threads, n_trees, n_draw, seed)
        if self.oob_score:
            self._set_oob(X, codes, seed, n_draw, threads)
        self._score_validation(validation_data)
        return self

    def _set_oob(self, X, codes, seed, n_draw, threads):
        sums, counts = _core.forest_oob(np.asarray(X, np.float32), *self._walk_args(),
                                        self._nodes["value"], self._offsets, seed, n_draw,
                                        nthreads=threads)
        seen = counts > 0
        if not seen.all():
            warnings.warn(f"{int((~seen).sum())} samples were in every bootstrap and have no "
                          f"out-of-bag prediction; use more trees", UserWarning, stacklevel=3)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.oob_decision_function_ = sums / counts[:, None]
        self.oob_score_ = float(np.mean(sums[seen].argmax(axis=1) == codes[seen]))

    @property
    def estimators_(self):
        """The trees as fitted DecisionTreeClassifier objects (views: no copies)."""
        self._check_fitted()
        trees = []
        for t in range(len(self._offsets) - 1):
            est = DecisionTreeClassifier(**{k: getattr(self, k) for k in (
                "criterion", "max_depth", "min_samples_split", "min_samples_leaf",
                "min_weight_fraction_leaf", "min_impurity_decrease", "max_features",
                "class_weight", "max_bins")})
            a, b = self._offsets[t], self._offsets[t + 1]
            est._nodes = {name: arr[a:b] for name, arr in self._nodes.items()}
            est._offsets = np.array([0, b - a], np.int64)
            est._max_depths = self._max_depths[t:t + 1]
            est.classes_, est.n_classes_ = self.classes_, self.n_classes_
            est.n_features_in_ = self.n_features_in_
            trees.append(est)
        return trees

    @property
    def feature_importances_(self):
        """Mean over trees (with at least one split) of their normalised importances."""
        self._check_fitted()
        per_tree = _importances(self._nodes, self._offsets, self.n_features_in_, True)
        per_tree = per_tree[np.diff(self._offsets) > 1]
        if len(per_tree) == 0:
            return np.zeros(self.n_features_in_)
        mean = per_tree.mean(axis=0)
        return mean / mean.sum()

    def apply(self, X, max_depth=None):
        """(n_samples, n_estimators): the leaf each sample reaches in each tree (tree-local
        node ids; with max_depth, the node at the cut)."""
        return self._apply(X, max_depth)

    @property
    def n_jobs_(self):
        return n_threads(self.n_jobs) or 1
