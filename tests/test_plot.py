"""fmnist_c.plot on the Agg backend: what is drawn, not how it looks."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fmnist_c import plot  # noqa: E402
from fmnist_c.data import CLASS_NAMES  # noqa: E402

CM3 = np.array([[50, 3, 0],
                [7, 40, 1],
                [0, 12, 88]])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def images(n_per_class=5, classes=(0, 3, 6), shape=(28, 28)):
    rng = np.random.default_rng(0)
    y = np.repeat(np.array(classes), n_per_class)
    X = rng.integers(0, 256, (len(y), *shape), dtype=np.uint8)
    return X, y


# ----------------------------------------------------------------------------- confusion matrix

def test_confusion_matrix_counts(tmp_path):
    ax = plot.plot_confusion_matrix(CM3, class_names=["a", "b", "c"], title="counts")
    assert isinstance(ax, matplotlib.axes.Axes)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9
    # cell (i, j) sits at x = j, y = i
    by_cell = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
    assert by_cell == {(i, j): str(CM3[i, j]) for i in range(3) for j in range(3)}
    np.testing.assert_array_equal(ax.images[0].get_array(), CM3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_xticklabels()[0].get_rotation() == 45
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("Predicted", "Actual", "counts")
    assert len(ax.figure.axes) == 2  # the matrix and its colorbar
    ax.figure.savefig(tmp_path / "cm.png")
    assert is_png(tmp_path / "cm.png")


def test_confusion_matrix_text_contrast():
    ax = plot.plot_confusion_matrix(CM3)
    colour = {t.get_text(): matplotlib.colors.to_rgb(t.get_color()) for t in ax.texts}
    # dark cell (88) and light cell (0) get different text colours, darker text on light
    assert colour["88"] != colour["0"]
    assert sum(colour["0"]) < sum(colour["88"])


def test_confusion_matrix_normalized_rows_sum_to_one():
    ax = plot.plot_confusion_matrix(CM3, normalize="true")
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown.sum(axis=1), 1.0)
    np.testing.assert_allclose(shown, CM3 / CM3.sum(axis=1, keepdims=True))
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9 and all(t.endswith("%") for t in texts)
    assert f"{50 / 53:.1%}" in texts and f"{12 / 100:.1%}" in texts


def test_confusion_matrix_ten_classes_default_names_and_given_axes(tmp_path):
    rng = np.random.default_rng(1)
    cm = rng.integers(0, 1500, (10, 10))
    fig, ax = plt.subplots()
    out = plot.plot_confusion_matrix(cm, ax=ax)
    assert out is ax
    assert len(ax.texts) == 100
    assert sorted(int(t.get_text()) for t in ax.texts) == sorted(cm.ravel().tolist())
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASS_NAMES)
    fig.savefig(tmp_path / "cm10.png")
    assert is_png(tmp_path / "cm10.png")


def test_confusion_matrix_bad_input():
    with pytest.raises(ValueError):
        plot.plot_confusion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError):
        plot.plot_confusion_matrix([[1, -2], [0, 1]])
    with pytest.raises(ValueError, match="normalize"):
        plot.plot_confusion_matrix(CM3, normalize="rows")
    with pytest.raises(ValueError, match="class names"):
        plot.plot_confusion_matrix(CM3, class_names=["a", "b"])


# ----------------------------------------------------------------------------- history

HISTORY = {"loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [1.1, 0.7, 0.6, 0.65],
           "accuracy": [0.6, 0.75, 0.8, 0.85], "val_accuracy": [0.58, 0.7, 0.74, 0.73]}


def test_history_panels_and_curves(tmp_path):
    fig = plot.plot_history(HISTORY)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert [a.get_title() for a in fig.axes] == ["loss", "accuracy"]
    for a, metric in zip(fig.axes, ("loss", "accuracy")):
        lines = a.get_lines()
        assert len(lines) == 2
        np.testing.assert_array_equal(lines[0].get_xdata(), [1, 2, 3, 4])
        np.testing.assert_allclose(lines[0].get_ydata(), HISTORY[metric])
        np.testing.assert_allclose(lines[1].get_ydata(), HISTORY["val_" + metric])
        assert a.get_xlabel() == "Epoch"
        assert [t.get_text() for t in a.get_legend().get_texts()] == ["train", "validation"]
    fig.savefig(tmp_path / "history.png")
    assert is_png(tmp_path / "history.png")


def test_history_from_estimator_and_given_axes():
    class Fitted:
        history_ = {"loss": [0.9, 0.5, 0.4]}

    fig = plot.plot_history(Fitted())  # accuracy is absent: one panel
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1
    fig, axes = plt.subplots(1, 2)
    assert plot.plot_history(HISTORY, ax=axes) is fig
    assert all(len(a.get_lines()) == 2 for a in axes)


def test_history_of_an_ensemble_one_curve_per_member():
    # CNNEnsembleClassifier.history_ is its members' histories; reproduce plots it
    class Ensemble:
        history_ = [HISTORY, {"loss": [0.9, 0.5], "val_loss": [1.0, 0.8]}]

    fig = plot.plot_history(Ensemble())
    loss, accuracy = fig.axes
    assert [t.get_text() for t in loss.get_legend().get_texts()] == [
        "member 1 train", "member 1 validation", "member 2 train", "member 2 validation"]
    np.testing.assert_allclose(loss.get_lines()[3].get_ydata(), [1.0, 0.8])
    assert loss.get_lines()[0].get_color() != loss.get_lines()[2].get_color()
    assert len(accuracy.get_lines()) == 2  # member 2 has no accuracy


def test_history_bad_input():
    with pytest.raises(ValueError, match="none of the metrics"):
        plot.plot_history(HISTORY, metrics=("f1",))
    with pytest.raises(TypeError):
        plot.plot_history([0.1, 0.2])
    with pytest.raises(TypeError):
        plot.plot_history([])
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="Axes"):
        plot.plot_history(HISTORY, ax=ax)


# ----------------------------------------------------------------------------- galleries

@pytest.mark.parametrize("shape", [(28, 28), (784,), (28, 28, 1), (1, 28, 28)])
def test_samples_grid(shape, tmp_path):
    X, y = images(shape=shape)
    fig = plot.plot_samples(X, y, n_per_class=4)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert len(fig.axes) == 3 * 4
    assert sum(len(a.images) for a in fig.axes) == 12
    assert fig.axes[0].images[0].get_array().shape == (28, 28)
    assert [fig.axes[4 * r].get_ylabel() for r in range(3)] == ["T-shirt/top", "Dress", "Shirt"]
    fig.savefig(tmp_path / "samples.png")
    assert is_png(tmp_path / "samples.png")


def test_samples_small_class_and_seed():
    X, y = images(n_per_class=3)
    fig = plot.plot_samples(X, y, class_names=["x", "y", "z"], n_per_class=5)
    assert sum(len(a.images) for a in fig.axes) == 9  # 3 per class, 2 blank cells each
    first = [a.images[0].get_array() for a in plot.plot_samples(X, y, random_state=3).axes if a.images]
    again = [a.images[0].get_array() for a in plot.plot_samples(X, y, random_state=3).axes if a.images]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="different lengths"):
        plot.plot_samples(X[:-1], y)
    with pytest.raises(ValueError, match="square"):
        plot.plot_samples(X.reshape(len(X), -1)[:, :700], y)


def test_errors_gallery(tmp_path):
    X, y_true = images(n_per_class=10)
    y_pred = y_true.copy()
    y_pred[[1, 4, 12, 25, 27]] = [3, 6, 0, 0, 3]  # 2 T-shirt errors, 1 Dress, 2 Shirt
    fig = plot.plot_errors(X, y_true, y_pred, n=4)
    titles = [a.get_title() for a in fig.axes if a.images]
    assert titles == ["T-shirt/top -> Dress", "T-shirt/top -> Shirt", "Dress -> T-shirt/top",
                      "Shirt -> T-shirt/top"]
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), X[1])
    fig.savefig(tmp_path / "errors.png")
    assert is_png(tmp_path / "errors.png")

    shirts = plot.plot_errors(X, y_true, y_pred, true_class="Shirt")
    assert [a.get_title() for a in shirts.axes if a.images] == ["Shirt -> T-shirt/top", "Shirt -> Dress"]
    assert len([a for a in plot.plot_errors(X, y_true, y_pred, true_class=3).axes if a.images]) == 1


def test_errors_gallery_without_errors_and_bad_input():
    X, y = images()
    fig = plot.plot_errors(X, y, y)
    assert not fig.axes and fig.texts[0].get_text() == "No misclassified images"
    with pytest.raises(ValueError, match="true_class"):
        plot.plot_errors(X, y, y, true_class="Sandal")
    with pytest.raises(ValueError, match="different lengths"):
        plot.plot_errors(X, y, y[:-1])
    with pytest.raises(ValueError, match="shape"):
        plot.plot_errors(X[:, :, :, None, None], y, y)
