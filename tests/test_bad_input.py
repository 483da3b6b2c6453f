"""The bad-input battery, for every estimator of conftest.ESTIMATORS and IMAGE_ESTIMATORS
(the data are 4 x 4 images): malformed data,
labels, sample weights and hyper-parameters each raise ValueError or TypeError naming the
argument, or work correctly; any memory layout or dtype of the same values gives a
bit-identical fit. Estimator-specific options stay in each estimator's own test file."""
import io

import numpy as np
import pytest

from fmnist_c import MLPClassifier, NotFittedError
from fmnist_c._base import check_images
from fmnist_c.features import HOG, hog
from fmnist_c.nn import load_model
from conftest import ESTIMATORS, IMAGE_ESTIMATORS, assert_same_fit, blobs, estimator_factories

X, y = blobs(n=40, d=16, k=3)  # 16 features: 4 x 4 images for the CNN
nan, inf = float("nan"), float("inf")
ALL = estimator_factories(images=True)


def poke(a, value):
    """A float64 copy of a with one entry set to value."""
    a = a.astype(np.float64)
    a[3, 2] = value
    return a


def poke_object(a, value):
    """An object copy of a (numbers as Python objects) with one entry set to value."""
    a = a.astype(object)
    a[3, 2] = value
    return a


@pytest.mark.parametrize("make", ALL)
@pytest.mark.parametrize("Xb, yb, err, match", [
    pytest.param(poke_object(X, {"a": 1}), y, TypeError,
                 "X must hold real numbers .*argument must be a string or a real number",
                 id="object X holding a dict"),
    pytest.param(X.astype(complex), y, TypeError, "X must hold real numbers", id="complex X"),
    pytest.param(X.astype(str), y, TypeError, "X must hold real numbers", id="string X"),
    pytest.param(None, y, TypeError, "X is None", id="X None"),
    pytest.param(X[:, 0], y, ValueError, r"X must be \(n_samples, n_features\).*reshape",
                 id="1-D X"),
    pytest.param(X.reshape(40, 4, 2, 2), y, ValueError, r"got shape \(40, 4, 2, 2\)", id="4-D X"),
    pytest.param(X.reshape(40, 4, 4, 1, 1), y, ValueError, "X must be", id="5-D X"),
    pytest.param(X[:0], y[:0], ValueError, "X has 0 samples", id="0 samples"),
    pytest.param(X[:, :0], y, ValueError, "X has 0 features", id="0 features"),
    pytest.param(poke(X, nan), y, ValueError, "X contains NaN or infinity", id="NaN in X"),
    pytest.param(poke(X, -inf), y, ValueError, "X contains NaN or infinity", id="inf in X"),
    pytest.param(poke(X, 1e300), y, ValueError, "X has values beyond the range of float32",
                 id="X beyond float32"),
    pytest.param(X, y[:-1], ValueError, "X has 40 samples but y has 39", id="length mismatch"),
    pytest.param(X[:1], y[:1], ValueError, "y has a single class", id="one sample"),
    pytest.param(X, np.zeros(40), ValueError, "y has a single class", id="one class"),
    pytest.param(X, None, TypeError, "y is None", id="y None"),
    pytest.param(X, np.c_[y, y], ValueError, "y must be 1-D", id="2-D y"),
    pytest.param(X, y + 0.5, ValueError, "y has non-integer values", id="non-integer y"),
    pytest.param(X, np.where(y == 1, nan, y), ValueError, "y contains NaN", id="NaN in y"),
    pytest.param(X, y.astype(complex), TypeError, "y must hold class labels", id="complex y"),
    pytest.param(X, np.array([None, 1, "a", 2.0] * 10, dtype=object), TypeError,
                 "y has labels that cannot be sorted", id="unsortable y"),
])
def test_fit_rejects_bad_data(make, Xb, yb, err, match):
    with pytest.raises(err, match=match):
        make().fit(Xb, yb)


def test_finite_check_when_the_sum_overflows():
    """check_images tests finiteness by one float32 sum; when that overflows, the exact
    test decides: large finite values pass, an inf among them (either sign) does not."""
    big = np.full((4, 3), 3e38, np.float32)
    np.testing.assert_array_equal(check_images(big), big)
    for v in (inf, -inf):
        bad = big * np.float32(np.sign(v))
        bad[1, 2] = v
        with pytest.raises(ValueError, match="X contains NaN or infinity"):
            check_images(bad)


@pytest.mark.parametrize("make", ALL)
@pytest.mark.parametrize("sw, err, match", [
    pytest.param(np.ones(39), ValueError, "sample_weight must be 1-D of length 40", id="short"),
    pytest.param(np.ones((40, 1)), ValueError, "sample_weight must be 1-D", id="2-D"),
    pytest.param(np.where(y == 1, nan, 1.0), ValueError, "sample_weight must be finite", id="NaN"),
    pytest.param(np.full(40, -1.0), ValueError, "sample_weight must be finite and non-negative",
                 id="negative"),
    pytest.param(np.zeros(40), ValueError, "sample_weight sums to zero", id="all zero"),
    pytest.param(np.array(["heavy"] * 40), TypeError, "sample_weight must hold real numbers",
                 id="strings"),
])
def test_fit_rejects_bad_sample_weight(make, sw, err, match):
    with pytest.raises(err, match=match):
        make().fit(X, y, sample_weight=sw)


@pytest.mark.parametrize("make", ALL)
def test_odd_but_valid_labels_work(make):
    """Two samples (one per class); negative, huge, string, boolean and integral float
    labels: the fit works and predicts those labels."""
    two = [np.flatnonzero(y == 0)[0], np.flatnonzero(y == 1)[0]]
    m = make().fit(X[two], y[two])
    assert set(m.predict(X)) <= {0, 1}
    for labels in (y - 5, y * 2**61, np.array(["coat", "bag", "shirt"])[y], y == 1,
                   y.astype(np.float64)):
        m = make().fit(X, labels)
        np.testing.assert_array_equal(m.classes_, np.unique(labels))
        assert set(m.predict(X)) <= set(labels.tolist())
        assert 0.0 <= m.score(X, labels) <= 1.0


def layouts(a):
    """The same values as a in other memory layouts and dtypes."""
    wide = np.repeat(a, 2, axis=1)
    return {
        "fortran": np.asfortranarray(a),
        "column-strided": wide[:, ::2],
        "row-strided": np.repeat(a, 2, axis=0)[::2],
        "negative-stride": np.ascontiguousarray(a[:, ::-1])[:, ::-1],
        "float64": a.astype(np.float64),
        "list": a.tolist(),
        "object": a.astype(object),
    }


@pytest.mark.parametrize("make", ALL)
def test_type_errors_of_data_are_value_errors_too(make):
    """None, complex numbers and sparse matrices raise InputTypeError: the TypeError these
    tests expect, and the ValueError scikit-learn's checks expect (with their phrases)."""
    sparse = pytest.importorskip("scipy.sparse")
    for Xb, yb, match in [(None, y, "X is None"),
                          (X.astype(complex), y, "Complex data not supported"),
                          (X, None, "requires y to be passed, but the target y is None"),
                          (sparse.csr_matrix(X), y, "X is a sparse matrix")]:
        with pytest.raises(TypeError, match=match) as info:
            make().fit(Xb, yb)
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("make", ALL)
def test_a_column_of_labels_warns_and_fits_as_labels(make):
    from fmnist_c._base import DataConversionWarning
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        m = make().fit(X, y[:, None])
    assert_same_fit(m, make().fit(X, y), X)


@pytest.mark.parametrize("make", ALL)
def test_any_layout_gives_a_bit_identical_fit(make):
    ref = make().fit(X, y)
    for name, Xl in layouts(X).items():
        m = make().fit(Xl, y)
        assert_same_fit(m, ref, X)
        np.testing.assert_array_equal(ref.predict_proba(Xl), ref.predict_proba(X), err_msg=name)
    small = np.round(X * 10)  # integers and booleans convert exactly
    for exact in (small.astype(np.int16), X > 0):
        assert_same_fit(make().fit(exact, y), make().fit(exact.astype(np.float32), y), X)


@pytest.mark.parametrize("make", ALL)
def test_predict_checks_fitted_state_and_input(make):
    m = make()
    for method in (m.predict, m.predict_proba, lambda Xp: m.score(Xp, y)):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            method(X)
    m.fit(X, y)
    name = type(m).__name__
    for Xp, err, match in [
        (X[:, :3], ValueError, f"X has 3 features, but {name} is expecting 16 features"),
        (np.c_[X, X], ValueError, f"X has 32 features, but {name} is expecting 16 features"),
        (X[0], ValueError, "reshape"),
        (X[:0], ValueError, "X has 0 samples"),
        (poke(X, nan), ValueError, "X contains NaN"),
        (X.astype(str), TypeError, "X must hold real numbers"),
    ]:
        for method in (m.predict, m.predict_proba):
            with pytest.raises(err, match=match):
                method(Xp)
    assert m.predict(X[:1]).shape == (1,)


@pytest.mark.parametrize("make", ALL)
def test_model_files_load_back_and_damaged_ones_are_value_errors(make, tmp_path):
    """Every estimator saves to .npz (no pickle inside) and loads back, by its class and
    by load_model, to the same probabilities. A truncated file, or another kind of model
    file, raises ValueError; a file with a byte flipped (the zip's CRC is not always read)
    or any one array cut short or of another type raises ValueError or loads a model that
    still predicts (as tools/fuzz.py asks of every input)."""
    m = make().fit(X, y)
    path = tmp_path / "m.npz"
    m.save(path)
    for loaded in (type(m).load(path), load_model(path)):
        assert type(loaded) is type(m)
        np.testing.assert_array_equal(loaded.predict_proba(X), m.predict_proba(X))
    raw = path.read_bytes()
    bad = tmp_path / "bad.npz"
    middle = len(raw) // 2
    for damaged in (raw[:middle], raw[:-1], raw[:30], b""):
        bad.write_bytes(damaged)
        with pytest.raises(ValueError, match="not an fmnist_c model file"):
            type(m).load(bad)
    other = next(p.values[0] for p in ALL if p.values[0].func is not type(m))().fit(X, y)
    other.save(bad)
    with pytest.raises(ValueError, match=f"not a {type(m).__name__}"):
        type(m).load(bad)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    damaged = [raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:]
               for at in range(0, len(raw), max(1, len(raw) // 40))]
    for key in sorted(set(arrays) - {"format", "version", "kind", "config"}):
        for wrong in other_arrays(arrays[key]):
            buf = io.BytesIO()
            np.savez(buf, **{**arrays, key: wrong})
            damaged.append(buf.getvalue())
    for i, data in enumerate(damaged):
        bad.write_bytes(data)
        try:
            loaded = type(m).load(bad)
        except ValueError:
            continue
        assert np.isfinite(loaded.predict_proba(X)).all(), i
        assert loaded.predict(X).shape == y.shape, i


def other_arrays(a):
    """a cut to half its rows (or a 0-d value as 1-d), and of another dtype (ints as
    floats, floats as ints, others emptied)"""
    flat = a.reshape(-1) if a.ndim == 0 else a
    return [flat[:len(flat) // 2] if a.ndim else flat,
            a.astype(np.float64) if a.dtype.kind in "iub" else
            a.astype(np.int64) if a.dtype.kind == "f" else flat[:0]]


# Absurd values of the hyper-parameters estimators share, by name: each estimator is
# checked for those it has (so a new estimator is covered as soon as it is listed).
ABSURD = {
    "virtual_shifts": [3, -4, 4.0, True, "4"],
    "epochs": [-1, 0, 2.5, True],
    "batch_size": [0, -8, 1.5],
    "learning_rate": [0, -0.1, nan, inf, "0.1"],
    "momentum": [-0.1, 1.0, nan],
    "weight_decay": [-1.0, nan],
    "alpha": [-1.0, nan],
    "patience": [0, -1, 1.5],
    "n_iter_no_change": [0, -1, 1.5],
    "tol": [-1.0, nan],
    "validation_fraction": [0.0, 1.0, nan],
    "dropout": [-0.1, 1.0, nan],
    "label_smoothing": [-0.1, 1.0, nan],
    "ema_momentum": [-0.1, 1.0, nan],
    "tta_shift": [-1, 1.5, 28],
    "hidden_layer_sizes": [None, "8", (0,), (8, -1), (2.5,)],
    "max_depth": [0, -1, 1.5, nan],
    "min_samples_split": [0, 1, nan],
    "min_samples_leaf": [0, nan],
    "min_weight_fraction_leaf": [-0.1, 0.6, nan, "0.1"],
    "max_features": [0, nan, "all"],
    "max_bins": [1, 257],
    "n_estimators": [0, -1, 2.5],
    "n_jobs": [0, -2, 1.5],
    "random_state": [-1, 1.5, "0"],
    "num_leaves": [1, 0, 2.5],
    "min_child_samples": [0, -1, 1.5],
    "min_child_weight": [-1.0, nan],
    "reg_lambda": [-1.0, nan],
    "min_split_gain": [-1.0, nan],
    "subsample": [0.0, 1.5, nan],
    "colsample_bytree": [0.0, 1.5, nan],
    "colsample_bynode": [0.0, 1.5, nan],
    "scoring": ["f1", "Loss", None],
    "n_neighbors": [0, -1, 2.5],
    "n_members": [0, -1, 2.5, True],
    "estimator": ["cnn", MLPClassifier()],
    "weights": ["gaussian", None],
    "metric": ["chebyshev", None],
}


@pytest.mark.parametrize("cls, param", [
    pytest.param(cls, p, id=f"{cls.__name__}-{p}")
    for cls, _ in ESTIMATORS + IMAGE_ESTIMATORS for p in sorted(cls().get_params())
    if p in ABSURD])
def test_absurd_hyper_parameters_name_themselves(cls, param):
    make = next(p.values[0] for p in ALL if p.values[0].func is cls)
    for value in ABSURD[param]:
        with pytest.raises((ValueError, TypeError), match=param):
            make(**{param: value}).fit(X, y)


# The HOG features (fmnist_c.features): settings and images, through the function and the
# transformer alike.
@pytest.mark.parametrize("kwargs, X, err, match", [
    ({"orientations": 0}, None, ValueError, "orientations must be a positive int"),
    ({"orientations": 2.5}, None, ValueError, "orientations"),
    ({"orientations": True}, None, ValueError, "orientations"),
    ({"orientations": 1 << 16}, None, ValueError, "orientations must be a positive int at most 32768"),
    ({"pixels_per_cell": 0}, None, ValueError, "pixels_per_cell must be"),
    ({"pixels_per_cell": (4,)}, None, ValueError, "pixels_per_cell must be"),
    ({"pixels_per_cell": "4"}, None, ValueError, "pixels_per_cell must be"),
    ({"pixels_per_cell": (4, 2.0)}, None, ValueError, "pixels_per_cell must be"),
    ({"cells_per_block": (-1, 2)}, None, ValueError, "cells_per_block must be"),
    ({"cells_per_block": None}, None, ValueError, "cells_per_block must be"),
    ({"block_norm": "L3"}, None, ValueError, "block_norm must be one of"),
    ({"block_norm": None}, None, ValueError, "block_norm must be one of"),
    ({"transform_sqrt": "yes"}, None, TypeError, "transform_sqrt must be True or False"),
    ({"n_jobs": 0}, None, ValueError, "n_jobs"),
    ({"image_shape": (27, 28)}, None, ValueError, r"image_shape \(27, 28\) does not fit"),
    ({"image_shape": (-1, 5)}, None, ValueError, "does not fit"),
    ({"image_shape": "28x28"}, None, ValueError, "image_shape must be None or"),
    ({"pixels_per_cell": 8, "cells_per_block": 4}, None, ValueError,
     r"too small .* at least 32 rows and 32 columns"),
    ({}, np.zeros((2, 30)), ValueError, "not square images; give image_shape"),
    ({}, np.zeros((2, 28, 28)) + np.nan, ValueError, "contains NaN or infinity"),
    ({}, np.zeros((0, 28, 28)), ValueError, "has 0 samples"),
    ({}, np.zeros(784), ValueError, "must be"),
    ({}, np.zeros((2, 3, 28, 28)), ValueError, "got shape"),
    ({}, np.zeros((2, 28, 28), complex), TypeError, "must hold real numbers"),
    ({}, np.zeros((2, 28, 28), str), TypeError, "must hold real numbers"),
    ({"transform_sqrt": True}, -np.ones((2, 28, 28)), ValueError, "must not be negative"),
])
def test_hog_and_its_transformer_reject_bad_input(kwargs, X, err, match):
    X = np.zeros((2, 28, 28), np.uint8) if X is None else X
    with pytest.raises(err, match=match):
        hog(X, **{"pixels_per_cell": 4, "cells_per_block": 2, **kwargs})
    with pytest.raises(err, match=match):
        HOG(**{"pixels_per_cell": 4, "cells_per_block": 2, **kwargs}).fit(X)
    with pytest.raises(TypeError, match="images is None"):
        hog(None)
