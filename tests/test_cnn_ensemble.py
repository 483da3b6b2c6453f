"""CNNEnsembleClassifier (issue 18): members seeded apart, probabilities averaged, save/load
and ONNX through the members; the "best" preset and the registry's cnn-best on a few images.
(The bad-input battery, contract, leak and thread tests take it from conftest.IMAGE_ESTIMATORS.)"""
import numpy as np
import pytest

from fmnist_c import CNNClassifier, CNNEnsembleClassifier, load_sample, study
from fmnist_c.data import StudySplit
from fmnist_c.nn import ENSEMBLE_PRESETS, Conv2D, Flatten, MaxPool2D, load_model

rng = np.random.default_rng(0)
X = rng.random((60, 64), dtype=np.float32)  # 8 x 8 images
y = np.repeat(np.arange(3), 20)
X[y == 1, :32] += 0.5
X[y == 2, 32:] += 0.5


def small(**kw):
    member = CNNClassifier(layers=[Conv2D(4, 3), MaxPool2D(2), Flatten()], epochs=2,
                           batch_size=8, tta_shift=kw.pop("tta_shift", 0))
    return CNNEnsembleClassifier(member, **{"n_members": 3, "random_state": 0, **kw})


def test_members_are_seeded_apart_and_averaged():
    m = small().fit(X, y)
    seeds = [e.random_state for e in m.estimators_]
    assert len(set(seeds)) == 3
    assert not set(seeds) & {e.random_state for e in small(random_state=1)._members()}
    probas = [e.predict_proba(X) for e in m.estimators_]
    assert not np.array_equal(probas[0], probas[1])
    np.testing.assert_allclose(m.predict_proba(X), np.mean(probas, axis=0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.decision_function(X), np.log(m.predict_proba(X)), rtol=1e-6)
    assert m.count_params() == 3 * m.estimators_[0].count_params()
    assert len(m.history_) == 3
    # the same seed, the same ensemble; the template itself stays unfitted
    np.testing.assert_array_equal(small().fit(X, y).predict_proba(X), m.predict_proba(X))
    assert not hasattr(m.estimator, "classes_")


def test_decision_function_is_finite_where_a_probability_underflows(monkeypatch):
    m = small().fit(X, y)
    zero = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], np.float32)
    monkeypatch.setattr(m, "predict_proba", lambda X: zero)
    d = m.decision_function(X[:2])
    assert np.isfinite(d).all() and d[0, 1] == np.log(np.finfo(np.float32).tiny)
    two = small().fit(X[y < 2], y[y < 2])  # two classes: the margin, not inf - inf
    monkeypatch.setattr(two, "predict_proba", lambda X: zero[:, :2])
    assert np.isfinite(two.decision_function(X[:2])).all()


def test_tta_members_average_their_shifted_copies():
    m = small(tta_shift=1, n_members=2).fit(X, y)
    for e in m.estimators_:
        assert e._test_shifts()
    np.testing.assert_allclose(m.predict_proba(X), np.mean([e.predict_proba(X) for e in
                                                            m.estimators_], axis=0), rtol=1e-6)


def test_save_load_round_trip(tmp_path):
    m = small(tta_shift=1).fit(X, y.astype(str))
    m.save(tmp_path / "ens.npz")
    for back in (CNNEnsembleClassifier.load(tmp_path / "ens.npz"), load_model(tmp_path / "ens.npz")):
        assert type(back) is CNNEnsembleClassifier and back.n_members == 3
        np.testing.assert_array_equal(back.predict_proba(X), m.predict_proba(X))
        np.testing.assert_array_equal(back.predict(X), m.predict(X))
        assert back.estimator.tta_shift == 1


def test_a_loaded_ensemble_has_the_saved_settings(tmp_path):
    """Every setting comes back, the template's too: load rebuilt the template from the
    first member, so its random_state became None and its verbose and n_jobs the
    ensemble's. A template of None (the improved preset) stays None."""
    m = small(random_state=7, n_jobs=1, n_members=2)
    m.estimator.set_params(random_state=5, verbose=1, n_jobs=2)
    m.fit(X, y)
    for template in (m.estimator, None):
        m.set_params(estimator=template).save(tmp_path / "ens.npz")
        back = CNNEnsembleClassifier.load(tmp_path / "ens.npz")
        saved, loaded = m.get_params(), back.get_params()
        assert saved.pop("estimator") is template
        template_back = loaded.pop("estimator")
        assert loaded == saved
        if template is None:
            assert template_back is None
        else:
            assert template_back.get_params() == template.get_params()
        np.testing.assert_array_equal(back.predict_proba(X), m.predict_proba(X))


def test_a_file_whose_members_disagree_is_refused(tmp_path):
    m = small(n_members=2).fit(X, y)
    config, arrays = m._file_contents()
    with pytest.raises(ValueError, match="holds 2 members, its settings say 3"):
        CNNEnsembleClassifier._from_file({**config, "params": {**config["params"], "n_members": 3}},
                                         arrays)
    with pytest.raises(ValueError, match="disagree on classes"):
        CNNEnsembleClassifier._from_file(config, {**arrays, "m1/classes": np.array([0, 1, 7])})
    with pytest.raises(ValueError, match="without members"):
        CNNEnsembleClassifier._from_file({**config, "members": []}, arrays)


def test_onnx_export_averages_the_members():
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    m = small().fit(X, y)
    sess = ort.InferenceSession(m.to_onnx().SerializeToString())
    label, proba = sess.run(None, {"input": X})
    np.testing.assert_allclose(proba, m.predict_proba(X), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(label, m.predict(X))


@pytest.mark.parametrize("shift", [1, 2])
def test_onnx_export_of_members_with_test_time_shifts(shift):
    """members with tta_shift: the graph stacks the shifted copies (zeros where the image
    moved away, as shift_images) through each network and averages their probabilities,
    then the members', as predict_proba does"""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    m = small(tta_shift=shift, n_members=2).fit(X, y.astype(str))
    sess = ort.InferenceSession(m.to_onnx().SerializeToString())
    label, proba = sess.run(None, {"input": X})
    np.testing.assert_allclose(proba, m.predict_proba(X), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(label, m.predict(X))
    member = m.estimators_[0]  # a network alone, and its shifts matter
    label, proba = ort.InferenceSession(member.to_onnx().SerializeToString()).run(None, {"input": X})
    np.testing.assert_allclose(proba, member.predict_proba(X), rtol=1e-4, atol=1e-6)
    assert np.abs(proba - member.model_._forward(X, proba=True)).max() > 1e-3


def test_best_preset_and_unknown_presets():
    m = CNNEnsembleClassifier.preset("best", random_state=3)
    assert m.random_state == 3 and isinstance(m.estimator, CNNClassifier)
    assert m.get_params()["n_members"] == ENSEMBLE_PRESETS["best"]["n_members"]
    # the recipe chooses nothing on a validation set: official-all can run it
    assert not m.estimator.restore_best_weights and not m.estimator.early_stopping
    with pytest.raises(ValueError, match="unknown preset"):
        CNNEnsembleClassifier.preset("nope")
    # any setting may be overridden, the member template too
    mine = CNNClassifier(epochs=1)
    assert CNNEnsembleClassifier.preset("best", estimator=mine, n_members=2).estimator is mine


def test_a_failed_refit_leaves_no_fitted_attribute_of_the_last_fit():
    m = small(n_members=2).fit(X, y)
    with pytest.raises(ValueError, match="validation"):
        m.fit(X, y, validation_data=(X[:, :32], y))
    for attr in ("classes_", "estimators_", "n_features_in_", "history_"):
        assert not hasattr(m, attr), attr


def test_cnn_best_runs_from_the_registry_on_a_few_images():
    """The registry's cnn-best through run_model on 300 sample images (200 train, no
    validation set as in official-all, 100 test), its members cut to one epoch and two
    members by overrides: the plumbing, not the recipe."""
    Xs, ys = load_sample()
    Xs = Xs.reshape(len(Xs), -1)
    split = StudySplit(Xs[:200], ys[:200], Xs[:0], ys[:0], Xs[200:300], ys[200:300])
    assert not study.MODELS["cnn-best"].chooses_on_validation
    member = CNNEnsembleClassifier.preset("best").estimator.set_params(epochs=1, batch_size=32)
    model, pred, row = study.run_model("cnn-best", split, 0, protocol="official-all",
                                       data="sample", overrides={"n_members": 2,
                                                                 "estimator": member})
    assert isinstance(model, CNNEnsembleClassifier) and len(model.estimators_) == 2
    assert row["model"] == "cnn-best" and row["val_accuracy"] is None
    assert row["overrides"]["n_members"] == 2 and row["n_train"] == 200
    assert pred.shape == (100,)


def test_ablation_reads_each_ingredient_off_one_fit(tmp_path):
    m = small(tta_shift=1).fit(X, y.astype(str))
    rows = m.ablation(X, y.astype(str))
    assert [(r["members"], r["test_shifts"]) for r in rows] == \
        [(1, False), (2, False), (3, False), (1, True), (2, True), (3, True)]
    assert rows[-1]["accuracy"] == m.score(X, y.astype(str))
    # the first k members are the ensemble of k with the same seed, with or without shifts
    for k in (1, 2):
        sub = small(tta_shift=1, n_members=k).fit(X, y.astype(str))
        assert rows[3 + k - 1]["accuracy"] == sub.score(X, y.astype(str))
        sub.estimators_[0].set_params(tta_shift=0)
        if k == 1:
            assert rows[0]["accuracy"] == sub.score(X, y.astype(str))
    seconds = [r["fit_seconds"] for r in rows[:3]]
    assert seconds == sorted(seconds) and seconds[0] > 0 and rows[3:][2]["fit_seconds"] == seconds[2]
    assert len(small().fit(X, y).ablation(X, y)) == 3  # no shifts: one variant
    m.save(tmp_path / "ens.npz")
    back = CNNEnsembleClassifier.load(tmp_path / "ens.npz").ablation(X, y.astype(str))
    assert [r["accuracy"] for r in back] == [r["accuracy"] for r in rows]
    assert {r["fit_seconds"] for r in back} == {None}  # fit times are not saved
    with pytest.raises(ValueError, match="labels|length|samples"):
        m.ablation(X, y[:-1])
