"""Issue 18's proxy runs: one network fitted on the first N of the official split's 54,000
training images, scored on its 6,000 validation images (never the test set), plain and
with test-time shifts of one pixel; its validation probabilities are saved, so
ensembles of saved runs are scored without refitting (--ensemble).

    python benchmarks/proxy_cnn_best.py imp_s0 --seed 0                 # improved, 12 epochs
    python benchmarks/proxy_cnn_best.py ls_s0 --seed 0 --set label_smoothing=0.1
    python benchmarks/proxy_cnn_best.py res_s0 --seed 0 --set architecture=resnet --set epochs=8
    python benchmarks/proxy_cnn_best.py --ensemble imp_s0 imp_s1 imp_s2

One thread per run (n_jobs=1; --set n_jobs=2 for both cores), CPU and wall seconds
reported, and the validation accuracy after every epoch (fit's validation_data, which only
watches: restore_best_weights is off, the last epoch is the model).
"""
import argparse
import ast
import json
import os
import time

import numpy as np

from fmnist_c import CNNClassifier
from fmnist_c.study import load_split

OUT = "/tmp/proxy_cnn_best"


def validation_split():
    return load_split("official", log=lambda *a: None)[0]


def fit_one(args):
    split = validation_split()
    X = split.X_train[:args.n].astype(np.float32) / 255
    Xv = split.X_val.astype(np.float32) / 255
    # the last epoch is the model (as in cnn-best): validation_data only watches, since
    # choosing the epoch on the images it is then scored on would flatter it
    settings = {"epochs": 12, "random_state": args.seed, "n_jobs": 1, "restore_best_weights": False}
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            settings[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[key] = value
    clf = CNNClassifier.preset("improved", **settings)
    load, c0, w0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
    clf.fit(X, split.y_train[:args.n], validation_data=(Xv, split.y_val))
    fit_cpu, fit_wall = time.process_time() - c0, time.perf_counter() - w0
    plain = clf.predict_proba(Xv)
    shifted = clf.set_params(tta_shift=1).predict_proba(Xv)
    os.makedirs(OUT, exist_ok=True)
    np.save(os.path.join(OUT, f"{args.name}.npy"), np.stack([plain, shifted]))
    accuracy = [float(np.mean(clf.classes_[p.argmax(1)] == split.y_val)) for p in (plain, shifted)]
    print(json.dumps({"name": args.name, "settings": settings, "n": args.n, "val": accuracy[0],
                      "val_shifts": accuracy[1], "fit_cpu_s": round(fit_cpu, 1),
                      "fit_wall_s": round(fit_wall, 1),
                      "val_by_epoch": [round(a, 4) for a in clf.history_["val_accuracy"]],
                      "load": [round(load, 1), round(os.getloadavg()[0], 1)]}))


def score_ensembles(names):
    y = validation_split().y_val
    runs = [np.load(os.path.join(OUT, f"{name}.npy")) for name in names]
    for k in range(1, len(runs) + 1):
        for t, how in enumerate(("plain", "shifts")):
            p = sum(r[t] for r in runs[:k]) / k
            print(f"{'+'.join(names[:k])} {how}: {np.mean(p.argmax(1) == y):.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=10800, help="training images (default 10,800)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a CNNClassifier setting over the improved preset's")
    parser.add_argument("--ensemble", nargs="+", metavar="NAME", help="score saved runs together")
    args = parser.parse_args()
    if args.ensemble:
        score_ensembles(args.ensemble)
    elif args.name:
        fit_one(args)
    else:
        parser.error("give a run name or --ensemble")


if __name__ == "__main__":
    main()
