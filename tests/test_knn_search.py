"""The exact k-nearest-neighbour search (csrc/neighbors/) against a float64 NumPy brute
force: uint8 and float32 rows, every metric, every kernel family, ties forced by
duplicate rows, and the same lists for any thread count."""
import numpy as np
import pytest

from fmnist_c import _core, load_sample

METRICS = _core.knn_metrics()
KERNELS = ["portable", "avx2", "avx512", "amx"]


def brute_force(q, x, k, metric):
    """Distances (float64) and indices of the k nearest rows, ties by smaller index."""
    q64, x64 = q.astype(np.float64), x.astype(np.float64)
    if metric == "euclidean":
        D = ((q64[:, None, :] - x64[None]) ** 2).sum(-1)
    elif metric == "manhattan":
        D = np.abs(q64[:, None, :] - x64[None]).sum(-1)
    else:
        qq, xx = (q64 ** 2).sum(1), (x64 ** 2).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            D = 1 - (q64 @ x64.T) / np.sqrt(np.outer(qq, xx))
        D[(qq == 0)[:, None] | (xx == 0)[None]] = 1
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(D, order, 1)
    return (np.sqrt(dist) if metric == "euclidean" else dist), order


def search(q, x, k, metric, kernel="auto", nthreads=0):
    try:
        return _core.knn_search(q, x, k, METRICS[metric], kernel=kernel, nthreads=nthreads)
    except ValueError as e:
        if "not available on this CPU" in str(e):
            pytest.skip(f"{kernel} kernel not available on this CPU")
        raise


def with_ties(nq=37, nx=701, d=101, seed=0):
    """Random bytes (dimensions not multiples of any block) with duplicated training rows
    and queries equal to some of them, so that keys tie and order is by index."""
    rng = np.random.default_rng(seed)
    q = rng.integers(0, 256, (nq, d)).astype(np.uint8)
    x = rng.integers(0, 256, (nx, d)).astype(np.uint8)
    x[[5, 10, 300, 699]] = x[600]
    q[3] = q[7] = x[600]
    x[:20:2] = x[1]
    q[0] = 0
    x[2] = 0
    return q, x


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_random_rows_equal_brute_force(kernel, metric, dtype):
    q, x = with_ties()
    if dtype == "float32":
        q, x = q / np.float32(255), x / np.float32(255)
    for k in (1, 7, 50):
        dist, idx = search(q, x, k, metric, kernel)
        want_d, want_i = brute_force(q, x, k, metric)
        if dtype == "uint8" and metric != "cosine":  # integer keys: exact
            np.testing.assert_array_equal(dist, want_d)
        else:
            np.testing.assert_allclose(dist, want_d, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(idx, want_i)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("metric", sorted(METRICS))
def test_sample_images_equal_brute_force(kernel, metric):
    X, _ = load_sample()
    X = X.reshape(len(X), -1)
    q, x = X[:40], X[40:1500]
    dist, idx = search(q, x, 20, metric, kernel)
    want_d, want_i = brute_force(q, x, 20, metric)
    np.testing.assert_allclose(dist, want_d, rtol=1e-12)
    np.testing.assert_array_equal(idx, want_i)
    fdist, fidx = search(q / np.float32(255), x / np.float32(255), 20, metric, kernel)
    # the same neighbours from pixels / 255, up to the order of rows whose integer keys
    # tie (rounding to float32 can part them): their exact keys are the k smallest
    got = np.array([[brute_force(q[i:i + 1], x[j:j + 1], 1, metric)[0][0, 0] for j in row]
                    for i, row in enumerate(fidx)])
    np.testing.assert_allclose(got, want_d, rtol=1e-12)
    assert (fidx == want_i).mean() > 0.95
    np.testing.assert_allclose(fdist * (255 if metric != "cosine" else 1), want_d, rtol=1e-6)


@pytest.mark.parametrize("metric", sorted(METRICS))
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_thread_counts_give_identical_lists(metric, dtype):
    q, x = with_ties(nq=500, nx=1200, d=64, seed=1)
    if dtype == "float32":
        q, x = q.astype(np.float32), x.astype(np.float32)
    one = search(q, x, 30, metric, nthreads=1)
    two = search(q, x, 30, metric, nthreads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


def test_float_rows_with_large_norms_are_reranked():
    """Rows far from the origin: float32's |q|^2 + |x|^2 - 2 q.x loses the neighbours'
    differences, so only the float64 re-ranking finds them."""
    rng = np.random.default_rng(2)
    x = (1000 + rng.normal(size=(300, 33)) * 1e-2).astype(np.float32)
    q = (1000 + rng.normal(size=(9, 33)) * 1e-2).astype(np.float32)
    for metric in ("euclidean", "cosine"):
        dist, idx = search(q, x, 5, metric)
        want_d, want_i = brute_force(q, x, 5, metric)
        np.testing.assert_array_equal(idx, want_i)
        np.testing.assert_allclose(dist, want_d, rtol=1e-12, atol=1e-15)


def test_inputs_are_left_unchanged_and_bad_arguments_raise():
    q, x = with_ties()
    q0, x0 = q.copy(), x.copy()
    search(q, x, 3, "euclidean")
    np.testing.assert_array_equal(q, q0)
    np.testing.assert_array_equal(x, x0)
    with pytest.raises(ValueError, match="k must be"):
        _core.knn_search(q, x, 0)
    with pytest.raises(ValueError, match="k must be"):
        _core.knn_search(q, x, len(x) + 1)
    with pytest.raises(ValueError, match="same number of columns"):
        _core.knn_search(q[:, :5], x, 3)
    with pytest.raises(ValueError, match="metric"):
        _core.knn_search(q, x, 3, 7)
    with pytest.raises(ValueError, match="kernel"):
        _core.knn_search(q, x, 3, kernel="naive")
    bad = x.astype(np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _core.knn_search(q.astype(np.float32), bad, 3)
    assert _core.knn_kernel() in KERNELS


@pytest.mark.parametrize("kernel", KERNELS)
def test_u8_dot_blocks_equal_numpy(kernel):
    """neighbors/u8dot.h, the search's dot-product tiles offered to other families: exact
    int32 a @ b.T, block edges not multiples of any tile, the largest bytes included."""
    rng = np.random.default_rng(3)
    for m, n, d in ((1, 1, 1), (37, 101, 129), (70, 65, 784)):
        a = rng.integers(0, 256, (m, d)).astype(np.uint8)
        b = rng.integers(0, 256, (n, d)).astype(np.uint8)
        a[0] = b[-1] = 255
        try:
            got = _core.u8_dots(a, b, kernel=kernel)
        except ValueError as e:
            if "not available on this CPU" in str(e):
                pytest.skip(f"{kernel} kernel not available on this CPU")
            raise
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, a.astype(np.int64) @ b.T.astype(np.int64))


def test_u8_dots_refuses_bad_arguments():
    a = np.zeros((3, 5), np.uint8)
    with pytest.raises(ValueError, match="same number of columns"):
        _core.u8_dots(a, np.zeros((3, 6), np.uint8))
    with pytest.raises(ValueError, match="kernel must be"):
        _core.u8_dots(a, a, kernel="naive")
