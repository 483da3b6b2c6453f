"""GFLOP/s of fmnist_c's GEMM against NumPy's matmul (OpenBLAS), both on the same threads.

Run:  python benchmarks/bench_gemm.py [--threads 2] [--repeats 15] [--kernel auto]
Shapes are m x k x n as the network meets them; each line reports the median of the
repeats, ours and OpenBLAS taking turns. Timings only: nothing here asserts.
"""
import argparse
import os
import sys
import time

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # fall back to the environment, which OpenBLAS reads when NumPy loads
    threadpool_limits = None
    if "numpy" in sys.modules:
        print("warning: numpy already imported, OPENBLAS_NUM_THREADS may not apply", file=sys.stderr)

# (label, m, k, n, trans_a, trans_b)
SHAPES = [
    ("Y = X W^T  (batch 64, 784 -> 256)", 64, 784, 256, False, True),
    ("X W        (batch 64, 784 -> 256)", 64, 784, 256, False, False),
    ("X W        (batch 64, 256 -> 256)", 64, 256, 256, False, False),
    ("dX = dY W  (batch 64, 256 -> 784)", 64, 256, 784, False, False),
    ("dW = X^T dY (784 x 64 x 256)", 784, 64, 256, True, False),
    ("256 x 64 x 784", 256, 64, 784, False, False),
    ("512^3", 512, 512, 512, False, False),
]


def loop_count(fn, min_time=0.02):
    """Calls of fn that take about min_time, so each timing is long enough to read the clock."""
    fn()
    t0 = time.perf_counter()
    fn()
    return max(1, int(min_time / max(time.perf_counter() - t0, 1e-7)))


def median_seconds(fns, repeats):
    """Median seconds per call of each function, timed one function after the other. Not
    interleaved: OpenBLAS's idle threads keep spinning after its calls and OpenMP's after
    ours, so taking turns makes each library run against the other's spinning pool."""
    medians = []
    for fn in fns:
        time.sleep(0.5)  # let the other library's threads go idle
        n = loop_count(fn)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            ts.append((time.perf_counter() - t0) / n)
        medians.append(sorted(ts)[len(ts) // 2])
    return medians


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--kernel", default="auto", help="auto, portable, avx2, avx512 or naive")
    args = parser.parse_args()

    if threadpool_limits is None:
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np

    from fmnist_c import _core

    limiter = threadpool_limits(limits=args.threads, user_api="blas") if threadpool_limits else None
    rng = np.random.default_rng(0)
    kernel = _core.gemm_kernel() if args.kernel == "auto" else args.kernel
    print(f"kernel {kernel}, {args.threads} threads, median of {args.repeats}; GFLOP/s")
    if hasattr(os, "getloadavg"):
        # another busy process makes OpenMP's spinning threads stall: read numbers with this
        print(f"load average before the run: {os.getloadavg()[0]:.2f}")
    print(f"{'shape':36s} {'m':>5s} {'k':>5s} {'n':>5s} {'ours':>8s} {'OpenBLAS':>9s} {'ratio':>6s}")
    for label, m, k, n, ta, tb in SHAPES:
        a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
        c_ours = np.empty((m, n), np.float32)
        c_blas = np.empty((m, n), np.float32)
        op_a, op_b = (a.T if ta else a), (b.T if tb else b)
        ours, blas = median_seconds(
            [lambda: _core.gemm(a, b, c_ours, trans_a=ta, trans_b=tb, kernel=args.kernel,
                                nthreads=args.threads),
             lambda: np.matmul(op_a, op_b, out=c_blas)], args.repeats)
        flop = 2.0 * m * n * k
        print(f"{label:36s} {m:5d} {k:5d} {n:5d} {flop / ours / 1e9:8.1f} {flop / blas / 1e9:9.1f} "
              f"{blas / ours:6.2f}")
    if limiter is not None:
        limiter.restore_original_limits()


if __name__ == "__main__":
    main()
