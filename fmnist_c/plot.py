"""Figures for the study: confusion matrices, training curves, sample and error galleries.

matplotlib is imported inside each function, so `import fmnist_c` stays fast; nothing
here calls plt.show(): every function returns its Axes or Figure.
"""
import math

import numpy as np

from ._base import drop_channel
from .metrics import _check_cm, _check_labels, _class_names, _cm_class_names, _normalize_cm

__all__ = ["plot_confusion_matrix", "plot_history", "plot_samples", "plot_errors"]


def _as_images(X, n_expected=None):
    """(n, h, w) images from (n, h, w), (n, h*w) with a square h*w, (n, h, w, 1) or
    (n, 1, h, w)."""
    X = drop_channel(np.asarray(X))
    if X.ndim == 2:
        side = math.isqrt(X.shape[1])
        if side * side != X.shape[1]:
            raise ValueError(f"rows of X have {X.shape[1]} pixels, not a square image")
        X = X.reshape(len(X), side, side)
    if X.ndim != 3:
        raise ValueError(f"X must be (n, 28, 28), (n, 784), (n, 28, 28, 1) or (n, 1, 28, 28); "
                         f"got shape {X.shape}")
    if n_expected is not None and len(X) != n_expected:
        raise ValueError(f"X and the labels have different lengths: {len(X)} and {n_expected}")
    return X


def _hide_ticks(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def plot_confusion_matrix(cm, class_names=None, normalize=None, ax=None, title=None,
                          cmap="Blues"):
    """Draw a confusion matrix (rows = actual, columns = predicted) with every cell
    annotated: counts as integers, or percentages when normalize is "true" (rows),
    "pred" (columns) or "all". Returns the Axes; the image is ax.images[0].
    """
    import matplotlib.pyplot as plt

    cm = _check_cm(cm)
    k = cm.shape[0]
    names = _cm_class_names(k, class_names)
    values = _normalize_cm(cm, normalize)
    if ax is None:
        size = max(4.0, 0.6 * k + 2.5)
        _, ax = plt.subplots(figsize=(size + 1, size))
    limits = {"vmin": 0.0, "vmax": 1.0} if normalize is not None else {}
    image = ax.imshow(values, interpolation="nearest", cmap=cmap, **limits)
    ax.figure.colorbar(image, ax=ax)

    # text in the colormap's dark end on light cells and its light end on dark ones
    colormap = image.get_cmap()
    low, high = image.norm.vmin, image.norm.vmax
    threshold = (low + high) / 2
    fontsize = 10 if k <= 8 else 8
    for i in range(k):
        for j in range(k):
            v = values[i, j]
            if normalize is not None:
                text = f"{v:.1%}"
            elif float(v).is_integer():
                text = f"{int(v)}"
            else:
                text = f"{v:.3g}"
            colour = colormap(0.0) if v > threshold else colormap(1.0)
            ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=fontsize)

    ax.set_xticks(range(k), labels=names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    if title is not None:
        ax.set_title(title)
    return ax


def plot_history(history, metrics=("loss", "accuracy"), ax=None):
    """Training curves, one panel per metric: the training series `m` and the validation
    series `val_m`, epochs numbered from 1.

    history: a dict of per-epoch lists, a list of such dicts (an ensemble's members, one
    curve each), or an estimator with `history_` (or a Keras History with `history`).
    Metrics absent from history (neither `m` nor `val_m`) are left out; if none is
    present, ValueError. ax: one Axes per plotted metric (a single Axes for one metric),
    or None for a new figure. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    if not isinstance(history, (dict, list, tuple)):
        history = getattr(history, "history_", getattr(history, "history", None))
    runs = [history] if isinstance(history, dict) else history
    if (not isinstance(runs, (list, tuple)) or not runs
            or not all(isinstance(h, dict) for h in runs)):
        raise TypeError("history must be a dict of per-epoch lists, a non-empty list of "
                        "them, or have a history_ of that kind")
    if isinstance(metrics, str):
        metrics = (metrics,)
    shown = [m for m in metrics if any(m in h or f"val_{m}" in h for h in runs)]
    if not shown:
        raise ValueError(f"none of the metrics {tuple(metrics)} is in history; "
                         f"it has {sorted(set().union(*runs))}")
    if ax is None:
        fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.8),
                                 squeeze=False, layout="constrained")
        axes = list(axes[0])
    else:
        axes = list(np.atleast_1d(np.asarray(ax, dtype=object)).ravel())
        if len(axes) != len(shown):
            raise ValueError(f"{len(axes)} Axes given for {len(shown)} metrics {shown}")
        fig = axes[0].figure
    for a, m in zip(axes, shown):
        for i, h in enumerate(runs):
            run = f"member {i + 1} " if len(runs) > 1 else ""
            for key, label, style in ((m, "train", "-"), (f"val_{m}", "validation", "--")):
                if key in h:
                    series = np.asarray(h[key], dtype=np.float64)
                    a.plot(np.arange(1, len(series) + 1), series, style, marker=".",
                           label=run + label, color=f"C{i}" if len(runs) > 1 else None)
        a.set_xlabel("Epoch")
        a.set_ylabel(m)
        a.set_title(m)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(True, alpha=0.3)
        a.legend()
    return fig


def plot_samples(X, y, class_names=None, n_per_class=8, random_state=0, fig=None,
                 cmap="gray"):
    """A grid of images: one row per class (sorted labels), n_per_class random images
    of it (fewer if the class has fewer). Returns the Figure."""
    import matplotlib.pyplot as plt

    (y,) = _check_labels(y=y)
    X = _as_images(X, len(y))
    n_per_class = int(n_per_class)
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    classes = np.unique(y)
    names = _class_names(classes, class_names)
    rng = np.random.default_rng(random_state)
    if fig is None:
        fig = plt.figure(figsize=(1.1 * n_per_class + 1.5, 1.1 * len(classes)), layout="constrained")
    axes = fig.subplots(len(classes), n_per_class, squeeze=False)
    for row, (label, name) in enumerate(zip(classes, names)):
        members = np.flatnonzero(y == label)
        chosen = rng.choice(members, size=min(n_per_class, len(members)), replace=False)
        for col, a in enumerate(axes[row]):
            _hide_ticks(a)
            if col < len(chosen):
                a.imshow(X[chosen[col]], cmap=cmap)
            else:
                a.axis("off")
        axes[row][0].set_ylabel(name, rotation=0, ha="right", va="center")
    return fig


def plot_errors(X, y_true, y_pred, true_class=None, n=16, class_names=None, cmap="gray"):
    """A gallery of the first n misclassified images, each titled "true -> predicted".

    true_class: only errors on this class (a label, or one of its class names).
    Returns the Figure (with a note instead of images when there are no such errors).
    """
    import matplotlib.pyplot as plt

    y_true, y_pred = _check_labels(y_true=y_true, y_pred=y_pred)
    X = _as_images(X, len(y_true))
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    labels = np.unique(np.concatenate([y_true, y_pred]))
    names = dict(zip(labels.tolist(), _class_names(labels, class_names)))
    wrong = y_true != y_pred
    if true_class is not None:
        if true_class not in names and true_class in names.values():
            true_class = next(label for label, name in names.items() if name == true_class)
        if true_class not in names:
            raise ValueError(f"true_class {true_class!r} is neither a label nor a class name "
                             f"in y_true or y_pred")
        wrong &= y_true == true_class
    shown = np.flatnonzero(wrong)[:n]

    ncols = min(len(shown), 8) or 1
    nrows = math.ceil(len(shown) / ncols) or 1
    fig = plt.figure(figsize=(1.6 * ncols, 1.8 * nrows), layout="constrained")
    if len(shown) == 0:
        fig.text(0.5, 0.5, "No misclassified images", ha="center", va="center")
        return fig
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for a, i in zip(axes, shown):
        a.imshow(X[i], cmap=cmap)
        a.set_title(f"{names[y_true[i].item()]} -> {names[y_pred[i].item()]}", fontsize=7)
        _hide_ticks(a)
    for a in axes[len(shown):]:
        a.axis("off")
    return fig
