"""fmnist_c._core.gemm against a float64 NumPy reference, for every kernel this CPU runs.

Tolerance: float32 products summed in float32 drift like sqrt(k) rounding errors, so each
element may differ from the float64 answer by (4 sqrt(k) + 8) * eps32 times its scale
|alpha| (|op(A)| @ |op(B)|) + |beta C|, the sum of the magnitudes that went into it.
"""
import itertools

import numpy as np
import pytest

from fmnist_c import _core

EPS32 = float(np.finfo(np.float32).eps)
ALL_KERNELS = ["naive", "portable", "avx2", "avx512"]


def _available(kernel):
    try:
        _core.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), kernel=kernel)
    except ValueError:
        return False
    return True


AVAILABLE = {k: _available(k) for k in ALL_KERNELS}
FAST_KERNELS = [k for k in ALL_KERNELS[1:] if AVAILABLE[k]]


def kernel_param(name):
    return pytest.param(name, marks=pytest.mark.skipif(not AVAILABLE[name], reason=f"this CPU lacks {name}"))


KERNELS = [kernel_param(k) for k in ALL_KERNELS]
TRANS = list(itertools.product([False, True], repeat=2))


def padded(rng, rows, cols, pad):
    """A (rows, cols) float32 view with row stride cols + pad: leading dimension > width."""
    full = rng.standard_normal((rows, cols + pad)).astype(np.float32)
    return full[:, :cols]


def operands(rng, m, n, k, ta, tb, pad=0):
    a = padded(rng, k, m, pad) if ta else padded(rng, m, k, pad)
    b = padded(rng, n, k, pad) if tb else padded(rng, k, n, pad)
    return a, b


def reference(a, b, c, ta, tb, alpha, beta):
    """alpha op(A) op(B) + beta C in float64, and the per-element scale of its error."""
    a64 = (a.T if ta else a).astype(np.float64)
    b64 = (b.T if tb else b).astype(np.float64)
    ref = alpha * (a64 @ b64)
    scale = abs(alpha) * (np.abs(a64) @ np.abs(b64))
    if beta != 0:
        ref += beta * c.astype(np.float64)
        scale += abs(beta) * np.abs(c.astype(np.float64))
    return ref, scale


def assert_gemm_close(got, ref, scale, k, what):
    tol = (4 * np.sqrt(k) + 8) * EPS32 * scale
    err = np.abs(got.astype(np.float64) - ref)
    err[np.isnan(err)] = np.inf
    bad = ~(err <= tol)
    worst = int(np.argmax(err)) if err.size else 0
    assert not bad.any(), (
        f"{what}: {bad.sum()} elements off, worst error {err.flat[worst]:.3g} "
        f"(tolerance there {tol.flat[worst]:.3g})")


def run_case(rng, kernel, m, n, k, ta, tb, alpha, beta, pad):
    a, b = operands(rng, m, n, k, ta, tb, pad)
    c_full = rng.standard_normal((m, n + pad)).astype(np.float32)
    if beta == 0:
        c_full[:, :n] = np.nan  # beta == 0 must not read C
    c = c_full[:, :n]
    c_before = c_full.copy()
    a_before, b_before = a.copy(), b.copy()
    ref, scale = reference(a, b, c, ta, tb, alpha, beta)
    out = _core.gemm(a, b, c, trans_a=ta, trans_b=tb, alpha=alpha, beta=beta, kernel=kernel)
    what = f"kernel={kernel} m={m} n={n} k={k} ta={ta} tb={tb} alpha={alpha} beta={beta} pad={pad}"
    assert out.shape == (m, n), what
    assert np.shares_memory(out, c_full), what
    assert_gemm_close(c, ref, scale, k, what)
    np.testing.assert_array_equal(c_full[:, n:], c_before[:, n:], err_msg=f"{what}: wrote past n")
    np.testing.assert_array_equal(a, a_before, err_msg=f"{what}: changed A")
    np.testing.assert_array_equal(b, b_before, err_msg=f"{what}: changed B")


SMALL = [1, 7, 17, 33, 64, 127]
ALPHA_BETA = [(1.0, 0.0), (-0.5, 1.5), (2.0, 0.0), (1.0, 1.0), (0.25, -2.0)]


@pytest.mark.parametrize("ta,tb", TRANS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_small_odd_shapes(kernel, ta, tb):
    rng = np.random.default_rng(1)
    for i, (m, n, k) in enumerate(itertools.product(SMALL, repeat=3)):
        if i % 2 and max(m, n, k) == 127:
            continue  # half the biggest corner of the cube is enough
        alpha, beta = ALPHA_BETA[i % len(ALPHA_BETA)]
        run_case(rng, kernel, m, n, k, ta, tb, alpha, beta, pad=i % 4)


# (m, n, k) larger than the cache blocks, mostly not multiples of the register tiles;
# n <= 16 takes the narrow AVX-512 tile
LARGE = [(784, 256, 64), (64, 256, 784), (1000, 784, 17), (127, 33, 1000),
         (33, 1000, 127), (784, 7, 784), (127, 1000, 784), (17, 2500, 400), (1000, 16, 300), (1, 784, 1000),
         (1000, 1, 127), (784, 1000, 1)]


@pytest.mark.parametrize("kernel", KERNELS)
def test_large_odd_shapes(kernel):
    rng = np.random.default_rng(2)
    for i, (m, n, k) in enumerate(LARGE):
        ta, tb = TRANS[i % 4]
        alpha, beta = ALPHA_BETA[i % len(ALPHA_BETA)]
        run_case(rng, kernel, m, n, k, ta, tb, alpha, beta, pad=3)


@pytest.mark.parametrize("kernel", KERNELS)
def test_network_products(kernel):
    """The three products of a dense layer, Y = X W^T, dX = dY W and dW = dY^T X."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 784)).astype(np.float32)
    w = rng.standard_normal((256, 784)).astype(np.float32)
    dy = rng.standard_normal((64, 256)).astype(np.float32)
    cases = [("Y = X W^T", x, w, False, True), ("dX = dY W", dy, w, False, False),
             ("dW = dY^T X", dy, x, True, False)]
    for what, a, b, ta, tb in cases:
        ref, scale = reference(a, b, None, ta, tb, 1.0, 0.0)
        got = _core.gemm(a, b, trans_a=ta, trans_b=tb, kernel=kernel)
        assert got.dtype == np.float32 and got.shape == ref.shape, what
        k = a.shape[0] if ta else a.shape[1]
        assert_gemm_close(got, ref, scale, k, f"{kernel}: {what}")


@pytest.mark.parametrize("kernel", KERNELS)
def test_accumulate_into_gradient(kernel):
    """beta = 1 adds onto C: the backward pass accumulates dW over calls."""
    rng = np.random.default_rng(4)
    dy = rng.standard_normal((64, 33)).astype(np.float32)
    x = rng.standard_normal((64, 127)).astype(np.float32)
    dw = np.zeros((33, 127), np.float32)
    for _ in range(3):
        _core.gemm(dy, x, dw, trans_a=True, beta=1.0, kernel=kernel)
    ref = 3 * (dy.T.astype(np.float64) @ x.astype(np.float64))
    scale = 3 * (np.abs(dy.T.astype(np.float64)) @ np.abs(x.astype(np.float64)))
    assert_gemm_close(dw, ref, scale, 3 * 64, f"{kernel}: three accumulations")


@pytest.mark.parametrize("kernel", KERNELS)
def test_k_zero_scales_c(kernel):
    rng = np.random.default_rng(5)
    for ta, tb in TRANS:
        a = np.empty((0, 7) if ta else (7, 0), np.float32)
        b = np.empty((5, 0) if tb else (0, 5), np.float32)
        c = rng.standard_normal((7, 5)).astype(np.float32)
        expect = 1.5 * c
        _core.gemm(a, b, c, trans_a=ta, trans_b=tb, beta=1.5, kernel=kernel)
        np.testing.assert_allclose(c, expect, rtol=1e-6, err_msg=f"{kernel} ta={ta} tb={tb}")
        c[:] = np.nan
        _core.gemm(a, b, c, trans_a=ta, trans_b=tb, beta=0.0, kernel=kernel)
        np.testing.assert_array_equal(c, np.zeros((7, 5), np.float32))


@pytest.mark.parametrize("kernel", KERNELS)
def test_empty_m_or_n(kernel):
    for m, n in [(0, 5), (5, 0), (0, 0)]:
        a = np.ones((m, 3), np.float32)
        b = np.ones((3, n), np.float32)
        out = _core.gemm(a, b, kernel=kernel)
        assert out.shape == (m, n)


@pytest.mark.parametrize("kernel", KERNELS)
def test_beta_zero_does_not_read_nan(kernel):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((127, 64)).astype(np.float32)
    b = rng.standard_normal((64, 33)).astype(np.float32)
    c = np.full((127, 33), np.nan, np.float32)
    _core.gemm(a, b, c, beta=0.0, kernel=kernel)
    assert np.isfinite(c).all(), kernel


@pytest.mark.parametrize("kernel", FAST_KERNELS)
def test_result_independent_of_thread_count(kernel):
    rng = np.random.default_rng(7)
    for i, (m, n, k) in enumerate([(64, 256, 784), (784, 256, 64), (127, 1000, 784),
                                   (1000, 33, 127), (256, 784, 64), (33, 17, 1000),
                                   (1000, 10, 784), (64, 10, 256), (61, 10, 300), (45, 40, 90)]):
        ta, tb = TRANS[i % 4]
        a, b = operands(rng, m, n, k, ta, tb, pad=1)
        c0 = rng.standard_normal((m, n)).astype(np.float32)
        outs = [_core.gemm(a, b, c0.copy(), trans_a=ta, trans_b=tb, alpha=0.5, beta=0.75,
                           kernel=kernel, nthreads=t) for t in (1, 2, 3, 4)]
        for t, out in zip((2, 3, 4), outs[1:]):
            assert np.array_equal(outs[0], out), f"{kernel} m={m} n={n} k={k}: 1 vs {t} threads"


@pytest.mark.parametrize("kernel", FAST_KERNELS)
def test_fast_kernel_matches_naive_twin(kernel):
    rng = np.random.default_rng(8)
    for ta, tb in TRANS:
        a, b = operands(rng, 127, 100, 300, ta, tb)
        naive = _core.gemm(a, b, trans_a=ta, trans_b=tb, kernel="naive")
        fast = _core.gemm(a, b, trans_a=ta, trans_b=tb, kernel=kernel)
        _, scale = reference(a, b, None, ta, tb, 1.0, 0.0)
        assert_gemm_close(fast, naive.astype(np.float64), 2 * scale, 300, f"{kernel} vs naive")


def test_auto_kernel_is_the_best_available():
    name = _core.gemm_kernel()
    assert name in ("avx512", "avx2", "portable")
    best = [k for k in ("avx512", "avx2", "portable") if AVAILABLE[k]][0]
    assert name == best
    rng = np.random.default_rng(9)
    a, b = operands(rng, 33, 17, 64, False, False)
    np.testing.assert_array_equal(_core.gemm(a, b), _core.gemm(a, b, kernel=name))


def test_unknown_kernel_and_bad_shapes_raise():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError):
        _core.gemm(a, a, kernel="sse9")
    with pytest.raises(ValueError):
        _core.gemm(a, a)  # (3, 4) @ (3, 4)


def test_fortran_integer_operand_is_copied_safely():
    """A non-float32, Fortran-ordered operand goes through two conversions in the binding."""
    a = np.asfortranarray(np.arange(35, dtype=np.int16).reshape(5, 7))
    b = np.arange(21, dtype=np.float32).reshape(7, 3)
    np.testing.assert_allclose(_core.gemm(a, b), a.astype(np.float64) @ b, rtol=1e-6)
