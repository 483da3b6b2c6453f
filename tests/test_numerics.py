"""Extreme inputs, for every estimator of conftest.ESTIMATORS and IMAGE_ESTIMATORS (the
data are square: 16 = 4x4 features): all-zero images, constant
features and huge learning rates give a finite model or a clear divergence error, and a
diverged fit leaves no NaN model behind."""
import numpy as np
import pytest

from fmnist_c import NotFittedError
from fmnist_c.nn import Dense, Sequential
from conftest import blobs, estimator_factories, fitted_state, has_param

X, y = blobs(n=60, d=16, k=3)


def assert_finite_model(model, Xp):
    for name, a in fitted_state(model).items():
        if a.dtype.kind == "f":
            assert np.isfinite(a).all(), name
    proba = model.predict_proba(Xp)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("make", estimator_factories(images=True))
@pytest.mark.parametrize("Xe", [
    pytest.param(np.zeros((60, 28, 28), np.uint8), id="all-zero images"),
    pytest.param(np.full((60, 16), 7.0, np.float32), id="all features constant"),
    pytest.param(np.c_[X[:, :4], np.full((60, 12), -3.0)], id="some features constant"),
    pytest.param(X * 1e-30, id="tiny values"),
])
def test_degenerate_inputs_give_finite_models(make, Xe):
    model = make().fit(Xe, y)
    assert_finite_model(model, Xe)
    if not np.ptp(Xe.reshape(60, -1), axis=0).any():  # nothing to learn: no class beats
        assert len(set(model.predict(Xe))) == 1     # another on identical rows


@pytest.mark.parametrize("make", estimator_factories(has_param("learning_rate"), images=True))
@pytest.mark.parametrize("lr", [1e6, 1e30])
@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_huge_learning_rates_give_a_finite_model_or_a_divergence_error(make, lr, scale):
    model = make(learning_rate=lr)
    try:
        model.fit(X * scale, y)
    except FloatingPointError as e:
        assert "diverged" in str(e)
        assert not fitted_state(model)
        with pytest.raises(NotFittedError):
            model.predict(X)
    else:
        assert_finite_model(model, X * scale)
        assert np.isfinite(model.history_["loss"]).all()


def gradient_trained(cls):
    """Estimators a huge learning rate and X * 1e30 make diverge: not boosted trees, whose
    bins ignore the scale and whose first round's leaf values, 1e30 times a Newton step,
    are finite (a leaf value past float32's range is their divergence: test_gbdt.py)."""
    return has_param("learning_rate")(cls) and cls.__name__ != "GradientBoostingClassifier"


@pytest.mark.parametrize("make", estimator_factories(gradient_trained, images=True))
def test_a_diverged_fit_leaves_no_nan_model(make):
    """The divergence is certain here; the estimator, fitted before, is left unfitted
    (predict refuses) rather than holding NaN weights, and fits again afterwards."""
    model = make().fit(X, y)
    with pytest.raises(FloatingPointError, match="diverged"):
        model.set_params(learning_rate=1e30).fit(X * 1e30, y)
    assert not fitted_state(model)
    with pytest.raises(NotFittedError):
        model.predict_proba(X)
    assert_finite_model(model.set_params(learning_rate=0.01).fit(X, y), X)


def test_a_diverged_sequential_is_unbuilt():
    s = Sequential([Dense(3)], optimizer="sgd", random_state=0)
    s.optimizer.learning_rate = 1e30
    with pytest.raises(FloatingPointError, match="diverged"):
        s.fit(X * 1e30, y, verbose=0)
    assert not s.built
    with pytest.raises(NotFittedError):
        s.predict(X)


@pytest.mark.parametrize("make", estimator_factories(images=True))
def test_predicting_on_values_near_float32s_limit_is_finite_or_a_clear_error(make):
    """Inputs that pass the finiteness check can still overflow a model's float32 sums: every
    estimator then returns finite probabilities and matching labels, or says why it cannot
    (it used to return NaN probabilities)."""
    model = make().fit(X, y)
    huge = np.sign(X - X.mean()).astype(np.float32) * np.float32(3e38)
    try:
        proba = model.predict_proba(huge)
    except ValueError as e:
        assert "overflowed float32" in str(e)
        with pytest.raises(ValueError, match="overflowed float32"):
            model.predict(huge)
    else:
        assert np.isfinite(proba).all()
        if type(model).__name__ == "SVC":  # predicts by one-vs-one votes, as libsvm: its
            return  # probabilities are a separate (Platt) model whose argmax may differ
        np.testing.assert_array_equal(model.predict(huge), model.classes_[proba.argmax(axis=1)])
