"""Gradient boosting, side by side in one run on the study split (uint8 pixels, 2 threads,
identical settings: 31 leaves, learning rate 0.1, no subsampling, 256 bins): ours vs
LightGBM for --rounds rounds (default 200), then XGBoost hist (lossguide, 31 leaves) and
scikit-learn's HistGradientBoostingClassifier (31 leaves) for --slow-rounds rounds (they
are slower; their per-round time is what compares). Fit and predict (14,000 test images)
times, CPU times, test accuracies, ratios. Where our time goes: perf record on a round
(benchmarks/README.md).

    python benchmarks/bench_gbdt.py [--rounds 200] [--slow-rounds 20] [--skip-slow]
"""
import argparse
import os
import time
import warnings

import numpy as np
from _common import print_table, study_data

import fmnist_c


def cpu_timed(fn):
    """(wall seconds, CPU seconds of this process, result)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def row(name, rounds, acc, fit, fit_cpu, pred, ref):
    """A table row; ref = (our fit s per round, our predict s), for the ratios."""
    per = fit / rounds
    return [name, rounds, f"{acc:.4f}", f"{fit:.1f}", f"{fit_cpu:.1f}", f"{per:.3f}",
            f"{pred:.3f}", f"{per / ref[0]:.2f}", f"{pred / ref[1]:.2f}"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--slow-rounds", type=int, default=20)
    ap.add_argument("--skip-slow", action="store_true", help="only ours and LightGBM")
    args = ap.parse_args()
    s, source = study_data(scale=False)
    Xtr, ytr, Xte, yte = s.X_train, s.y_train, s.X_test, s.y_test
    print(f"data: {source}; train {len(ytr)}, test {len(yte)}; load before "
          f"{os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    rows = []

    ours = fmnist_c.GradientBoostingClassifier(args.rounds, learning_rate=0.1, num_leaves=31,
                                               n_jobs=2, random_state=0)
    t, c, _ = cpu_timed(lambda: ours.fit(Xtr, ytr))
    p0 = time.perf_counter()
    acc = float(np.mean(ours.predict(Xte) == yte))
    ref = (t / args.rounds, time.perf_counter() - p0)
    rows.append(row("fmnist_c", args.rounds, acc, t, c, ref[1], ref))
    print_table(rows, HEADER)

    import lightgbm as lgb
    theirs = lgb.LGBMClassifier(n_estimators=args.rounds, learning_rate=0.1, num_leaves=31,
                                max_bin=255, n_jobs=2, verbose=-1)
    t, c, _ = cpu_timed(lambda: theirs.fit(Xtr, ytr))
    p0 = time.perf_counter()
    acc = float(np.mean(theirs.predict(Xte) == yte))
    rows.append(row(f"LightGBM {lgb.__version__}", args.rounds, acc, t, c,
                    time.perf_counter() - p0, ref))
    print()
    print_table(rows, HEADER)
    if args.skip_slow:
        return

    import xgboost as xgb
    from sklearn.ensemble import HistGradientBoostingClassifier
    slow = {
        f"XGBoost {xgb.__version__} hist": xgb.XGBClassifier(
            n_estimators=args.slow_rounds, learning_rate=0.1, tree_method="hist",
            grow_policy="lossguide", max_leaves=31, max_depth=0, max_bin=256, n_jobs=2),
        "sklearn HistGradientBoosting": HistGradientBoostingClassifier(
            max_iter=args.slow_rounds, learning_rate=0.1, max_leaf_nodes=31, early_stopping=False,
            max_bins=255),
    }
    for name, model in slow.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, c, _ = cpu_timed(lambda: model.fit(Xtr, ytr))
        p0 = time.perf_counter()
        acc = float(np.mean(model.predict(Xte) == yte))
        rows.append(row(name, args.slow_rounds, acc, t, c, time.perf_counter() - p0, ref))
    print()
    print_table(rows, HEADER)
    print(f"load after {os.getloadavg()[0]:.1f}; per round / ours compares fit speed; the slow "
          f"ones' predict time is for {args.slow_rounds} rounds")


HEADER = ["library", "rounds", "test acc", "fit s", "fit CPU s", "s / round", "predict s",
          "per round / ours", "predict / ours"]

if __name__ == "__main__":
    main()
