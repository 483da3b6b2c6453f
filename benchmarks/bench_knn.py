"""k-nearest neighbours, side by side in one run on the study split (14,000 test images
against 50,400 training images, 2 threads, k=5, distance-weighted votes): our exact search
on the uint8 pixels (Euclidean and Manhattan) and on float32 pixels / 255 (Euclidean, the
SGEMM path), faiss-cpu IndexFlatL2 (exact, float32 pixels / 255) and scikit-learn's
KNeighborsClassifier(algorithm="brute", n_jobs=2). scikit-learn is timed on a slice of the
queries and extrapolated linearly (one call with all 14,000 ran for minutes at 11.6 GB),
and says so. Search throughput in GOP/s (a multiply and an add, or a subtraction, an
absolute value and an add counted as 2 operations a dimension) beside this machine's 8-bit
dot-product peak for the kernel in use, at the clock /proc/cpuinfo reports: AMX-INT8, one
TDPBUUD (16 x 16 x 64 multiply-adds) every 16 cycles a core, i.e. 1,024 multiply-adds a
cycle (Intel's throughput figure for Sapphire Rapids); AVX-512 VNNI, 2 VPDPBUSD (64
multiply-adds each) a cycle.

    flock /work/bench.lock python benchmarks/bench_knn.py [--sk-queries 2000]
"""
import argparse
import os

import numpy as np
from _common import print_table, study_data, timed

import fmnist_c
from fmnist_c.neighbors import vote

K = 5
THREADS = 2


def clock_ghz():
    """The clock /proc/cpuinfo reports (GHz), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        return max(mhz) / 1000 if mhz else None
    except OSError:
        return None


def accuracy(dist, idx, y_train, y_test):
    proba = vote(dist, y_train[idx], 10, K, "distance")
    return float(np.mean(proba.argmax(axis=1) == y_test))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sk-queries", type=int, default=2000, help="scikit-learn Euclidean queries")
    ap.add_argument("--sk-manhattan-queries", type=int, default=300)
    args = ap.parse_args()
    s, source = study_data(scale=False)
    Xtr, ytr, Xte, yte = s.X_train, s.y_train, s.X_test, s.y_test
    Ftr, Fte = Xtr / np.float32(255), Xte / np.float32(255)
    nq, nx, d = len(Xte), len(Xtr), Xtr.shape[1]
    ops = 2.0 * nq * nx * d
    print(f"data: {source}; {nq} queries x {nx} rows x {d}; k={K}, {THREADS} threads; "
          f"uint8 kernel {fmnist_c._core.knn_kernel()}; load {os.getloadavg()}")
    rows, base = [], {}

    def add(name, seconds, acc, note=""):
        rows.append([name, f"{seconds:.2f}", f"{ops / seconds / 1e9:.0f}", f"{acc:.4f}", note])
        return seconds

    for metric in ("euclidean", "manhattan"):
        m = fmnist_c.KNeighborsClassifier(K, weights="distance", metric=metric,
                                          n_jobs=THREADS).fit(Xtr, ytr)
        t, (dist, idx) = timed(lambda: m.kneighbors(Xte), repeat=2)
        base[metric] = add(f"ours uint8 {metric}", t, accuracy(dist, idx, ytr, yte))
    m = fmnist_c.KNeighborsClassifier(K, weights="distance", n_jobs=THREADS).fit(Ftr, ytr)
    t, (dist, idx) = timed(lambda: m.kneighbors(Fte))
    add("ours float32 euclidean", t, accuracy(dist, idx, ytr, yte), "SGEMM + float64 re-rank")

    import faiss
    faiss.omp_set_num_threads(THREADS)
    index = faiss.IndexFlatL2(d)
    index.add(Ftr)
    t, (dsq, idx) = timed(lambda: index.search(Fte, K), repeat=2)
    add(f"faiss {faiss.__version__} IndexFlatL2", t,
        accuracy(np.sqrt(np.maximum(dsq, 0)), idx, ytr, yte),
        f"ours uint8 {t / base['euclidean']:.1f}x faster")

    import sklearn
    from sklearn.neighbors import KNeighborsClassifier as SkKNN
    for metric, n_sk in (("euclidean", args.sk_queries), ("manhattan", args.sk_manhattan_queries)):
        sk = SkKNN(K, weights="distance", metric=metric, algorithm="brute",
                   n_jobs=THREADS).fit(Ftr, ytr)
        t, (dist, idx) = timed(lambda: sk.kneighbors(Fte[:n_sk]))
        t_all = t * nq / n_sk
        add(f"scikit-learn {sklearn.__version__} brute {metric}", t_all,
            accuracy(dist, idx, ytr, yte[:n_sk]),
            f"{n_sk} queries x {nq / n_sk:.0f}; ours {t_all / base[metric]:.0f}x faster")

    print_table(rows, ["search", "seconds", "GOP/s", "accuracy", "note"])
    ghz = clock_ghz()
    if ghz:
        amx = fmnist_c._core.knn_kernel() == "amx"
        mac = 1024 if amx else 2 * 64
        peak = THREADS * ghz * mac * 2
        print(f"8-bit peak ({THREADS} cores x {ghz:.2f} GHz x {mac} MAC/cycle "
              f"({'AMX' if amx else 'VNNI'}) x 2): {peak:.0f} GOP/s; ours Euclidean "
              f"{ops / base['euclidean'] / 1e9 / peak:.1%} of it")


if __name__ == "__main__":
    main()
