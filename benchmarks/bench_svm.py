"""Kernel SVM, side by side in one run: ours vs scikit-learn SVC (libsvm), the same C,
gamma ("scale"), tol 1e-3 and cache_size, on the first N images of the study split's
training set (pixels / 255): fit and predict times (wall and CPU), support vectors,
accuracy on the 14,000 test images, ratios. Then where our time goes: kernel rows
computed and cache misses (a miss computes a block of rows), iterations, and the
integer operations of those rows (pixels / 255 reach the solver as bytes: exact uint8 dot
products, neighbors/u8dot.h). --full fits ours on all 50,400 (scikit-learn's full fit:
--sklearn-full, about 4 minutes on one core). --official times ours alone on the official
split's 54,000 training images (the issue's <= 30 s target, C=10, gamma "scale").

    python benchmarks/bench_svm.py [--n 10000] [--full] [--sklearn-full] [--official] [--C 10]
"""
import argparse
import os
import time

import numpy as np
from _common import load_data, print_table, study_data

import fmnist_c
from fmnist_c import _core


def cpu_timed(fn):
    """(wall seconds, CPU seconds of this process, result)"""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def kernel_gop(model, y):
    """Integer operations (a multiply and an add each) of the kernel rows the fit computed:
    a row of pair (a, b) is n_a + n_b dot products of 784 bytes."""
    count = np.bincount(np.searchsorted(model.classes_, y))
    sizes = [count[a] + count[b] for a in range(len(count)) for b in range(a + 1, len(count))]
    return 2 * 784 * float(np.dot(model.kernel_rows_[:, 0], sizes)) / 1e9


def run(name, make, Xtr, ytr, Xte, yte, rows):
    fw, fc, m = cpu_timed(lambda: make().fit(Xtr, ytr))
    pw, pc, pred = cpu_timed(lambda: m.predict(Xte))
    acc = float(np.mean(pred == yte))
    rows.append([name, len(ytr), f"{fw:.2f}", f"{fc:.2f}", f"{pw:.2f}", f"{pc:.2f}",
                 int(m.n_support_.sum()), f"{acc:.4f}"])
    return m, fw, pw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--C", type=float, default=10.0)
    ap.add_argument("--cache", type=float, default=1000.0, help="cache_size in MB")
    ap.add_argument("--full", action="store_true", help="also fit ours on all 50,400")
    ap.add_argument("--sklearn-full", action="store_true", help="and scikit-learn's")
    ap.add_argument("--official", action="store_true",
                    help="time ours on the official split's 54,000 training images")
    args = ap.parse_args()
    import sklearn
    from sklearn.svm import SVC as SkSVC

    s, source = study_data(scale=True)
    print(f"data: {source}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load average "
          f"{os.getloadavg()[0]:.2f}; uint8 dot tiles {_core.knn_kernel()}; scikit-learn "
          f"{sklearn.__version__}")
    rows = []
    sizes = [args.n] + ([len(s.y_train)] if args.full else [])
    for n in sizes:
        Xtr, ytr = s.X_train[:n], s.y_train[:n]
        ours, fw, pw = run("fmnist_c", lambda: fmnist_c.SVC(C=args.C, cache_size=args.cache),
                           Xtr, ytr, s.X_test, s.y_test, rows)
        if n == args.n or args.sklearn_full:
            _, sfw, spw = run("scikit-learn", lambda: SkSVC(C=args.C, cache_size=args.cache),
                              Xtr.astype(np.float64), ytr, s.X_test.astype(np.float64),
                              s.y_test, rows)
            print(f"n={n}: fit {sfw / fw:.1f}x, predict {spw / pw:.1f}x faster (wall)")
        k, gop = ours.kernel_rows_, kernel_gop(ours, ytr)
        print(f"n={n}: ours {int(ours.n_iter_.sum())} iterations over 45 pairs; kernel rows "
              f"computed {int(k[:, 0].sum())}, asked for and missing {int(k[:, 1].sum())} "
              f"(a miss computes a block of up to one dot tile's rows: 32 on AMX, 6 on "
              f"VNNI); {gop:.0f} GOP of uint8 dot products, {gop / fw:.0f} GOP/s over the "
              f"whole fit's wall time")
    if args.official:
        X, y, _ = load_data()
        o = fmnist_c.official_split(X.reshape(len(X), -1), y)
        Xo = (o.X_train / np.float32(255)).astype(np.float32)
        fw, fc, m = cpu_timed(lambda: fmnist_c.SVC(C=args.C, cache_size=args.cache).fit(Xo, o.y_train))
        rows.append(["fmnist_c official", len(o.y_train), f"{fw:.2f}", f"{fc:.2f}", "", "",
                     int(m.n_support_.sum()), ""])
        print(f"official split, {len(o.y_train)} images: fit {fw:.2f} s ({fc:.2f} s CPU); load "
              f"average {os.getloadavg()[0]:.2f}")
    print_table(rows, ["library", "n", "fit s", "fit cpu s", "predict s", "predict cpu s",
                       "SVs", "test acc"])


if __name__ == "__main__":
    main()
