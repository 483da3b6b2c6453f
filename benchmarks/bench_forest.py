"""Random forest, side by side in one run on the study split (pixels / 255):
ours vs scikit-learn RandomForestClassifier(n_jobs=2), 100 trees, max_features="sqrt",
full depth: fit and predict times, test accuracies, ratios. Then the study's depth sweep
18..39 (20 trees, gini, class_weight="balanced"): one fit of ours cut at every depth vs
22 fits of scikit-learn. --small-node times our fit for several small-node sizes (below
it a node sorts its codes instead of filling 256-bin histograms, unless its weights are
whole, gini, and its classes few enough for 16-bit lanes: see csrc/trees/tree_split.c).

    python benchmarks/bench_forest.py [--skip-sweep] [--small-node] [--trees 100]
"""
import argparse
import time

import numpy as np
from _common import print_table, study_data, timed

import fmnist_c
import fmnist_c.tree as tree_module


def cpu_timed(fn):
    """(wall seconds, CPU seconds of this process, result): CPU time is the fairer figure
    when other jobs share the machine."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--skip-sweep", action="store_true", help="skip the 22 scikit-learn fits")
    ap.add_argument("--small-node", action="store_true", help="measure the small-node crossover")
    ap.add_argument("--repeat", type=int, default=3, help="fits of ours (median time)")
    args = ap.parse_args()
    import sklearn
    from sklearn.ensemble import RandomForestClassifier as SkForest

    s, source = study_data(scale=True)
    Xtr, Xv, Xte = s.X_train, s.X_val, s.X_test
    print(f"data: {source}; train {len(s.y_train)}, test {len(s.y_test)}; "
          f"fmnist_c {fmnist_c.__version__}, scikit-learn {sklearn.__version__}; 2 threads each")

    if args.small_node:
        rows, default = [], tree_module._SMALL_NODE
        for small in (0, 16, 32, 64, 128, 256, 512):
            tree_module._SMALL_NODE = small
            t, _ = timed(lambda: fmnist_c.RandomForestClassifier(
                20, n_jobs=2, random_state=0).fit(Xtr, s.y_train), args.repeat)
            rows.append([small, f"{t:.2f}"])
        tree_module._SMALL_NODE = default  # the 100-tree comparison below runs the default
        print_table(rows, ["small_node", "fit s (20 trees)"])
        print()

    kw = dict(n_estimators=args.trees, max_features="sqrt", n_jobs=2, random_state=0)
    runs = [cpu_timed(lambda: fmnist_c.RandomForestClassifier(**kw).fit(Xtr, s.y_train))
            for _ in range(args.repeat)]
    t_ours, c_ours = np.median([r[0] for r in runs]), np.median([r[1] for r in runs])
    ours = runs[-1][2]
    p_ours, pred = timed(lambda: ours.predict(Xte), 3)
    acc_ours = float(np.mean(pred == s.y_test))
    t_sk, c_sk, sk = cpu_timed(lambda: SkForest(**kw).fit(Xtr, s.y_train))
    p_sk, pred_sk = timed(lambda: sk.predict(Xte), 3)
    acc_sk = float(np.mean(pred_sk == s.y_test))
    print_table([
        ["fmnist_c", f"{acc_ours:.4f}", f"{t_ours:.2f}", f"{c_ours:.2f}", f"{p_ours:.3f}",
         "1.0", "1.0", "1.0"],
        ["scikit-learn", f"{acc_sk:.4f}", f"{t_sk:.2f}", f"{c_sk:.2f}", f"{p_sk:.3f}",
         f"{t_sk / t_ours:.1f}", f"{c_sk / c_ours:.1f}", f"{p_sk / p_ours:.1f}"],
    ], [f"{args.trees} trees, sqrt", "test acc", "fit s", "fit CPU s", "predict s (14,000)",
        "fit / ours", "fit CPU / ours", "predict / ours"])
    print(f"accuracy difference (ours - sklearn): {100 * (acc_ours - acc_sk):+.2f} points")

    if args.skip_sweep:
        return
    depths = list(range(18, 40))
    study = dict(n_estimators=20, criterion="gini", class_weight="balanced", n_jobs=2,
                 random_state=0)

    def sweep_ours():
        m = fmnist_c.RandomForestClassifier(max_depth=max(depths), **study).fit(Xtr, s.y_train)
        return m.staged_depth_scores(Xv, s.y_val, depths)

    def sweep_sk():
        return np.array([SkForest(max_depth=d, **study).fit(Xtr, s.y_train).score(Xv, s.y_val)
                         for d in depths])

    t_sw, c_sw, val_ours = cpu_timed(sweep_ours)
    t_sw_sk, c_sw_sk, val_sk = cpu_timed(sweep_sk)
    print()
    print_table([
        ["fmnist_c: 1 fit to depth 39, cut", f"{t_sw:.2f}", f"{c_sw:.2f}",
         depths[int(np.argmax(val_ours))], f"{val_ours.max():.4f}", "1.0", "1.0"],
        ["scikit-learn: 22 fits", f"{t_sw_sk:.2f}", f"{c_sw_sk:.2f}",
         depths[int(np.argmax(val_sk))], f"{val_sk.max():.4f}", f"{t_sw_sk / t_sw:.1f}",
         f"{c_sw_sk / c_sw:.1f}"],
    ], ["depth sweep 18..39 (20 trees, balanced)", "seconds", "CPU s", "best depth (val)",
        "val acc", "time / ours", "CPU / ours"])


if __name__ == "__main__":
    main()
