"""DecisionTreeClassifier and its C kernels against hand computation, brute force and
scikit-learn."""
import pickle

import numpy as np
import pytest

import fmnist_c.tree as tree_module
from fmnist_c import DecisionTreeClassifier, NotFittedError, _core
from conftest import blobs


def noisy(n=300, d=6, k=3, seed=0, integer=False):
    """Overlapping classes, so trees grow deep and splits are not trivially tied."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, d)) + 0.8 * y[:, None] * rng.normal(size=d)
    if integer:
        X = np.clip(np.round(X * 40 + 128), 0, 255).astype(np.uint8)
    return X.astype(np.float32) if not integer else X, y


def brute_force_best(x, y, w, k, criterion):
    """Best weighted child impurity over all thresholds of one feature (float64)."""
    def imp(c):
        t = c.sum()
        if t <= 0:
            return 0.0
        p = c / t
        return 1 - (p ** 2).sum() if criterion == "gini" else -(p[p > 0] * np.log2(p[p > 0])).sum()
    total = np.bincount(y, w, minlength=k)
    best = (np.inf, None)
    for v in np.unique(x)[:-1]:
        left = np.bincount(y[x <= v], w[x <= v], minlength=k)
        right = total - left
        score = left.sum() * imp(left) + right.sum() * imp(right)
        if score < best[0] - 1e-12:
            best = (score, v)
    return best


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_full_depth_fits_training_set(criterion):
    X, y = noisy(400)
    m = DecisionTreeClassifier(criterion=criterion, random_state=0).fit(X, y)
    assert m.score(X, y) == 1.0
    t = m.tree_
    leaves = t.children_left == -1
    assert np.all(t.impurity[leaves] < 1e-12)
    assert np.all(t.feature[leaves] == -2) and np.all(t.children_right[leaves] == -1)
    assert t.n_node_samples[0] == 400 and t.max_depth == m.get_depth()
    assert m.get_n_leaves() == leaves.sum()


def test_hand_computed_gini_and_entropy_gains():
    # y = 0 0 1 0 1 along x = 0..4; a second, constant feature never splits.
    X = np.array([[0, 7], [1, 7], [2, 7], [3, 7], [4, 7]], np.float32)
    y = np.array([0, 0, 1, 0, 1])
    # gini: root 1 - .6^2 - .4^2 = .48; best cut x <= 1 (children: {0,0} and {1,0,1}),
    # weighted children 3/5 * (1 - 1/9 - 4/9) = .26667, gain .21333
    g = DecisionTreeClassifier(max_depth=1).fit(X, y).tree_
    assert g.feature[0] == 0 and g.threshold[0] == 1.5
    np.testing.assert_allclose(g.impurity, [0.48, 0.0, 4 / 9], rtol=1e-12)
    np.testing.assert_allclose(g.value, [[0.6, 0.4], [1, 0], [1 / 3, 2 / 3]], rtol=1e-6)
    # entropy: root .97095 bits; x <= 1 leaves 3/5 * .91830 = .55098, gain .41997
    e = DecisionTreeClassifier(criterion="entropy", max_depth=1).fit(X, y).tree_
    assert e.threshold[0] == 1.5
    h = lambda p: -sum(q * np.log2(q) for q in p if q > 0)  # noqa: E731
    np.testing.assert_allclose(e.impurity, [h([.6, .4]), 0, h([1 / 3, 2 / 3])], rtol=1e-12)
    # min_impurity_decrease compares the gain weighted by the node's share (here 1)
    assert DecisionTreeClassifier(min_impurity_decrease=0.213).fit(X, y).tree_.node_count > 1
    assert DecisionTreeClassifier(min_impurity_decrease=0.214).fit(X, y).tree_.node_count == 1
    imp = DecisionTreeClassifier(max_depth=1).fit(X, y).feature_importances_
    np.testing.assert_array_equal(imp, [1.0, 0.0])


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
@pytest.mark.parametrize("seed", range(4))
def test_root_split_matches_brute_force(criterion, seed):
    rng = np.random.default_rng(seed)
    n, d, k = 60, 5, 3
    X = rng.integers(0, 12, (n, d)).astype(np.float32)
    y = rng.integers(0, k, n)
    w = rng.uniform(0.2, 3.0, n)
    m = DecisionTreeClassifier(criterion=criterion, max_depth=1).fit(X, y, sample_weight=w)
    t = m.tree_
    best = [brute_force_best(X[:, f], y, w.astype(np.float32).astype(np.float64), k, criterion)
            for f in range(d)]
    f = t.feature[0]
    score = best[f][0]
    assert score <= min(b[0] for b in best) + 1e-9
    # the threshold sits between the brute-force value and the next one
    vals = np.unique(X[:, f])
    v = best[f][1]
    assert v < t.threshold[0] < vals[np.searchsorted(vals, v) + 1]


def test_small_node_sort_path_equals_histograms(monkeypatch):
    X, y = noisy(500, seed=3)
    w = np.random.default_rng(1).uniform(0.5, 2, 500)
    trees = []
    for small in (0, 4096):
        monkeypatch.setattr(tree_module, "_SMALL_NODE", small)
        for crit in ("gini", "entropy"):
            trees.append(DecisionTreeClassifier(criterion=crit, max_features=3, random_state=0,
                                                min_samples_leaf=2).fit(X, y, sample_weight=w).tree_)
    for a, b in zip(trees[:2], trees[2:]):
        for name in ("children_left", "children_right", "feature", "threshold", "n_node_samples"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        np.testing.assert_allclose(a.value, b.value, rtol=1e-6)


def test_uint8_and_scaled_float_grow_the_same_tree():
    X, y = noisy(400, d=8, integer=True)
    a = DecisionTreeClassifier(max_features=3, random_state=1).fit(X, y).tree_
    b = DecisionTreeClassifier(max_features=3, random_state=1).fit(X / 255.0, y).tree_
    for name in ("children_left", "children_right", "feature", "n_node_samples"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.value, b.value)
    split = a.children_left >= 0
    # thresholds are midpoints between neighbouring values, in the input's units
    np.testing.assert_allclose(a.threshold[split] / 255, b.threshold[split], rtol=1e-6)
    thr, feat = a.threshold[split], a.feature[split]
    assert np.all((2 * thr) % 1 == 0)
    assert not np.any(X[:, feat] == thr)  # never on a training value


def test_truncated_tree_equals_tree_fitted_shallow():
    X, y = noisy(500, seed=5)
    deep = DecisionTreeClassifier(max_features=2, random_state=3).fit(X, y)
    for d in (0, 1, 3, 6):
        shallow = DecisionTreeClassifier(max_features=2, random_state=3, max_depth=max(d, 1)).fit(X, y)
        if d == 0:
            np.testing.assert_allclose(deep.predict_proba(X, max_depth=0),
                                       np.tile(deep.tree_.value[0], (500, 1)))
            continue
        np.testing.assert_array_equal(deep.predict_proba(X, max_depth=d), shallow.predict_proba(X))
        n = shallow.tree_.node_count
        keep = deep.apply(X, max_depth=d)
        np.testing.assert_array_equal(np.unique(keep).size, shallow.get_n_leaves())
        assert n <= deep.tree_.node_count
    scores = deep.staged_depth_scores(X, y, [6, 1, 3])
    assert scores[0] == DecisionTreeClassifier(max_features=2, random_state=3,
                                               max_depth=6).fit(X, y).score(X, y)


def test_matches_sklearn_on_small_untied_data():
    sk = pytest.importorskip("sklearn.tree")
    X, y = noisy(250, d=5, seed=7)
    for crit in ("gini", "entropy"):
        ours = DecisionTreeClassifier(criterion=crit, max_depth=5, random_state=0).fit(X, y)
        ref = sk.DecisionTreeClassifier(criterion=crit, max_depth=5, random_state=0).fit(X, y)
        a, b = ours.tree_, ref.tree_
        np.testing.assert_array_equal(a.children_left, b.children_left)
        np.testing.assert_array_equal(a.feature, b.feature)
        np.testing.assert_array_equal(a.n_node_samples, b.n_node_samples)
        np.testing.assert_allclose(a.impurity, b.impurity, atol=1e-12)
        np.testing.assert_array_equal(ours.apply(X), ref.apply(X))
        np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-6)
        np.testing.assert_allclose(ours.feature_importances_, ref.feature_importances_, rtol=1e-9)


def leaves_weigh_at_least(tree, fraction):
    """Every leaf of tree weighs at least fraction of its root (the fit's total weight)."""
    leaves = tree.children_left == -1
    bound = fraction * tree.weighted_n_node_samples[0]
    assert tree.weighted_n_node_samples[leaves].min() >= bound * (1 - 1e-12)


@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.3])
def test_min_weight_fraction_leaf_matches_sklearn(fraction):
    """Leaves of at least 5% of the weight are a dozen samples or more, where no two
    features tie for a pure split, so the trees are scikit-learn's node for node. Weights
    are multiples of 1/8: their sums are exact in float32 and float64 alike."""
    sk = pytest.importorskip("sklearn.tree")
    for seed in (0, 1):
        X, y = noisy(250, d=5, seed=seed)
        w = np.random.default_rng(seed).integers(4, 25, len(y)) / 8
        for crit in ("gini", "entropy"):
            kw = dict(criterion=crit, min_weight_fraction_leaf=fraction, random_state=0)
            ours = DecisionTreeClassifier(**kw).fit(X, y, sample_weight=w)
            ref = sk.DecisionTreeClassifier(**kw).fit(X, y, sample_weight=w)
            a, b = ours.tree_, ref.tree_
            np.testing.assert_array_equal(a.children_left, b.children_left)
            np.testing.assert_array_equal(a.feature, b.feature)
            np.testing.assert_array_equal(a.n_node_samples, b.n_node_samples)
            np.testing.assert_allclose(a.weighted_n_node_samples, b.weighted_n_node_samples)
            np.testing.assert_allclose(a.impurity, b.impurity, atol=1e-12)
            np.testing.assert_array_equal(ours.apply(X), ref.apply(X))
            leaves_weigh_at_least(a, fraction)


@pytest.mark.parametrize("small_node", [0, 4096])  # histograms everywhere, sorting everywhere
def test_min_weight_fraction_leaf_holds_on_every_leaf(monkeypatch, small_node):
    """Float and whole weights (the lane scan's case, which leaves the bound to the others),
    class weights in the total as in scikit-learn; the bound prunes the tree."""
    monkeypatch.setattr(tree_module, "_SMALL_NODE", small_node)
    X, y = noisy(600, d=6, seed=2, integer=True)
    rng = np.random.default_rng(2)
    for w in (rng.uniform(0.1, 3, len(y)), rng.integers(1, 4, len(y)).astype(float), None):
        free = DecisionTreeClassifier(random_state=0).fit(X, y, sample_weight=w).tree_
        for fraction, cw in ((0.01, None), (0.03, "balanced"), (0.5, None)):
            t = DecisionTreeClassifier(min_weight_fraction_leaf=fraction, class_weight=cw,
                                       random_state=0).fit(X, y, sample_weight=w).tree_
            leaves_weigh_at_least(t, fraction)
            assert t.n_leaves < free.n_leaves
            assert t.n_leaves <= 1 / fraction


def test_quantile_bins_for_many_distinct_values():
    X, y = noisy(3000, d=4, seed=2)
    m = DecisionTreeClassifier(max_bins=16, max_depth=8, random_state=0).fit(X, y)
    thr = m.tree_.threshold[m.tree_.children_left >= 0]
    assert all(len(np.unique(thr[m.tree_.feature[m.tree_.children_left >= 0] == f])) <= 15
               for f in range(4))
    codes, edges, n_edges = _core.tree_bin(X, max_bins=16)
    assert n_edges.max() <= 15 and codes.max() <= 15
    ref = np.array([np.searchsorted(edges[f, :n_edges[f]], X[:, f], side="left") for f in range(4)])
    np.testing.assert_array_equal(codes, ref)
    counts = np.bincount(codes[0], minlength=16)
    assert counts.max() < 3 * 3000 / 16  # quantile bins are balanced
    full = DecisionTreeClassifier(max_depth=8, random_state=0).fit(X, y)
    assert abs(m.score(X, y) - full.score(X, y)) < 0.08


def test_exact_bins_are_ranks_of_distinct_values_and_minus_zero_is_zero():
    rng = np.random.default_rng(5)
    X = rng.integers(-3, 4, (500, 3)).astype(np.float32) / 2
    X[rng.random(X.shape) < 0.2] = -0.0
    codes, edges, n_edges = _core.tree_bin(X)
    for f in range(3):
        values = np.unique(X[:, f])  # -0.0 and 0.0 compare equal: one value
        assert n_edges[f] == len(values) - 1
        np.testing.assert_array_equal(codes[f], np.searchsorted(values, X[:, f]))
        assert np.all((values[:-1] < edges[f, :n_edges[f]]) & (edges[f, :n_edges[f]] < values[1:]))


def test_class_weight_equals_sample_weight_and_dict():
    X, y = noisy(300, seed=4)
    counts = np.bincount(y)
    sw = (len(y) / (3 * counts))[y]
    a = DecisionTreeClassifier(class_weight="balanced", random_state=0).fit(X, y).tree_
    b = DecisionTreeClassifier(random_state=0).fit(X, y, sample_weight=sw).tree_
    np.testing.assert_array_equal(a.feature, b.feature)
    c = DecisionTreeClassifier(class_weight={0: 1.0, 1: 1.0, 2: 1.0}, random_state=0).fit(X, y).tree_
    d = DecisionTreeClassifier(random_state=0).fit(X, y).tree_
    np.testing.assert_array_equal(c.feature, d.feature)


def test_layouts_and_image_shapes():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (120, 28, 28), dtype=np.uint8)
    y = np.arange(120) % 4
    a = DecisionTreeClassifier(max_features="sqrt", random_state=0).fit(X, y)
    b = DecisionTreeClassifier(max_features="sqrt", random_state=0).fit(
        np.asfortranarray(X.reshape(120, 784)), y)
    np.testing.assert_array_equal(a.tree_.feature, b.tree_.feature)
    assert a.n_features_in_ == 784
    np.testing.assert_array_equal(a.predict(X[:, None]), a.predict(X.reshape(120, -1)[:, ::1]))
    strided = np.repeat(X.reshape(120, 784).astype(np.float32), 2, axis=1)[:, ::2]
    np.testing.assert_array_equal(a.predict_proba(strided), a.predict_proba(X))


def test_max_features_and_importances():
    X, y = noisy(300, d=16)
    for mf, expect in ((None, 16), ("sqrt", 4), ("log2", 4), (5, 5), (0.5, 8)):
        assert tree_module._resolve_max_features(mf, 16) == expect
        m = DecisionTreeClassifier(max_features=mf, random_state=0).fit(X, y)
        assert m.score(X, y) == 1.0
        np.testing.assert_allclose(m.feature_importances_.sum(), 1.0, rtol=1e-12)
        assert (m.feature_importances_ >= 0).all()
    stump = DecisionTreeClassifier().fit(X[:, :1] * 0, y)
    assert stump.tree_.node_count == 1 and (stump.feature_importances_ == 0).all()


def test_min_samples_and_depth_limits():
    X, y = noisy(400)
    m = DecisionTreeClassifier(min_samples_leaf=7, random_state=0).fit(X, y)
    leaves = m.tree_.children_left == -1
    assert m.tree_.n_node_samples[leaves].min() >= 7
    m = DecisionTreeClassifier(min_samples_split=40, random_state=0).fit(X, y)
    inner = m.tree_.children_left >= 0
    assert m.tree_.n_node_samples[inner].min() >= 40
    assert DecisionTreeClassifier(max_depth=3).fit(X, y).get_depth() == 3
    frac = DecisionTreeClassifier(min_samples_leaf=0.05, random_state=0).fit(X, y)
    assert frac.tree_.n_node_samples[frac.tree_.children_left == -1].min() >= 20


def test_pickle_round_trip_and_read_only_arrays():
    X, y = noisy()
    m = DecisionTreeClassifier(max_features=3, random_state=0).fit(X, y)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.predict_proba(X), m.predict_proba(X))
    assert m2.get_params() == m.get_params()
    for t in (m.tree_, m2.tree_):
        with pytest.raises(ValueError):
            t.threshold[0] = 0
    labels = np.array(["cat", "dog", "eel"])[y]
    s = DecisionTreeClassifier(random_state=0).fit(X, labels)
    assert set(s.predict(X)) <= {"cat", "dog", "eel"}


def test_deterministic_for_a_seed():
    X, y = noisy()
    a = DecisionTreeClassifier(max_features=2, random_state=4).fit(X, y).tree_
    b = DecisionTreeClassifier(max_features=2, random_state=4).fit(X, y).tree_
    c = DecisionTreeClassifier(max_features=2, random_state=5).fit(X, y).tree_
    np.testing.assert_array_equal(a.feature, b.feature)
    assert a.node_count != c.node_count or not np.array_equal(a.feature, c.feature)


@pytest.mark.parametrize("param, value, err", [  # shared ones: test_bad_input.py
    ("criterion", "mse", ValueError), ("min_samples_leaf", 1.5, ValueError),
    ("max_features", 99, ValueError), ("max_features", 0.0, ValueError),
    ("min_impurity_decrease", -1.0, ValueError), ("class_weight", "auto", ValueError),
])
def test_bad_hyper_parameters(param, value, err):
    X, y = blobs(n=30)
    with pytest.raises(err, match=param):
        DecisionTreeClassifier(**{param: value}).fit(X, y)


def test_predict_checks():
    X, y = noisy()
    m = DecisionTreeClassifier()
    with pytest.raises(NotFittedError):
        m.tree_
    m.fit(X, y)
    with pytest.raises(ValueError, match="max_depth"):
        m.predict(X, max_depth=-1)
    with pytest.raises(ValueError, match="depths"):
        m.staged_depth_proba(X, [])


def test_kernels_reject_malformed_trees():
    X, y = noisy(50)
    m = DecisionTreeClassifier(max_depth=2).fit(X, y)
    n = m._nodes
    args = [n["left"].copy(), n["right"].copy(), n["feature"].copy(), n["threshold"]]
    cyc = [a.copy() for a in args]
    cyc[0][0] = 0  # a node that is its own child would loop forever
    with pytest.raises(ValueError, match="malformed"):
        _core.forest_predict(X, *cyc, n["value"], m._offsets, np.array([5]))
    bad = [a.copy() for a in args]
    bad[2][0] = 6  # feature out of range
    with pytest.raises(ValueError, match="malformed"):
        _core.forest_apply(X, *bad, m._offsets, 5)
    with pytest.raises(ValueError, match="malformed"):
        _core.forest_predict(X, *args, n["value"], np.array([0, 99]), np.array([5]))
    with pytest.raises(ValueError, match="outside"):
        codes, edges, ne = _core.tree_bin(X)
        _core.forest_fit(codes, None, edges, ne, np.full(50, 7), None, 3, 0, 1, 0, 0, 0, 5, 2, 1,
                         6, 0.0, 64)
    with pytest.raises(ValueError, match="out of range"):
        _core.forest_fit(codes, None, edges, ne, np.zeros(50, np.int64), None, 3, 0, 1, 0, 0, 0,
                         5, 2, 1, 6, 0.0, 64, min_weight_fraction_leaf=0.6)
    with pytest.raises(ValueError, match="NaN"):
        _core.tree_bin(np.full((3, 2), np.nan, np.float32))


def test_sample_accuracy(sample_split):
    s = sample_split
    m = DecisionTreeClassifier(random_state=0).fit(s.X_train, s.y_train)
    assert m.score(s.X_test, s.y_test) > 0.65
