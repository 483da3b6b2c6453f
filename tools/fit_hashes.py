"""One MD5 per fit, to show a change leaves every fit byte-identical.

Fits logistic regression, a decision tree, a random forest, the study's two ANNs (A, B),
the study CNN and the improved CNN, each with 1 and 2 threads, on a few thousand images
of the full Fashion-MNIST (pixels / 255), with fewer epochs than the study so all of it
runs in about two minutes on two cores. Each line hashes the fitted arrays (coefficients,
tree node arrays, network parameters and optimizer state) and predict_proba on fixed
held-out images. Run it before and after a change and diff the outputs:

    PYTHONPATH=$PWD python tools/fit_hashes.py > after.txt && diff before.txt after.txt
"""
import argparse
import hashlib

import numpy as np

import fmnist_c
from fmnist_c import nn

N_TRAIN, N_VAL, N_TEST = 3000, 500, 500


def digest(arrays):
    """MD5 over the arrays' dtypes, shapes and bytes, in order."""
    h = hashlib.md5()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def tree_arrays(tree):
    return [getattr(tree, name) for name in (
        "children_left", "children_right", "feature", "threshold", "value", "impurity",
        "n_node_samples", "weighted_n_node_samples")]


def fitted_arrays(name, est):
    if name == "lr":
        return [est.coef_, est.intercept_]
    if name == "tree":
        return tree_arrays(est.tree_)
    if name == "forest":
        return [a for e in est.estimators_ for a in tree_arrays(e.tree_)]
    return [est.model_.params_, est.model_.optimizer_state_]


def makers(jobs):
    """(name, estimator, whether fit takes validation data) for each fit."""
    tree = fmnist_c.DecisionTreeClassifier(max_depth=20, random_state=0)
    tree.n_jobs = jobs  # the tree's binning and growing read n_jobs when it is set
    return [
        ("lr", fmnist_c.SGDLogisticRegression(class_weight="balanced", epochs=3, random_state=0,
                                               n_jobs=jobs), False),
        ("tree", tree, False),
        ("forest", fmnist_c.RandomForestClassifier(20, class_weight="balanced", max_depth=29,
                                                    random_state=0, n_jobs=jobs), False),
        ("mlp-a", nn.MLPClassifier.preset("study-a", epochs=3, random_state=0, n_jobs=jobs), True),
        ("mlp-b", nn.MLPClassifier.preset("study-b", epochs=2, random_state=0, n_jobs=jobs), True),
        ("cnn", nn.CNNClassifier.preset("study", epochs=2, random_state=0, n_jobs=jobs), True),
        ("cnn-improved", nn.CNNClassifier.preset("improved", epochs=1, random_state=0,
                                                 n_jobs=jobs), True),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="fit only these names (lr, tree, forest, mlp-a, "
                                              "mlp-b, cnn, cnn-improved)")
    args = ap.parse_args()
    X, y = fmnist_c.load_fashion_mnist("train")
    X = X.astype(np.float32) / 255
    p = np.random.RandomState(0).permutation(len(X))
    tr, va, te = np.split(p[:N_TRAIN + N_VAL + N_TEST], [N_TRAIN, N_TRAIN + N_VAL])
    for jobs in (1, 2):
        for name, est, validates in makers(jobs):
            if args.only and name not in args.only:
                continue
            n = 1000 if name == "cnn-improved" else N_TRAIN
            kw = {"validation_data": (X[va], y[va])} if validates else {}
            est.fit(X[tr[:n]], y[tr[:n]], **kw)
            proba = est.predict_proba(X[te])
            print(f"{name:13s} n_jobs={jobs} {digest(fitted_arrays(name, est) + [proba])}",
                  flush=True)


if __name__ == "__main__":
    main()
