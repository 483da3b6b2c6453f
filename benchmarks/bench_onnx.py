"""Deployed latency, side by side in one run: each model's own predict against onnxruntime
running its to_onnx export (session.run: label and probabilities), one image alone and a
batch of 1,000, in µs per image; 2 threads each (ours through OMP_NUM_THREADS=2,
set by _common, onnxruntime's intra-op pool set to 2).
Calls alternate between the two, so a change in the machine's load hits both.

The models have the study's shapes (the structure sets the latency, not the accuracy) but
are fitted on less to keep the run short, and the script says so: each row names its
fit. kNN joins when it exports (a row says when a model has no export).

    flock /work/bench.lock python benchmarks/bench_onnx.py [--repeat 200]
"""
import argparse
import os
import statistics
import time

import numpy as np
from _common import print_table, study_data

import fmnist_c
from fmnist_c import (SVC, CNNClassifier, DecisionTreeClassifier, GradientBoostingClassifier,
                      KNeighborsClassifier, MLPClassifier, RandomForestClassifier,
                      SGDLogisticRegression)
from fmnist_c.features import HOGSVC
from fmnist_c.study import HOG_SVM_PIXELS

THREADS = 2
# name -> (model, training rows, what differs from the study's fit)
MODELS = {
    "logistic regression": (lambda: SGDLogisticRegression(epochs=2, random_state=0), None,
                            "2 epochs"),
    "decision tree": (lambda: DecisionTreeClassifier(random_state=0), None, "full depth"),
    "random forest, 100 trees": (lambda: RandomForestClassifier(n_estimators=100, random_state=0),
                                 None, ""),
    "boosted trees, 100 rounds": (
        lambda: GradientBoostingClassifier(n_estimators=100, num_leaves=31, learning_rate=0.2,
                                           random_state=0), 10000, "the study's: up to 400 rounds"),
    "SVC (C=10, probabilities)": (lambda: SVC(C=10, probability=True, random_state=0), 5000,
                                  "support vectors of a 5,000-row fit"),
    "HOG + pixels + SVC (hog-svm's, probabilities)": (
        lambda: HOGSVC(hogs=(HOG_SVM_PIXELS,), gamma_factors=(2.0,), probability=True,
                       random_state=0), 3000, "support vectors of a 3,000-row fit"),
    "kNN (k=5)": (lambda: KNeighborsClassifier(n_neighbors=5), None, ""),
    "MLP (study)": (lambda: MLPClassifier(epochs=1, random_state=0), None, "1 epoch"),
    "CNN (study)": (lambda: CNNClassifier(epochs=1, random_state=0), 10000, "1 epoch"),
    "CNN (improved)": (lambda: CNNClassifier(architecture="improved", epochs=1, random_state=0),
                       10000, "1 epoch"),
}


def side_by_side(ours, theirs, X, repeat):
    """(our median seconds, theirs) over `repeat` alternating calls on X."""
    ours(X), theirs(X)  # warm up: first-call allocations, thread pools
    a, b = [], []
    for _ in range(repeat):
        for fn, times in ((ours, a), (theirs, b)):
            t0 = time.perf_counter()
            fn(X)
            times.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200, help="calls on one image, each side")
    ap.add_argument("--batch-repeat", type=int, default=5, help="calls on 1,000 images")
    ap.add_argument("--only", nargs="*", help="model names (substrings) to run")
    args = ap.parse_args()
    import onnxruntime as ort
    s, source = study_data()
    X, y, X_test = s.X_train, s.y_train, s.X_test[:1000]
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    print(f"data: {source}; {THREADS} threads; onnxruntime {ort.__version__}; "
          f"fmnist_c {fmnist_c.__version__}; load {os.getloadavg()}; {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    rows = []
    for name, (make, n, note) in MODELS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        model = make()
        t0 = time.perf_counter()
        model.fit(X[:n], y[:n])
        fit = time.perf_counter() - t0
        try:
            proto = model.to_onnx()
        except TypeError as e:
            rows.append([name, "-", "-", "-", "-", "-", "-", f"no export ({e})".split(";")[0]])
            continue
        session = ort.InferenceSession(proto.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        run = lambda Z: session.run(None, {"input": Z})  # noqa: E731
        labels, proba = run(X_test)
        same = np.array_equal(labels, model.predict(X_test))
        diff = float(np.abs(proba - model.predict_proba(X_test)).max())
        one = side_by_side(model.predict, run, X_test[:1], args.repeat)
        batch = side_by_side(model.predict, run, X_test, args.batch_repeat)
        rows.append([name, f"{one[0] * 1e6:.0f}", f"{one[1] * 1e6:.0f}", f"{one[0] / one[1]:.2f}",
                     f"{batch[0] / len(X_test) * 1e6:.1f}", f"{batch[1] / len(X_test) * 1e6:.1f}",
                     f"{batch[0] / batch[1]:.2f}",
                     f"{'same' if same else 'DIFFERENT'} classes, max |dp| {diff:.1e}; "
                     f"fit on {n or len(X)} rows in {fit:.0f} s{', ' + note if note else ''}"])
        print(f"  {name} done, load {os.getloadavg()[0]:.1f}", flush=True)
    print_table(rows, ["model", "ours 1 (µs)", "ort 1 (µs)", "ours/ort",
                       "ours 1k (µs/img)", "ort 1k (µs/img)", "ours/ort", "check on 1,000 test images"])
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
