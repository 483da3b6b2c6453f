"""The estimator contract every estimator shares: fit(X, y, sample_weight=None, *,
validation_data=None); one regularisation and early-stopping vocabulary (alpha,
early_stopping, validation_fraction, n_iter_no_change, tol) on logistic regression and the
networks, the names of 0.1 (weight_decay, patience) still working with a FutureWarning;
decision_function's binary shape; NotFittedError as scikit-learn's; Sequential clones and
unpickles aligned."""
import copy
import inspect
import pickle
import sys
import warnings

import numpy as np
import pytest

from fmnist_c import (DecisionTreeClassifier, MLPClassifier, NotFittedError,
                      RandomForestClassifier, SGDLogisticRegression)
from fmnist_c.nn import Dense, Sequential
from conftest import assert_same_fit, blobs, estimator_factories, has_param

X, y = blobs(n=120, d=16, k=3)
Xv, yv = blobs(n=60, d=16, k=3, seed=1)
ALL = estimator_factories(images=True)
w = np.random.default_rng(0).integers(1, 4, len(y)).astype(float)


@pytest.mark.parametrize("make", ALL)
def test_fit_signature_is_the_same_everywhere(make):
    """sample_weight third (positionally too), validation_data keyword-only; a validation
    pair where the weights go is a clear error, not "too many values to unpack"."""
    params = inspect.signature(make.func.fit).parameters
    assert list(params)[:4] == ["self", "X", "y", "sample_weight"]
    assert params["sample_weight"].default is None
    assert params["validation_data"].kind is inspect.Parameter.KEYWORD_ONLY
    assert_same_fit(make().fit(X, y, w), make().fit(X, y, sample_weight=w), X)
    make().fit(X, y, w, validation_data=(Xv, yv))
    with pytest.raises(TypeError, match="validation_data is keyword-only"):
        make().fit(X, y, (Xv, yv))
    with pytest.raises(ValueError, match="validation X has 5 features, but"):
        make().fit(X, y, validation_data=(Xv[:, :5], yv))


@pytest.mark.parametrize("cls", [DecisionTreeClassifier, RandomForestClassifier])
def test_trees_score_validation_data(cls):
    m = cls(random_state=0).fit(X, y, validation_data=(Xv, yv))
    assert m.validation_score_ == m.score(Xv, yv)
    assert not hasattr(cls(random_state=0).fit(X, y), "validation_score_")


def test_tree_rows_of_weight_zero_are_rows_left_out():
    """Zero weights drop their rows before binning (so they move no threshold) and integer
    weights act as repeated rows: scikit-learn's check_sample_weight_equivalence."""
    rng = np.random.default_rng(3)
    Xr, yr = rng.random((30, 6)), rng.integers(0, 3, 30)
    counts = rng.integers(0, 4, 30)
    weighted = DecisionTreeClassifier(random_state=0).fit(Xr, yr, counts)
    repeated = DecisionTreeClassifier(random_state=0).fit(np.repeat(Xr, counts, 0),
                                                          np.repeat(yr, counts))
    np.testing.assert_array_equal(weighted.tree_.threshold, repeated.tree_.threshold)
    np.testing.assert_allclose(weighted.predict_proba(Xr), repeated.predict_proba(Xr))


def test_one_vocabulary_on_logistic_regression_and_the_networks():
    names = {"alpha", "early_stopping", "validation_fraction", "n_iter_no_change", "tol"}
    makers = [p.values[0] for p in estimator_factories(has_param("early_stopping"), images=True)]
    assert {make.func.__name__ for make in makers} == {
        "SGDLogisticRegression", "MLPClassifier", "CNNClassifier"}
    for make in makers:
        assert names <= set(make().get_params())


@pytest.mark.parametrize("old, new", [
    (dict(weight_decay=1e-3), dict(alpha=1e-3)),
    (dict(patience=2), dict(early_stopping=True, n_iter_no_change=2)),
])
def test_names_of_0_1_warn_and_fit_identically(old, new):
    kw = dict(hidden_layer_sizes=(8,), epochs=12, learning_rate=0.05, optimizer="adamw",
              random_state=0)
    with pytest.warns(FutureWarning, match="removed in 0.3"):
        a = MLPClassifier(**kw, **old).fit(X, y, validation_data=(Xv, yv))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = MLPClassifier(**kw, **new).fit(X, y, validation_data=(Xv, yv))
    assert_same_fit(a, b, X)
    assert a.n_iter_ == b.n_iter_
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match=list(old)[0]):
        MLPClassifier(**kw, **{list(old)[0]: -1}).fit(X, y, validation_data=(Xv, yv))


def test_alpha_is_weight_decay():
    kw = dict(hidden_layer_sizes=(8,), epochs=2, random_state=0)
    a = MLPClassifier(alpha=0.1, **kw).fit(X, y)
    assert a.model_.optimizer.weight_decay == 0.1
    assert not np.array_equal(a.model_.params_, MLPClassifier(**kw).fit(X, y).model_.params_)


@pytest.mark.parametrize("make", estimator_factories(has_param("early_stopping"), images=True))
def test_early_stopping_without_validation_data_holds_out_a_fraction(make):
    m = make(epochs=30, early_stopping=True, n_iter_no_change=2, validation_fraction=0.25)
    m.fit(X, y)
    assert m.n_iter_ < 30 and len(m.history_["val_accuracy"]) == m.n_iter_
    assert 1 <= m.best_epoch_ <= m.n_iter_
    # the held-out quarter is scored: 30 rows, so accuracies are multiples of 1/30
    assert np.allclose(np.array(m.history_["val_accuracy"]) * 30 % 1, 0, atol=1e-9)


def test_a_refit_forgets_the_best_epoch_of_the_last_fit():
    m = SGDLogisticRegression(epochs=4, early_stopping=True, random_state=0).fit(X, y)
    assert hasattr(m, "best_epoch_")
    assert not hasattr(m.set_params(early_stopping=False).fit(X, y), "best_epoch_")


@pytest.mark.parametrize("make", estimator_factories(lambda cls: hasattr(cls, "decision_function"),
                                                     images=True))
def test_binary_decision_function_is_one_margin(make):
    Xb, yb = X[y < 2], np.array(["no", "yes"])[y[y < 2]]
    m = make().fit(Xb, yb)
    d = m.decision_function(Xb)
    assert d.shape == (len(Xb),)
    np.testing.assert_array_equal(m.classes_[(d > 0).astype(int)], m.predict(Xb))
    assert m.decision_function(X).ndim == 1
    m3 = make().fit(X, y)
    assert m3.decision_function(X).shape == (len(X), 3)
    np.testing.assert_array_equal(m3.decision_function(X).argmax(1), m3.predict(X))


def test_not_fitted_error_is_scikit_learns_once_it_is_loaded():
    m = MLPClassifier()
    with pytest.raises(NotFittedError) as info:
        m.predict(X)
    assert isinstance(info.value, (ValueError, AttributeError))
    err = pickle.loads(pickle.dumps(info.value))
    assert isinstance(err, NotFittedError) and err.args == info.value.args
    sk = pytest.importorskip("sklearn.exceptions")
    for param in ALL:
        with pytest.raises(sk.NotFittedError):
            param.values[0]().predict(X)
    with pytest.raises(sk.NotFittedError):
        Sequential([Dense(3)]).predict(X)


def test_importing_fmnist_c_does_not_import_scikit_learn():
    from conftest import run_json
    out = run_json("import sys, json, fmnist_c; m = fmnist_c.MLPClassifier(epochs=1)\n"
                   "print(json.dumps(any(k.startswith('sklearn') for k in sys.modules)))", "/")
    assert out is False


def test_sequential_clones_and_unpickles_aligned():
    s = Sequential([Dense(7, activation="relu"), Dense(3)], optimizer="adam", random_state=0)
    s.fit(X, y, epochs=1, verbose=0)
    assert s.get_params()["layers"] is s.layers
    for other in (pickle.loads(pickle.dumps(s)), copy.deepcopy(s)):
        for name in ("params_", "grads_", "optimizer_state_"):
            assert getattr(other, name).ctypes.data % 64 == 0, name
            np.testing.assert_array_equal(getattr(other, name), getattr(s, name))
        np.testing.assert_array_equal(other.predict_proba(X), s.predict_proba(X))
    m = pickle.loads(pickle.dumps(MLPClassifier(hidden_layer_sizes=(5,), epochs=1).fit(X, y)))
    assert m.model_.params_.ctypes.data % 64 == 0
    s.set_params(n_jobs=1)
    assert s.n_jobs == 1 and s.get_params()["n_jobs"] == 1
    base = pytest.importorskip("sklearn.base")
    c = base.clone(s)
    assert not c.built and c.get_params().keys() == s.get_params().keys()
    c.fit(X, y, epochs=1, verbose=0)
    t = Sequential([Dense(7, activation="relu"), Dense(3)], optimizer="adam", random_state=0)
    np.testing.assert_array_equal(c.params_, t.fit(X, y, epochs=1, verbose=0).params_)
    assert "sklearn" in sys.modules


def test_study_forest_follows_the_contract_and_needs_validation_data():
    from fmnist_c.study import StudyForest
    f = StudyForest(n_estimators=3, depths=(2, 4, 6), n_jobs=1)
    with pytest.raises(ValueError, match="validation_data"):
        f.fit(X, y)
    with pytest.raises(NotFittedError):
        f.predict(X)
    f.fit(X, y, w, validation_data=(Xv, yv))
    assert f.best_depth_ in (2, 4, 6) and f.score(Xv, yv) == np.mean(f.predict(Xv) == yv)
    assert f.predict_proba(X).shape == (len(X), 3)
    base = pytest.importorskip("sklearn.base")
    assert base.clone(f).get_params() == f.get_params()
