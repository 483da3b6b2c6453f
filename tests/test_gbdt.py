"""GradientBoostingClassifier: staged predictions, early stopping, importances, save/load,
weights, Ctrl-C, divergence, and accuracy on part of the study split against LightGBM."""
import textwrap
import warnings

import numpy as np
import pytest

from fmnist_c import GradientBoostingClassifier, NotFittedError
from fmnist_c.nn import load_model
from conftest import blobs, interrupt_after


def small(**kw):
    return GradientBoostingClassifier(**{"n_estimators": 12, "num_leaves": 8,
                                         "min_child_samples": 5, "random_state": 0, **kw})


@pytest.fixture(scope="module")
def data(sample_split):
    s = sample_split
    return s.X_train[:900], s.y_train[:900], s.X_val, s.y_val


def test_staged_predictions_equal_models_fitted_with_fewer_rounds(data):
    X, y, Xv, yv = data
    m = small().fit(X, y)
    staged = list(m.staged_predict_proba(Xv))
    assert len(staged) == m.n_estimators_ == 12
    np.testing.assert_array_equal(staged[-1], m.predict_proba(Xv))
    for r in (1, 5):
        np.testing.assert_allclose(staged[r - 1], small(n_estimators=r).fit(X, y).predict_proba(Xv),
                                   rtol=1e-12)
    labels = list(m.staged_predict(Xv))
    np.testing.assert_array_equal(labels[-1], m.predict(Xv))
    np.testing.assert_allclose(m.predict_proba(Xv).sum(axis=1), 1.0)


def test_validation_history_and_early_stopping(data):
    X, y, Xv, yv = data
    m = small(n_estimators=30).fit(X, y, validation_data=(Xv, yv))
    assert len(m.history_["val_loss"]) == 30 and m.n_estimators_ == 30
    assert m.best_iteration_ == int(np.argmin(m.history_["val_loss"])) + 1
    assert m.history_["val_accuracy"][-1] == pytest.approx(m.score(Xv, yv))
    e = small(n_estimators=400, learning_rate=0.5, n_iter_no_change=3).fit(
        X, y, validation_data=(Xv, yv))
    assert e.n_estimators_ == e.best_iteration_ < 400
    assert len(e.history_["val_loss"]) == e.best_iteration_ + 3  # the rounds run
    held = small(n_estimators=400, learning_rate=0.5, n_iter_no_change=3).fit(X, y)
    assert held.best_iteration_ == held.n_estimators_ < 400  # validation_fraction held out
    assert small().fit(X, y).best_iteration_ is None


def test_early_stopping_on_validation_accuracy(data):
    X, y, Xv, yv = data
    full = small(n_estimators=40, scoring="accuracy").fit(X, y, validation_data=(Xv, yv))
    acc = np.asarray(full.history_["val_accuracy"])
    assert full.best_iteration_ == int(np.flatnonzero(acc == acc.max())[0]) + 1
    assert full.n_estimators_ == 40  # without n_iter_no_change every round is kept
    e = small(n_estimators=40, scoring="accuracy", n_iter_no_change=4).fit(
        X, y, validation_data=(Xv, yv))
    best, run = 0, len(acc)  # the 0-based round of the best accuracy so far; rounds run
    for r in range(1, len(acc)):
        best = r if acc[r] > acc[best] else best
        if r - best == 4:
            run = r + 1
            break
    assert run < 40 and e.history_["val_accuracy"] == full.history_["val_accuracy"][:run]
    assert e.n_estimators_ == e.best_iteration_ == best + 1
    assert e.score(Xv, yv) == pytest.approx(acc[best])


def test_uint8_and_scaled_floats_give_the_same_model(data):
    X, y, Xv, _ = data
    a = small(subsample=0.8, colsample_bynode=0.5).fit(X, y)
    b = small(subsample=0.8, colsample_bynode=0.5).fit(X / np.float32(255), y)
    np.testing.assert_array_equal(a.predict_proba(Xv), b.predict_proba(Xv / np.float32(255)))


def test_same_model_for_any_n_jobs(data):
    X, y, Xv, _ = data
    a, b = small(n_jobs=1).fit(X, y), small(n_jobs=2).fit(X, y)
    for name in a._nodes:
        np.testing.assert_array_equal(a._nodes[name], b._nodes[name])


def test_feature_importances_are_split_gains(data):
    X, y, _, _ = data
    m = small().fit(X, y)
    imp = m.feature_importances_
    assert imp.shape == (784,) and imp.sum() == pytest.approx(1.0) and (imp >= 0).all()
    split = m._nodes["left"] >= 0
    assert set(np.flatnonzero(imp)) == set(m._nodes["feature"][split])
    with pytest.raises(NotFittedError):
        GradientBoostingClassifier().feature_importances_


def test_save_load_round_trip(data, tmp_path):
    X, y, Xv, yv = data
    labels = np.array(["shirt", "coat", "bag", "boot", "top", "dress", "sandal", "sneaker",
                       "trouser", "pullover"], dtype=object)[y]
    m = small().fit(X, labels, validation_data=(Xv, np.array(labels[:1].tolist() * len(yv))))
    m.save(tmp_path / "gb.npz")
    for loaded in (GradientBoostingClassifier.load(tmp_path / "gb.npz"), load_model(tmp_path / "gb.npz")):
        np.testing.assert_array_equal(loaded.predict_proba(Xv), m.predict_proba(Xv))
        np.testing.assert_array_equal(loaded.predict(Xv), m.predict(Xv))
        assert loaded.best_iteration_ == m.best_iteration_ and loaded.history_ == m.history_
        assert loaded.get_params() == m.get_params()


def test_zero_weights_drop_rows_and_two_classes_give_margins():
    X, y = blobs(n=200, d=10, k=2)
    w = np.ones(len(y))
    w[::3] = 0
    a = small().fit(X, y, sample_weight=w)
    b = small().fit(X[w > 0], y[w > 0])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    margin = a.decision_function(X)
    assert margin.shape == (200,)
    np.testing.assert_array_equal(margin > 0, a.predict(X) == a.classes_[1])


def test_a_leaf_value_past_float32_is_a_divergence():
    X, y = blobs(n=200, d=10, k=3)
    m = small().fit(X, y)
    with pytest.raises(FloatingPointError, match="diverged"):
        m.set_params(learning_rate=1e300).fit(X, y)
    with pytest.raises(NotFittedError):
        m.predict(X)


def test_ctrl_c_keeps_the_finished_rounds(tmp_path):
    script = textwrap.dedent("""
        import time, warnings, numpy as np
        from fmnist_c import GradientBoostingClassifier
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, (4000, 784), dtype=np.uint8); y = rng.integers(0, 10, 4000)
        m = GradientBoostingClassifier(100000, min_child_samples=5, random_state=0)
        print("ready", flush=True)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                m.fit(X, y)
        except KeyboardInterrupt:
            kept = m.n_estimators_
            print("interrupted", kept > 0, m.predict(X[:5]).shape,
                  len(m._offsets) - 1 == 10 * kept, "finished rounds" in str(caught[0].message),
                  flush=True)
    """)
    # rounds of 4,000 rows: a fraction of a second each, seconds on a crowded machine
    out, elapsed = interrupt_after(script, tmp_path, 10.0)
    assert out.startswith("interrupted True (5,) True True"), out
    assert elapsed < 5


@pytest.mark.full_data
def test_close_to_lightgbm_on_a_subset_of_the_study_split(full_split):
    """10 rounds of 31 leaves, learning rate 0.1, on the study split's first 10,000 training
    images (a few seconds: CI's time), scored on its 14,000 test images; LightGBM with the
    same settings, when installed: accuracy within 0.005 and test log loss within 0.01 of
    each other (a defect in the leaf values, hessians, gains or histograms shows first as a
    log loss that falls slower than LightGBM's). 2026-12-07: ours 0.8411 (log loss 0.6904),
    LightGBM 4.7's 0.8414 (0.6909)."""
    s = full_split
    X, y = s.X_train[:10000].reshape(10000, -1), s.y_train[:10000]
    Xt = s.X_test.reshape(len(s.X_test), -1)
    settings = dict(learning_rate=0.1, num_leaves=31, min_child_samples=20,
                    min_child_weight=1e-3, reg_lambda=0.0)
    m = GradientBoostingClassifier(10, random_state=0, **settings).fit(X, y)
    proba = m.predict_proba(Xt)
    ours = float(np.mean(m.classes_[proba.argmax(1)] == s.y_test))
    ours_loss = float(-np.mean(np.log(proba[np.arange(len(Xt)), s.y_test])))
    assert ours >= 0.835
    lgb = pytest.importorskip("lightgbm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = lgb.LGBMClassifier(n_estimators=10, max_bin=255, n_jobs=1, verbose=-1,
                                    **settings).fit(X, y)
        p = theirs.predict_proba(Xt)
    their_score = float(np.mean(p.argmax(1) == s.y_test))
    their_loss = float(-np.mean(np.log(p[np.arange(len(Xt)), s.y_test])))
    assert abs(ours - their_score) < 0.005
    assert abs(ours_loss - their_loss) < 0.01
