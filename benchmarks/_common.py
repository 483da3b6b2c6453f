"""Shared by the benchmarks: the study split of the full data, timing, a ratio table."""
import os
import statistics
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

import fmnist_c  # noqa: E402
from fmnist_c.study import load_data  # noqa: E402


def study_data(scale=True):
    """(split, source) on the full data (falling back to the sample, and saying so), with
    images flattened to (n, 784): float32 pixels / 255 when `scale`, else uint8."""
    X, y, source = load_data()
    s = fmnist_c.study_split(X.reshape(len(X), -1), y)
    if scale:
        s = s._replace(**{k: (getattr(s, k) / np.float32(255)).astype(np.float32)
                          for k in ("X_train", "X_val", "X_test")})
    return s, source


def timed(fn, repeat=1):
    """(median seconds over `repeat` calls, last result)."""
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def print_table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
