"""The original study's pipeline: the study's split, each model over seeds, and a record of
every figure next to the study's own (results.json, results.md, confusion-matrix PNGs)."""
import json
import os
import platform
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import metrics
from .data import find_data, load_fashion_mnist, load_sample, study_split

_STUDY_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "study_results.json")


def study_results():
    """The original study's published figures, printed accuracies and confusion matrices."""
    with open(_STUDY_FILE) as f:
        return json.load(f)


@dataclass(frozen=True)
class ModelSpec:
    """One row of the study: how to build our model and which study figure it answers."""
    title: str
    study_key: str
    make: Callable  # (seed, verbose) -> unfitted estimator
    scale: bool     # feed pixels / 255 (True) or raw 0-255 (False)
    note: str


def _lr(seed, verbose):
    from .linear import SGDLogisticRegression
    return SGDLogisticRegression(class_weight="balanced", random_state=seed, verbose=verbose)


MODELS = {
    "lr": ModelSpec(
        "Logistic regression (SGD)", "logistic_regression", _lr, scale=True,
        note="multinomial, class_weight='balanced', no penalty as in the study; trained by "
             "minibatch SGD (Nesterov momentum, cosine schedule, 15 epochs) on pixels/255 "
             "instead of sag on raw pixels, which had not converged in the study's 200 "
             "iterations"),
}


def load_data(sample=False, log=print):
    """(X, y, source): the full 70,000 images when found (and not `sample`), else the sample."""
    if not sample and find_data() is not None:
        X, y = load_fashion_mnist("all")
        return X, y, "full"
    if not sample:
        log("Full Fashion-MNIST not found: running on the embedded sample (3,000 images). "
            "Install it with `sudo apt-get install dataset-fashion-mnist` or see "
            "fmnist_c.load_fashion_mnist(download=True).")
    X, y = load_sample()
    return X, y, "sample"


def run_model(key, split, seed, verbose=0):
    """Fit one model on the study split with one seed; returns its figures and predictions."""
    spec = MODELS[key]
    scale = 255.0 if spec.scale else 1.0
    Xtr, Xv, Xte = (np.asarray(a, np.float32) / scale for a in (split.X_train, split.X_val, split.X_test))
    model = spec.make(seed, verbose)
    t0 = time.perf_counter()
    model.fit(Xtr, split.y_train, validation_data=(Xv, split.y_val))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = model.predict(Xte)
    predict_s = time.perf_counter() - t0
    return model, pred, {
        "seed": seed,
        "test_accuracy": metrics.accuracy_score(split.y_test, pred),
        "val_accuracy": model.score(Xv, split.y_val),
        "train_accuracy": model.score(Xtr, split.y_train),
        "fit_seconds": fit_s,
        "predict_seconds_per_image": predict_s / len(Xte),
    }


def reproduce(models=("lr",), seeds=1, sample=False, out="results", verbose=1, log=print):
    """Run the study's models over `seeds` seeds; write results.json, results.md and a
    confusion matrix PNG per model into `out`; return the results dict."""
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive int, got {seeds!r}")
    X, y, source = load_data(sample, log)
    split = study_split(X, y)
    study = study_results()
    os.makedirs(out, exist_ok=True)
    import numpy
    from . import __version__
    results = {
        "protocol": f"study split of {len(y):,} images (train then test): "
                    f"train_test_split(0.2, seed 0), then (0.1, seed 0) on the rest: "
                    f"{len(split.y_train):,} train / {len(split.y_val):,} validation / "
                    f"{len(split.y_test):,} test",
        "data": source,
        "n_train": len(split.y_train), "n_val": len(split.y_val), "n_test": len(split.y_test),
        "versions": {"fmnist_c": __version__, "numpy": numpy.__version__,
                     "python": platform.python_version()},
        "models": {},
    }
    for key in models:
        spec = MODELS[key]
        runs, last = [], None
        for seed in range(seeds):
            log(f"[{key}] {spec.title}: seed {seed} ({seed + 1}/{seeds})")
            model, pred, figures = run_model(key, split, seed, verbose)
            runs.append(figures)
            last = pred
        acc = np.array([r["test_accuracy"] for r in runs])
        _, lo, hi = metrics.accuracy_ci(split.y_test, last)
        cm = metrics.confusion_matrix(split.y_test, last, labels=np.arange(10))
        entry = {
            "title": spec.title, "note": spec.note, "params": _jsonable(model.get_params()),
            "test_accuracy_mean": float(acc.mean()),
            "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
            "test_accuracy_ci95_last_seed": [lo, hi],
            "fit_seconds_mean": float(np.mean([r["fit_seconds"] for r in runs])),
            "study_test_accuracy": study[spec.study_key]["published_test_accuracy"],
            "confusion_matrix_last_seed": cm.tolist(),
            "top_confusions": metrics.describe_confusions(cm, 5).splitlines(),
            "runs": runs,
        }
        results["models"][key] = entry
        _plot_cm(cm, f"{spec.title}: test accuracy {acc[-1]:.4f} ({source} data)",
                 os.path.join(out, f"confusion_{key}.png"))
        log(f"[{key}] test accuracy {entry['test_accuracy_mean']:.4f} "
            f"(study: {entry['study_test_accuracy']:.4f}), fit {entry['fit_seconds_mean']:.1f} s")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    table = results_table(results)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(table)
    log("\n" + table)
    return results


def results_table(results):
    """Markdown: model, ours (mean ± std over seeds), 95% CI, the study's figure, fit time."""
    lines = [f"Data: {results['data']}; {results['protocol']}.",
             "", "| model | ours: test accuracy | 95% CI | study | fit time |",
             "|---|---|---|---|---|"]
    for entry in results["models"].values():
        n = len(entry["runs"])
        ours = f"{entry['test_accuracy_mean']:.4f}"
        if n > 1:
            ours += f" ± {entry['test_accuracy_std']:.4f} ({n} seeds)"
        lo, hi = entry["test_accuracy_ci95_last_seed"]
        lines.append(f"| {entry['title']} | {ours} | {lo:.4f}–{hi:.4f} | "
                     f"{entry['study_test_accuracy']:.4f} | {entry['fit_seconds_mean']:.1f} s |")
    return "\n".join(lines) + "\n"


def _plot_cm(cm, title, path):
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from .plot import plot_confusion_matrix
    fig, ax = plt.subplots(figsize=(9, 8))
    plot_confusion_matrix(cm, ax=ax, title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _jsonable(params):
    return {k: (v if isinstance(v, (int, float, str, bool, type(None))) else repr(v))
            for k, v in params.items()}
