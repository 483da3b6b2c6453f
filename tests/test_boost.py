"""The boosting kernels (csrc/trees/boost*.c) against naive NumPy twins: histograms, the
threshold scan and its gain, a round's trees and leaf values; the same trees for any
thread count, for either scan kernel and for uint8 pixels or X / 255; close to LightGBM."""
import numpy as np
import pytest

from fmnist_c import _core, load_sample

KERNELS = ["portable"] + (["avx512"] if _core.boost_kernel() == "avx512" else [])
ARGS = dict(num_leaves=31, max_depth=2**30, min_child_samples=20, min_child_weight=1e-3,
            reg_lambda=0.0, min_split_gain=0.0, learning_rate=0.1, subsample=1.0,
            colsample_bytree=1.0, colsample_bynode=1.0)


def naive_hist(code_rows, rows, gh, feats, n_edges):
    hoff = np.concatenate([[0], np.cumsum(n_edges + 1)])
    h = np.zeros((hoff[-1], 2), np.float64)
    sel = code_rows[rows] if rows is not None else code_rows
    for f in feats:
        np.add.at(h, hoff[f] + sel[:, f], gh)
    return h


@pytest.mark.parametrize("m, d, nb", [(37, 3, 5), (1000, 70, 7), (3001, 130, 256), (50, 5, 256)])
@pytest.mark.parametrize("with_rows", [False, True])
@pytest.mark.parametrize("every_feature", [False, True])
def test_histogram_matches_numpy(m, d, nb, with_rows, every_feature):
    """Some features: each bin summed; every feature: the nonzero codes summed and bin 0
    the leaf's sums minus the rest (blocks of 64 features and a tail)."""
    rng = np.random.default_rng(m + nb)
    n = m + 11 if with_rows else m
    code_rows = rng.integers(0, nb, (n, d)).astype(np.uint8)
    code_rows[: n // 3] = 0  # runs of one bin, as background pixels are
    code_rows[:, -1] = 1  # a feature whose bin 0 is empty
    n_edges = np.full(d, nb - 1, np.int64)
    rows = np.sort(rng.choice(n, m, replace=False)) if with_rows else None
    feats = (np.arange(d) if every_feature else
             np.sort(rng.choice(d, max(1, 2 * d // 3), replace=False)))
    gh = np.column_stack([rng.normal(size=m), rng.random(m)])
    want = naive_hist(code_rows, rows, gh, feats, n_edges)
    got = [_core.boost_hist(code_rows, rows, gh, feats, n_edges, kernel=k) for k in KERNELS]
    np.testing.assert_allclose(got[0], want, rtol=1e-12, atol=1e-10 * m)
    for other in got[1:]:
        np.testing.assert_array_equal(other, got[0])
    # with the parent's histogram: the sibling's, parent - this one on the listed features
    parent = rng.normal(size=want.shape)
    hoff = np.concatenate([[0], np.cumsum(n_edges + 1)])
    listed = np.zeros(len(want), bool)
    for f in feats:
        listed[hoff[f]:hoff[f + 1]] = True
    sibling = parent.copy()
    sibling[listed] -= got[0][listed]
    for k in KERNELS:
        hist, rest = _core.boost_hist(code_rows, rows, gh, feats, n_edges, kernel=k,
                                      parent=parent)
        np.testing.assert_array_equal(hist, got[0])
        np.testing.assert_array_equal(rest, sibling)


@pytest.mark.parametrize("m, d, nb, k", [(37, 3, 5, 1), (1000, 70, 7, 10), (3001, 130, 256, 10),
                                         (500, 40, 256, 16), (200, 17, 256, 3)])
@pytest.mark.parametrize("with_rows", [False, True])
def test_root_histograms_of_every_class_in_one_pass_are_each_classs_own(m, d, nb, k, with_rows):
    """The root's pass for k classes at once (a row's 2k gradients added to each nonzero
    code's bin) gives each class the histogram boost_hist builds of it alone, to the bit
    (so the trees do not change), with either kernel; and NumPy's."""
    rng = np.random.default_rng(m + k)
    n = m + 11 if with_rows else m
    code_rows = rng.integers(0, nb, (n, d)).astype(np.uint8)
    code_rows[: n // 3] = 0
    code_rows[:, -1] = 1
    n_edges = np.full(d, nb - 1, np.int64)
    rows = np.sort(rng.choice(n, m, replace=False)) if with_rows else None
    ghk = np.stack([rng.normal(size=(m, k)), rng.random((m, k))], axis=2)
    got = [_core.boost_hist_root(code_rows, rows, ghk, n_edges, kernel=kern) for kern in KERNELS]
    assert got[0].shape == (k, d * nb, 2)
    for c in range(k):
        alone = _core.boost_hist(code_rows, rows, ghk[:, c], np.arange(d), n_edges)
        np.testing.assert_allclose(alone, naive_hist(code_rows, rows, ghk[:, c], range(d), n_edges),
                                   rtol=1e-12, atol=1e-10 * m)
        for each in got:
            np.testing.assert_array_equal(each[c], alone)


def estimated_counts(hist, total):
    """LightGBM's row count of each bin: (int)(hessian * rows / hessian of the leaf + 0.5)."""
    return np.trunc(hist[:, 1] * (total[2] / total[1]) + 0.5)


def naive_scan(hist, total, min_count, min_hess, lam):
    """Best (score, bin) by brute force: score = gl^2/(hl+lam) + gr^2/(hr+lam), first max;
    counts estimated from the hessians."""
    best, best_bin = -np.inf, -1
    cum = np.cumsum(np.column_stack([hist, estimated_counts(hist, total)]), axis=0)
    for b in range(len(hist) - 1):
        gl, hl, cl = cum[b]
        gr, hr, cr = total - cum[b]
        if min(cl, cr) < min_count or min(hl, hr) < min_hess or min(hl, hr) + lam <= 0:
            continue
        s = gl * gl / (hl + lam) + gr * gr / (hr + lam)
        if s > best * (1 + 1e-12):
            best, best_bin = s, b
    return best, best_bin


def scan_one(hist, total, limits, scan):
    """(score, bin, sums) of one histogram (nb, 2): scan "one" is boost_scan (portable),
    otherwise boost_scan_features of one feature with that kernel."""
    if scan == "one":
        return _core.boost_scan(hist, total, *limits)
    hists = np.zeros((1, 256, 2))
    hists[0, :len(hist)] = hist
    score, feature, b, sums = _core.boost_scan_features(hists, [len(hist)], total, *limits,
                                                        kernel=scan)
    assert feature == (0 if b >= 0 else -1)
    return score, b, sums


@pytest.mark.parametrize("scan", ["one"] + KERNELS)
@pytest.mark.parametrize("nb", [2, 9, 64, 255, 256])
def test_scan_matches_brute_force(scan, nb):
    rng = np.random.default_rng(nb)
    for trial in range(20):
        counts = rng.integers(0, 30, nb)
        hist = np.column_stack([rng.normal(size=nb) * counts, rng.random(nb) * counts + 1e-3 * counts])
        total = np.append(hist.sum(axis=0), counts.sum())
        limits = (float(trial % 4 * 5), 1e-3 * (trial % 3), 0.5 * (trial % 2))
        score, b, sums = scan_one(hist, total, limits, scan)
        want, want_bin = naive_scan(hist, total, *limits)
        assert b == want_bin
        if b >= 0:
            assert score == pytest.approx(want, rel=1e-9)
            want_sums = np.append(hist[:b + 1].sum(axis=0), estimated_counts(hist, total)[:b + 1].sum())
            np.testing.assert_allclose(sums, want_sums, rtol=1e-9)


def test_scan_kernels_agree_to_the_bit():
    """Both kernels of boost_scan_features on 1 to 12 features of dense histograms (most
    bins occupied): the same score, feature, bin and sums to the bit."""
    if len(KERNELS) < 2:
        pytest.skip("this CPU has no AVX-512")
    rng = np.random.default_rng(1)
    for _ in range(200):
        nf = int(rng.integers(1, 13))
        nbins = rng.integers(2, 257, nf)
        counts = rng.integers(0, 5, (nf, 256)) * (np.arange(256) < nbins[:, None])
        hists = np.stack([rng.normal(size=(nf, 256)) * counts, rng.random((nf, 256)) * counts], axis=2)
        total = np.append(hists[0].sum(axis=0), counts[0].sum())  # feature 0's rows
        a = _core.boost_scan_features(hists, nbins, total, 1.0, 1e-3, 0.0, kernel="portable")
        b = _core.boost_scan_features(hists, nbins, total, 1.0, 1e-3, 0.0, kernel="avx512")
        assert a == b


@pytest.mark.parametrize("nf", [1, 7, 8, 21])
def test_scan_of_features_agrees_to_the_bit_and_with_each_scan(nf):
    """Eight features at a time (AVX-512) against one at a time: the same best, feature, bin
    and sums to the bit; features of 2 to 256 bins, copies of a feature (ties: the first
    wins) and small counts with hessian limits that reject most thresholds."""
    rng = np.random.default_rng(nf)
    for trial in range(40):
        nbins = rng.integers(2, 257, nf)
        if trial % 2:
            nbins[:] = 256
        hists = np.zeros((nf, 256, 2))
        counts = rng.integers(0, 4, (nf, 256)) * (rng.random((nf, 256)) < 0.3)
        for f in range(nf):
            counts[f, nbins[f]:] = 0
        hists[..., 0] = rng.normal(size=(nf, 256)) * counts
        hists[..., 1] = rng.random((nf, 256)) * counts
        if nf > 3:
            hists[3] = hists[1]
            nbins[3] = nbins[1]
        total = np.append(hists[0, :nbins[0]].sum(axis=0), counts[0].sum())  # feature 0's rows
        limits = (float(trial % 3), 0.05 * (trial % 4), 0.5 * (trial % 2))
        got = [_core.boost_scan_features(hists, nbins, total, *limits, kernel=k) for k in KERNELS]
        for other in got[1:]:
            assert other == got[0]
        best, feature, b, sums = got[0]
        each = [_core.boost_scan(hists[f, :nbins[f]], total, *limits) for f in range(nf)]
        scores = [e[0] for e in each]
        if max(scores) == -np.inf:
            assert (feature, b) == (-1, -1)
            continue
        want = int(np.argmax(scores))  # the first of the best
        assert (feature, b, sums) == (want, each[want][1], each[want][2])
        assert best == scores[want]


def sample(n=600, k=10):
    X, y = load_sample()
    keep = np.flatnonzero(y < k)[:n]
    return np.ascontiguousarray(X[keep].reshape(len(keep), -1)), y[keep]


def fit_rounds(X, y, rounds=3, nthreads=1, seed=0, kernel="auto", sw=None, root_pass=True, **kw):
    """Rounds of boost_round from LightGBM's start (log priors): (score, list of rounds)."""
    args = {**ARGS, **kw}
    k = int(y.max()) + 1
    codes, edges, n_edges = _core.tree_bin(X)
    state = _core.boost_start(codes, np.ascontiguousarray(codes.T), edges, n_edges, y, sw, k,
                              args["num_leaves"], root_pass=root_pass, nthreads=nthreads)
    base = np.log(np.bincount(y, minlength=k) / len(y))
    score = np.tile(base, (len(y), 1))
    out = [_core.boost_round(state, score, seed, r, **args, nthreads=nthreads, kernel=kernel)
           for r in range(rounds)]
    return score, out


def softmax_grad(score, y):
    k = score.shape[1]
    p = np.exp(score - score.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    g = p - np.eye(k)[y]
    h = k / (k - 1) * p * (1 - p)
    return g, h


def many_classes(n, k):
    """n sample rows with k > 10 classes (each class split by row parity): more classes
    than one root pass takes (FM_BOOST_ROOT_MAX_K = 16), so each tree builds its own root."""
    X, y = sample(n)
    return X, (y * 2 + np.arange(len(y)) % 2) % k


@pytest.mark.parametrize("k", [4, 20])
def test_first_round_root_splits_and_leaf_values_match_numpy(k):
    X, y = sample(400, 4) if k == 4 else many_classes(400, k)
    score, [r0] = fit_rounds(X, y, rounds=1, num_leaves=4, min_child_samples=10)
    nn, left, right, feature, bins, count, thr, value, gain, hess = r0
    base = np.log(np.bincount(y, minlength=k) / len(y))
    g, h = softmax_grad(np.tile(base, (len(y), 1)), y)
    for c in range(k):
        # root: the best over every feature's thresholds (ties: first feature, first bin)
        best = (-np.inf, None, None)
        total = np.array([g[:, c].sum(dtype=np.float64), h[:, c].sum(dtype=np.float64), len(y)])
        for f in range(X.shape[1]):
            vals = np.unique(X[:, f])
            code = np.searchsorted(vals, X[:, f]).astype(np.uint8)
            hist = np.zeros((len(vals), 2))
            np.add.at(hist, code, np.column_stack([g[:, c], h[:, c]]))
            s, b = naive_scan(hist, total, 10, 1e-3, 0.0)
            if s > best[0] * (1 + 1e-9):
                best = (s, f, b)
        assert feature[c, 0] == best[1] and bins[c, 0] == best[2]
        parent = total[0] ** 2 / total[1]
        assert gain[c, 0] == pytest.approx(best[0] - parent, rel=1e-9)
        # leaves: -G/H * learning rate over the rows that reach them
        m = nn[c]
        leaf_of = np.zeros(len(y), np.int64)
        for i in range(len(y)):
            j = 0
            while left[c, j] >= 0:
                j = left[c, j] if X[i, feature[c, j]] <= thr[c, j] else right[c, j]
            leaf_of[i] = j
        for j in np.flatnonzero(left[c, :m] < 0):
            rows = leaf_of == j
            assert count[c, j] == rows.sum()
            assert hess[c, j] == pytest.approx(h[rows, c].sum(), rel=1e-12)
            want = -g[rows, c].sum() / h[rows, c].sum() * 0.1
            assert value[c, j] == pytest.approx(want, rel=1e-6, abs=1e-9)  # a float32
        np.testing.assert_allclose(score[:, c], base[c] + value[c, leaf_of], rtol=1e-12)


def same_rounds(a, b):
    for ra, rb in zip(a, b):
        for xa, xb in zip(ra, rb):
            np.testing.assert_array_equal(xa, xb)


@pytest.mark.parametrize("kw", [{}, dict(subsample=0.7, colsample_bytree=0.6, colsample_bynode=0.5),
                                dict(subsample=0.7), "20 classes"])
def test_trees_identical_for_one_and_two_threads(kw):
    X, y = sample(500)
    if kw == "20 classes":
        X, y, kw = *many_classes(500, 20), {}
    s1, r1 = fit_rounds(X, y, nthreads=1, **kw)
    s2, r2 = fit_rounds(X, y, nthreads=2, **kw)
    same_rounds(r1, r2)
    np.testing.assert_array_equal(s1, s2)


@pytest.mark.parametrize("case", ["bagged rows", "weights", "16 classes"])
def test_the_roots_one_pass_grows_the_trees_each_root_built_alone_grows(case):
    """colsample_bytree just below 1 keeps every feature (round(d (1 - 1e-9)) = d, no
    draw) but turns the roots' one pass off, as a scratch without its buffers
    (root_pass=False, what fit asks for when colsample_bytree < 1) does, so each tree builds
    its own root histogram: the trees must not change, with a round's bag of rows, weights
    or 16 classes."""
    X, y = many_classes(500, 16) if case == "16 classes" else sample(500)
    kw = {"bagged rows": dict(subsample=0.7),
          "weights": dict(sw=np.random.default_rng(1).uniform(0.2, 3, len(y)).astype(np.float32)),
          "16 classes": {}}[case]
    one_pass = fit_rounds(X, y, **kw)[1]
    same_rounds(one_pass, fit_rounds(X, y, colsample_bytree=1 - 1e-9, **kw)[1])
    same_rounds(one_pass, fit_rounds(X, y, root_pass=False, **kw)[1])


def test_scan_kernels_grow_the_same_trees():
    if len(KERNELS) < 2:
        pytest.skip("this CPU has no AVX-512")
    X, y = sample(500)
    same_rounds(fit_rounds(X, y, kernel="portable")[1], fit_rounds(X, y, kernel="avx512")[1])


@pytest.mark.parametrize("kernel", ["naive", "avx2", "amx"])
def test_a_round_rejects_the_kernels_it_has_not(kernel):
    X, y = sample(100)
    with pytest.raises(ValueError, match="kernel"):
        fit_rounds(X, y, rounds=1, kernel=kernel)


def test_uint8_and_scaled_floats_grow_the_same_trees():
    X, y = sample(500)
    a = fit_rounds(X, y)[1]
    b = fit_rounds((X / np.float32(255)).astype(np.float32), y)[1]
    for ra, rb in zip(a, b):
        for j, (xa, xb) in enumerate(zip(ra, rb)):
            if j != 6:  # thresholds are in the input's units
                np.testing.assert_array_equal(xa, xb)


def test_subsampling_and_seed_change_the_trees():
    X, y = sample(500)
    a = fit_rounds(X, y, subsample=0.5, seed=1)[1][0][3]
    b = fit_rounds(X, y, subsample=0.5, seed=2)[1][0][3]
    assert not np.array_equal(a, b)


def test_stop_flag_interrupts_and_leaves_score_unchanged():
    X, y = sample(300)
    codes, edges, n_edges = _core.tree_bin(X)
    state = _core.boost_start(codes, np.ascontiguousarray(codes.T), edges, n_edges, y, None, 10, 31)
    score = np.zeros((len(y), 10))
    control = np.array([1, 0], np.int64)
    with pytest.raises(KeyboardInterrupt):
        _core.boost_round(state, score, 0, 0, **ARGS, control=control)
    assert not score.any()


def test_predict_stages_sum_the_rounds_trees():
    X, y = sample(400)
    score, rounds = fit_rounds(X, y, rounds=3)
    flat = {name: [] for name in ("left", "right", "feature", "threshold", "value")}
    sizes = []
    for nn, left, right, feature, _, _, thr, value, _, _ in rounds:
        for c in range(len(nn)):
            m = nn[c]
            for name, a in zip(flat, (left, right, feature, thr, value)):
                flat[name].append(a[c, :m])
            sizes.append(m)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    base = np.log(np.bincount(y, minlength=10) / len(y))
    out = _core.boost_predict(X.astype(np.float32), *(np.concatenate(v) for v in flat.values()),
                              offsets, base, np.array([0, 1, 3], np.int64), nthreads=2)
    np.testing.assert_allclose(out[0], np.tile(base, (len(y), 1)))
    np.testing.assert_allclose(out[2], score, rtol=1e-12)
    assert not np.allclose(out[1], out[2])


def test_close_to_lightgbm_with_the_same_settings():
    lgb = pytest.importorskip("lightgbm")
    X, y = load_sample()
    X = X.reshape(len(X), -1)
    idx = np.random.default_rng(0).permutation(len(X))
    tr, te = idx[:2400], idx[2400:]
    rounds = 15
    score, out = fit_rounds(X[tr], y[tr], rounds=rounds)
    theirs = lgb.LGBMClassifier(n_estimators=rounds, num_leaves=31, learning_rate=0.1,
                                min_child_samples=20, min_child_weight=1e-3, reg_lambda=0.0,
                                max_bin=255, n_jobs=1, verbose=-1).fit(X[tr], y[tr])
    raw = theirs.predict_proba(X[tr], raw_score=True)
    # the same first trees: training scores agree closely (ties may pick other thresholds)
    agree = np.mean(raw.argmax(1) == score.argmax(1))
    assert agree > 0.97
    np.testing.assert_allclose(np.median(np.abs(raw - score)), 0, atol=0.05)


def test_leaf_sums_stay_exact_over_tens_of_thousands_of_rows():
    """Issue 16's defect: float32 histograms of 50,000 rows drifted by whole units, and the
    scan chose exactly the splits where a drifted hessian sum was near 0 (leaves of 20 rows
    with hessian 0.002, values of 1000). Each leaf's count and hessian must be its rows'."""
    rng = np.random.default_rng(3)
    n, d, k = 40000, 6, 3
    X = rng.integers(0, 256, (n, d)).astype(np.uint8)
    X[rng.random((n, d)) < 0.7] = 0  # one dominant bin, as background pixels are
    y = (X[:, 0] // 86 + (X[:, 1] > 100)) % k
    codes, edges, n_edges = _core.tree_bin(X)
    state = _core.boost_start(codes, np.ascontiguousarray(codes.T), edges, n_edges, y, None, k, 31)
    score = np.zeros((n, k))
    for r in range(4):
        _, h = softmax_grad(score, y)
        nn, left, right, feature, _, count, thr, value, _, hess = _core.boost_round(
            state, score, 0, r, **{**ARGS, "learning_rate": 0.5})
        for c in range(k):
            leaf_of = np.zeros(n, np.int64)
            todo = np.arange(n)
            while len(todo):  # walk all rows a level at a time
                j = leaf_of[todo]
                split = left[c, j] >= 0
                todo, j = todo[split], j[split]
                leaf_of[todo] = np.where(X[todo, feature[c, j]] <= thr[c, j], left[c, j], right[c, j])
            leaves = np.flatnonzero(left[c, :nn[c]] < 0)
            np.testing.assert_array_equal(count[c, leaves], np.bincount(leaf_of, minlength=nn[c])[leaves])
            np.testing.assert_allclose(hess[c, leaves], np.bincount(leaf_of, h[:, c], nn[c])[leaves],
                                       rtol=1e-9)
