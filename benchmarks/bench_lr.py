"""Logistic regression, side by side in one run on the study split:
ours (SGD in C) vs scikit-learn in the study's configuration (sag, raw pixels) and
vs scikit-learn lbfgs on scaled pixels. Prints accuracies and fit-time ratios.

    python benchmarks/bench_lr.py [--skip-sag]
"""
import argparse
import warnings

from _common import print_table, study_data, timed
import numpy as np  # after _common, which sets the BLAS thread count

import fmnist_c


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-sag", action="store_true", help="skip the ~3.5 minute sag fit")
    ap.add_argument("--repeat", type=int, default=5, help="fits of ours (median time)")
    args = ap.parse_args()
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    import sklearn

    s, source = study_data(scale=True)
    print(f"data: {source}; train {len(s.y_train)}, test {len(s.y_test)}; "
          f"fmnist_c {fmnist_c.__version__} ({fmnist_c._core.gemm_kernel()}), "
          f"scikit-learn {sklearn.__version__}")
    rows = []

    def ours(**kw):
        return fmnist_c.SGDLogisticRegression(random_state=0, **kw).fit(s.X_train, s.y_train)

    t_ours, m = timed(ours, args.repeat)
    acc_ours = m.score(s.X_test, s.y_test)
    rows.append(["fmnist_c SGD (defaults, X/255)", f"{acc_ours:.4f}", f"{t_ours:.2f}", "1.0"])
    t_bal, mb = timed(lambda: ours(class_weight="balanced"), args.repeat)
    rows.append(["fmnist_c SGD (balanced, X/255)", f"{mb.score(s.X_test, s.y_test):.4f}",
                 f"{t_bal:.2f}", f"{t_bal / t_ours:.2f}"])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t_lb, lb = timed(lambda: LogisticRegression(solver="lbfgs").fit(s.X_train, s.y_train))
        rows.append(["sklearn lbfgs (X/255, max_iter 100)", f"{lb.score(s.X_test, s.y_test):.4f}",
                     f"{t_lb:.2f}", f"{t_lb / t_ours:.1f}"])
        t_lc, lc = timed(lambda: LogisticRegression(solver="lbfgs", max_iter=1000).fit(
            s.X_train, s.y_train))
        rows.append([f"sklearn lbfgs (X/255, converged: {lc.n_iter_[0]} iter)",
                     f"{lc.score(s.X_test, s.y_test):.4f}", f"{t_lc:.2f}", f"{t_lc / t_ours:.1f}"])
        if not args.skip_sag:
            raw_tr, raw_te = s.X_train * 255, s.X_test * 255
            t_sag, sag = timed(lambda: LogisticRegression(
                C=np.inf, class_weight="balanced", solver="sag", max_iter=200,
                random_state=0).fit(raw_tr, s.y_train))
            rows.append(["sklearn sag, study config (raw)", f"{sag.score(raw_te, s.y_test):.4f}",
                         f"{t_sag:.2f}", f"{t_sag / t_ours:.1f}"])
    print_table(rows, ["model", "test acc", "fit s", "time / ours"])


if __name__ == "__main__":
    main()
