"""KNeighborsClassifier against scikit-learn's and a NumPy vote: neighbours, votes with
uniform and distance weights, the k sweep from one search, uint8 kept as uint8, pickling."""
import pickle

import numpy as np
import pytest

import fmnist_c.neighbors as neighbors_module
from fmnist_c import KNeighborsClassifier, NotFittedError, load_sample

METRICS = ["euclidean", "manhattan", "cosine"]


@pytest.fixture(scope="module")
def pixels():
    X, y = load_sample()
    X = X.reshape(len(X), -1)
    return X[:2000], y[:2000], X[2000:2300], y[2000:2300]


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric", METRICS)
def test_matches_scikit_learn(pixels, metric, weights):
    sk = pytest.importorskip("sklearn.neighbors")
    X, y, Xt, yt = pixels
    ours = KNeighborsClassifier(7, weights=weights, metric=metric).fit(X, y)
    theirs = sk.KNeighborsClassifier(7, weights=weights, metric=metric, algorithm="brute").fit(
        X.astype(np.float64), y)
    d, i = ours.kneighbors(Xt)
    td, ti = theirs.kneighbors(Xt.astype(np.float64))
    np.testing.assert_allclose(d, td, rtol=1e-6, atol=1e-9)
    # scikit-learn breaks ties between equal distances its own way (also with rows past
    # the k-th): compare the rest
    same = (np.isclose(d[:, :, None], d[:, None, :]).sum(axis=2) == 1) & ~np.isclose(d, d[:, -1:])
    np.testing.assert_array_equal(i[same], ti[same])
    np.testing.assert_allclose(ours.predict_proba(Xt), theirs.predict_proba(
        Xt.astype(np.float64)), atol=1e-6)
    assert (ours.predict(Xt) == theirs.predict(Xt.astype(np.float64))).mean() > 0.99


def test_uint8_and_scaled_float_agree(pixels):
    X, y, Xt, _ = pixels
    a = KNeighborsClassifier(5, metric="manhattan").fit(X, y)
    b = KNeighborsClassifier(5, metric="manhattan").fit(X / np.float32(255), y)
    assert a._fit_X.dtype == np.uint8 and a._fit_X.base is X or a._fit_X is X
    assert b._fit_X.dtype == np.float32
    np.testing.assert_allclose(b.kneighbors(Xt / np.float32(255))[0] * 255, a.kneighbors(Xt)[0],
                               rtol=1e-6)
    assert (a.predict(Xt) == b.predict(Xt / np.float32(255))).mean() > 0.99


def test_k_sweep_from_one_search_equals_each_k(pixels):
    X, y, Xt, yt = pixels
    model = KNeighborsClassifier(3, weights="distance").fit(X, y)
    ks = [1, 4, 9, 20]
    staged = model.staged_k_proba(Xt, ks)
    for k, proba in zip(ks, staged):
        np.testing.assert_array_equal(proba, model.predict_proba(Xt, n_neighbors=k))
        ref = KNeighborsClassifier(k, weights="distance").fit(X, y)
        np.testing.assert_array_equal(proba, ref.predict_proba(Xt))
    scores = model.staged_k_scores(Xt, yt, ks)
    assert scores.shape == (4,) and (scores > 0.6).all()


def test_votes_against_numpy():
    X = np.array([[0], [1], [3], [6], [10]], np.float32)
    y = np.array([0, 1, 1, 2, 2])
    q = np.array([[2], [1]], np.float32)
    m = KNeighborsClassifier(3, weights="distance").fit(X, y)
    d, i = m.kneighbors(q)
    np.testing.assert_array_equal(i, [[1, 2, 0], [1, 0, 2]])
    w = 1 / np.array([1.0, 1.0, 2.0])
    np.testing.assert_allclose(m.predict_proba(q)[0], [w[2] / w.sum(), (w[0] + w[1]) / w.sum(), 0])
    np.testing.assert_array_equal(m.predict_proba(q)[1], [0, 1, 0])  # a zero distance wins
    u = KNeighborsClassifier(3).fit(X, y, sample_weight=[1, 1, 1, 1, 3])
    np.testing.assert_allclose(u.predict_proba([[9]]), [[0, 0.2, 0.8]])


def test_ties_go_to_the_smaller_training_index():
    X = np.array([[1, 1], [0, 0], [1, 1], [1, 1]], np.uint8)
    m = KNeighborsClassifier(2).fit(X, [0, 1, 1, 0])
    np.testing.assert_array_equal(m.kneighbors([[1, 1]], return_distance=False), [[0, 2]])


KERNELS = ["portable", "avx2", "avx512", "amx"]  # each CPU runs the best and those before it


@pytest.mark.parametrize("kernel", KERNELS)
def test_every_kernel_gives_the_same_model(pixels, kernel, monkeypatch):
    from fmnist_c import _core
    X, y, Xt, _ = pixels
    ref = KNeighborsClassifier(6, metric="euclidean").fit(X, y).kneighbors(Xt)
    monkeypatch.setattr(neighbors_module, "_KERNEL", kernel)
    if KERNELS.index(kernel) > KERNELS.index(_core.knn_kernel()):
        pytest.skip(f"{kernel} kernel not available on this CPU")
    got = KNeighborsClassifier(6, metric="euclidean").fit(X, y).kneighbors(Xt)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


def test_pickles_and_refuses_bad_use(pixels):
    X, y, Xt, _ = pixels
    with pytest.raises(NotFittedError):
        KNeighborsClassifier().predict(Xt)
    m = KNeighborsClassifier(4, metric="cosine").fit(X, y, validation_data=(Xt, pixels[3]))
    assert 0.6 < m.validation_score_ <= 1
    back = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(back.predict_proba(Xt), m.predict_proba(Xt))
    with pytest.raises(ValueError, match="n_neighbors"):
        m.kneighbors(Xt, n_neighbors=len(X) + 1)
    with pytest.raises(ValueError, match="metric"):
        KNeighborsClassifier(metric="chebyshev").fit(X, y)
    with pytest.raises(ValueError, match="weights"):
        KNeighborsClassifier(weights="gaussian").fit(X, y)
    with pytest.raises(ValueError, match="features"):
        m.predict(Xt[:, :10])


@pytest.mark.full_data
def test_study_split_accuracy(full_split):
    s = full_split
    m = KNeighborsClassifier(5, weights="distance", metric="manhattan").fit(s.X_train, s.y_train)
    assert m.score(s.X_test, s.y_test) > 0.85


def test_tuned_model_chooses_on_validation(pixels):
    from fmnist_c.neighbors import TunedKNeighborsClassifier
    X, y, Xv, yv = pixels
    t = TunedKNeighborsClassifier(ks=(1, 3, 5), metrics=("euclidean", "manhattan"),
                                  refit_with_validation=False).fit(X, y, validation_data=(Xv, yv))
    best = max(t.val_scores_.items(), key=lambda kv: kv[1].max())
    assert t.validation_score_ == best[1].max()
    assert (t.best_params_["metric"], t.best_params_["weights"]) == best[0]
    ref = KNeighborsClassifier(**t.best_params_).fit(X, y)
    np.testing.assert_array_equal(t.predict_proba(Xv), ref.predict_proba(Xv))
    assert t.score(Xv, yv) == t.validation_score_
    refit = TunedKNeighborsClassifier(ks=(1, 3)).fit(X, y, validation_data=(Xv, yv))
    assert refit.model_.n_samples_fit_ == len(X) + len(Xv)
    with pytest.raises(ValueError, match="validation_data"):
        TunedKNeighborsClassifier().fit(X, y)


def test_study_row_scores_validation_before_the_refit_and_records_the_choice():
    """The tuned model keeps the validation rows after choosing on them; scored again they
    would find themselves at distance 0 (the 1.0 of the first ledger rows): the row's
    val_accuracy is the accuracy that chose, and extra names what was chosen."""
    from fmnist_c import study
    split, _, _ = study.load_split("study", sample=True, log=lambda *a: None)
    model, _, row = study.run_model("knn", split, 0)
    chosen = KNeighborsClassifier(**model.best_params_).fit(split.X_train, split.y_train)
    assert row["val_accuracy"] == chosen.score(split.X_val, split.y_val) < 1
    assert model.score(split.X_val, split.y_val) == 1.0  # what the old rows recorded
    assert row["extra"]["best_params"] == model.best_params_


def test_ctrl_c_stops_a_long_search_and_leaves_the_model_usable(tmp_path):
    from conftest import interrupt_after
    script = (
        "import numpy as np, fmnist_c\n"
        "X = np.random.default_rng(0).integers(0, 256, (40000, 784)).astype(np.uint8)\n"
        "m = fmnist_c.KNeighborsClassifier(5, metric='manhattan', n_jobs=2).fit(X, np.arange(40000) % 10)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        # 1.25e12 absolute differences on VPSADBW: about 5 s on the idle machine (Euclidean's
        # AMX tiles finished the same search within the 1 s before the interrupt)
        "    m.kneighbors(X)\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', m.kneighbors(X[:3], 1)[1].ravel().tolist())\n")
    out, elapsed = interrupt_after(script, tmp_path, 1.0)
    assert out.startswith("interrupted [0, 1, 2]"), out
    assert elapsed < 5


def test_save_and_load_give_the_same_model(pixels, tmp_path):
    from fmnist_c.nn import load_model
    X, y, Xt, _ = pixels
    labels = np.array(["top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                       "sneaker", "bag", "boot"])[y]
    sw = np.linspace(0.5, 2.0, len(y))
    for Xfit, Xq in ((X, Xt), (X / np.float32(255), Xt / np.float32(255))):
        m = KNeighborsClassifier(4, weights="distance", metric="manhattan").fit(Xfit, labels, sw)
        m.save(tmp_path / "knn.npz")
        for back in (KNeighborsClassifier.load(tmp_path / "knn.npz"),
                     load_model(tmp_path / "knn.npz")):
            assert type(back) is KNeighborsClassifier and back.get_params() == m.get_params()
            assert back._fit_X.dtype == Xfit.dtype
            np.testing.assert_array_equal(back.predict_proba(Xq), m.predict_proba(Xq))
            np.testing.assert_array_equal(back.predict(Xq), m.predict(Xq))
    with pytest.raises(NotFittedError):
        KNeighborsClassifier().save(tmp_path / "unfitted.npz")
