"""features.hog and the HOG transformer: the C kernel against a float64 NumPy twin written
here from scikit-image's definition (always) and against scikit-image's own hog (where it is
installed), on image and cell sizes that do not divide each other, every block norm, both
dtypes; thread counts, layouts, a Pipeline, Ctrl-C and memory."""
import os
import textwrap

import numpy as np
import pytest

import fmnist_c
from fmnist_c import NotFittedError
from fmnist_c.features import HOG, hog
from conftest import interrupt_after, run_json, under_asan

NORMS = ("L1", "L1-sqrt", "L2", "L2-Hys")
# (orientations, pixels_per_cell, cells_per_block): 8 and 12 bins put boundaries at 45 and
# 90 degrees, where integer gradients land exactly
SETTINGS = [(9, (4, 4), (2, 2)), (9, (7, 7), (2, 2)), (8, (5, 3), (2, 3)), (12, (4, 4), (3, 3)),
            (7, (3, 3), (1, 1)), (4, (6, 5), (1, 2))]


def hog_twin(image, orientations, ppc, cpb, norm, transform_sqrt):
    """skimage.feature.hog of one image from its definition: float64 throughout except
    where scikit-image itself rounds (float32 images stay float32 up to the differences;
    its bin bounds are float32)."""
    v = image.astype(np.float64) if image.dtype == np.uint8 else image.astype(np.float32)
    if transform_sqrt:
        v = np.sqrt(v)
    gy, gx = np.zeros_like(v), np.zeros_like(v)
    gy[1:-1] = v[2:] - v[:-2]
    gx[:, 1:-1] = v[:, 2:] - v[:, :-2]
    gx, gy = gx.astype(np.float64), gy.astype(np.float64)
    magnitude = np.hypot(gx, gy)
    angle = np.rad2deg(np.arctan2(gy, gx)) % 180
    bounds = np.float32(180 / orientations) * np.arange(orientations + 1, dtype=np.float32)
    bins = np.searchsorted(bounds.astype(np.float64), angle, side="right") - 1
    (cr, cc), (br, bc) = ppc, cpb
    nr, nc = image.shape[0] // cr, image.shape[1] // cc
    hist = np.zeros((nr, nc, orientations))
    for r in range(nr * cr):
        for c in range(nc * cc):
            if bins[r, c] < orientations:  # at or past the last (float32) bound: no bin
                hist[r // cr, c // cc, bins[r, c]] += magnitude[r, c]
    hist /= cr * cc
    eps = 1e-5
    out = []
    for r in range(nr - br + 1):
        for c in range(nc - bc + 1):
            b = hist[r:r + br, c:c + bc]
            if norm in ("L1", "L1-sqrt"):
                b = b / (np.abs(b).sum() + eps)
                b = np.sqrt(b) if norm == "L1-sqrt" else b
            else:
                b = b / np.sqrt((b ** 2).sum() + eps ** 2)
                if norm == "L2-Hys":
                    b = np.minimum(b, 0.2)
                    b = b / np.sqrt((b ** 2).sum() + eps ** 2)
            out.append(b.ravel())
    return np.concatenate(out)


def images(dtype, n=12, shape=(28, 28), seed=0):
    """Random images and flat patches (values 0..3, so gradients often sit on 0, 45 and 90
    degrees), as uint8 or as float32 pixels / 255."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n,) + shape)
    x[: n // 2] //= 64
    x = x.astype(np.uint8)
    return x if dtype == np.uint8 else x.astype(np.float32) / np.float32(255)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("transform_sqrt", [False, True], ids=["", "sqrt"])
def test_hog_matches_the_float64_twin(dtype, norm, transform_sqrt):
    for shape in ((28, 28), (13, 17)):
        X = images(dtype, shape=shape)
        for o, ppc, cpb in SETTINGS:
            if shape[0] // ppc[0] < cpb[0] or shape[1] // ppc[1] < cpb[1]:
                continue
            got = hog(X, o, ppc, cpb, norm, transform_sqrt, n_jobs=2)
            want = np.array([hog_twin(x, o, ppc, cpb, norm, transform_sqrt) for x in X])
            assert got.dtype == np.float32 and got.shape == want.shape
            # float32 output of float64 values: half an ulp of values up to 1
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7,
                                       err_msg=f"{shape} {o} {ppc} {cpb}")


@pytest.mark.parametrize("dtype", [np.uint8, np.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("norm", NORMS)
def test_hog_matches_scikit_image(dtype, norm):
    feature = pytest.importorskip("skimage.feature")
    X = np.concatenate([images(dtype, n=6), fmnist_c.load_sample()[0][:20].astype(dtype)])
    for transform_sqrt in (False, True):
        for o, ppc, cpb in SETTINGS:
            got = hog(X, o, ppc, cpb, norm, transform_sqrt)
            want = np.array([feature.hog(x, o, ppc, cpb, norm, transform_sqrt=transform_sqrt)
                             for x in X])
            # scikit-image sums each cell in float32: a few float32 ulps apart
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-7,
                                       err_msg=f"{transform_sqrt} {o} {ppc} {cpb}")


def test_hog_of_the_same_values_is_the_same_for_any_dtype_layout_and_threads():
    X = images(np.uint8, n=40)
    ref = hog(X, 9, 4, 2, n_jobs=1)
    assert ref.shape == (40, 6 * 6 * 2 * 2 * 9)
    flat = X.reshape(40, 784)
    for same in (hog(X, 9, 4, 2, n_jobs=2), hog(X, 9, (4, 4), (2, 2), n_jobs=3),
                 hog(X.astype(np.float32), 9, 4, 2), hog(X.astype(np.int64), 9, 4, 2),
                 hog(flat, 9, 4, 2), hog(np.asfortranarray(flat), 9, 4, 2),
                 hog(X[..., None], 9, 4, 2), hog(X[:, None], 9, 4, 2),
                 hog(flat, 9, 4, 2, image_shape=(28, -1))):
        np.testing.assert_array_equal(same, ref)
    np.testing.assert_array_equal(hog(X[::-1], 9, 4, 2), ref[::-1])
    np.testing.assert_array_equal(hog(X[:, :, ::-1].copy(), 9, 4, 2, n_jobs=2),
                                  hog(X[:, :, ::-1], 9, 4, 2, n_jobs=1))


def test_two_threads_at_once_match_sequential_calls():
    from concurrent.futures import ThreadPoolExecutor
    X = images(np.uint8, n=3000)
    ref = [hog(X, 9, 4, 2), hog(X, 8, 7, 2, "L1", True)]
    with ThreadPoolExecutor(2) as pool:
        got = [pool.submit(hog, X, 9, 4, 2), pool.submit(hog, X, 8, 7, 2, "L1", True)]
        for want, future in zip(ref, got):
            np.testing.assert_array_equal(future.result(), want)


def test_blank_images_give_zeros_and_inputs_are_left_unchanged():
    assert not hog(np.zeros((3, 28, 28), np.uint8), 9, 4, 2).any()
    X = images(np.float32)
    keep = X.copy()
    hog(X, 9, 4, 2, "L1", True)
    np.testing.assert_array_equal(X, keep)


def test_the_transformer_in_a_pipeline_with_the_svm():
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    X, y = fmnist_c.load_sample()
    X, y = X[:600], y[:600]
    t = HOG(orientations=8, pixels_per_cell=4, cells_per_block=2, block_norm="L1-sqrt")
    np.testing.assert_array_equal(t.fit_transform(X), hog(X, 8, 4, 2, "L1-sqrt"))
    assert t.n_features_in_ == 784 and t.image_shape_ == (28, 28) and t.n_features_out_ == 1152
    pipe = make_pipeline(clone(t), fmnist_c.SVC(C=10, random_state=0)).fit(X[:400], y[:400])
    assert pipe.get_params()["hog__orientations"] == 8
    direct = fmnist_c.SVC(C=10, random_state=0).fit(hog(X[:400], 8, 4, 2, "L1-sqrt"), y[:400])
    np.testing.assert_array_equal(pipe.predict(X[400:]),
                                  direct.predict(hog(X[400:], 8, 4, 2, "L1-sqrt")))
    assert pipe.score(X[400:], y[400:]) > 0.7


def test_the_transformer_checks_its_state_and_input_width():
    X = images(np.uint8, n=4)
    with pytest.raises(NotFittedError, match="HOG instance is not fitted"):
        HOG().transform(X)
    t = HOG(pixels_per_cell=4).fit(X)
    with pytest.raises(ValueError, match="X has 900 features, but HOG is expecting 784"):
        t.transform(np.zeros((2, 900)))
    with pytest.raises(ValueError, match="X has 900 features, but HOG is expecting 784"):
        t.transform(np.zeros((2, 30, 30)))
    np.testing.assert_array_equal(t.transform(X.reshape(4, -1)), t.transform(X))
    for bad, err in ((None, TypeError), ("images", TypeError), (np.zeros(784), ValueError)):
        with pytest.raises(err, match="X "):
            t.transform(bad)


def test_ctrl_c_stops_a_long_batch(tmp_path):
    script = (
        "import numpy as np\n"
        "from fmnist_c.features import hog\n"
        # about 7 s on one idle core here, in chunks of 4,096 images between interrupt checks
        "X = np.random.default_rng(0).integers(0, 256, (200000, 28, 28)).astype(np.uint8)\n"
        "print('ready', flush=True)\n"
        "try:\n"
        "    hog(X, 9, 28, 1)\n"
        "    print('finished')\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted', hog(X[:2], 9, 28, 1).shape)\n")
    out, elapsed = interrupt_after(script, tmp_path, 0.5)
    assert out.startswith("interrupted (2, 9)"), out
    assert elapsed < 5


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
def test_repeated_calls_keep_rss_flat(tmp_path):
    if under_asan():
        pytest.skip("ASan's quarantine holds freed memory: RSS grows by design")
    script = textwrap.dedent("""
        import json, os
        import numpy as np
        from fmnist_c.features import HOG

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        X = np.random.default_rng(0).integers(0, 256, (40, 28, 28)).astype(np.uint8)
        for _ in range(100):
            HOG(pixels_per_cell=4, cells_per_block=2).fit_transform(X)
        before = rss()
        for _ in range(1000):
            HOG(pixels_per_cell=4, cells_per_block=2).fit_transform(X)
            HOG(pixels_per_cell=4, transform_sqrt=True).fit_transform(X / np.float32(255))
        print(json.dumps(rss() - before))
    """)
    assert run_json(script, tmp_path, OMP_NUM_THREADS="2") < 1 << 20


def test_hog_svc_chooses_on_validation_and_is_the_pipeline_it_chose():
    from fmnist_c.features import HOGSVC
    from fmnist_c.study import split_data
    s = split_data("official", *fmnist_c.load_sample(), "sample")[0]
    s = s._replace(**{k: getattr(s, k).astype(np.float32) for k in ("X_train", "X_val", "X_test")})
    hogs = ({"pixels_per_cell": 7, "cells_per_block": 2}, {"pixels_per_cell": 4,
                                                           "cells_per_block": 2,
                                                           "transform_sqrt": True})
    m = HOGSVC(hogs=hogs, Cs=(1.0, 10.0), gamma_factors=(0.5, 2.0), subset=800,
               random_state=0).fit(s.X_train, s.y_train, validation_data=(s.X_val, s.y_val))
    assert [g[:2] for g in m.grid_scores_] == [[i, C] for i in (0, 1) for C in (1.0, 1.0, 10.0, 10.0)]
    part = np.sort(np.random.default_rng(0).permutation(len(s.y_train))[:800])
    for i, C, gamma, acc in m.grid_scores_:  # each candidate, refitted by hand
        one = fmnist_c.SVC(C=C, gamma=gamma, cache_size=1000).fit(
            hog(s.X_train[part], **hogs[i]), s.y_train[part])
        assert one.score(hog(s.X_val, **hogs[i]), s.y_val) == acc
    best = max(m.grid_scores_, key=lambda g: g[3])
    feats = hog(s.X_train, **hogs[best[0]])
    factor = best[2] * feats.shape[1] * hog(s.X_train[part], **hogs[best[0]]).var(dtype=np.float64)
    assert m.best_params_ == {**hogs[best[0]], "C": best[1],
                              "gamma": pytest.approx(factor / (feats.shape[1] * feats.var(dtype=np.float64)))}
    direct = fmnist_c.SVC(C=best[1], gamma=m.best_params_["gamma"], cache_size=1000).fit(feats, s.y_train)
    np.testing.assert_array_equal(m.predict(s.X_test), direct.predict(hog(s.X_test, **hogs[best[0]])))
    assert m.score(s.X_test, s.y_test) > 0.8


def test_hog_svc_with_pixels_is_the_svc_of_hog_and_scaled_pixels(tmp_path):
    """A candidate with pixel_weight w appends the pixels, scaled by w / the training
    images' largest value, to its HOG's features: the same SVC as one fitted on those
    features by hand, chosen on validation like any candidate, saved and loaded whole."""
    from fmnist_c.features import HOGSVC
    from fmnist_c.study import split_data
    s = split_data("official", *fmnist_c.load_sample(), "sample")[0]
    s = s._replace(**{k: getattr(s, k).astype(np.float32) for k in ("X_train", "X_val", "X_test")})
    plain = {"pixels_per_cell": 7, "cells_per_block": 2}
    hogs = (plain, {**plain, "pixel_weight": 0.5})
    m = HOGSVC(hogs=hogs, subset=800, random_state=0).fit(
        s.X_train, s.y_train, validation_data=(s.X_val, s.y_val))
    part = np.sort(np.random.default_rng(0).permutation(len(s.y_train))[:800])

    def features(X):
        return np.hstack([hog(X, **plain), X.reshape(len(X), -1) * np.float32(0.5 / 255)])
    with_pixels = fmnist_c.SVC(C=10.0, gamma="scale").fit(features(s.X_train[part]),
                                                          s.y_train[part])
    assert m.grid_scores_[1][3] == with_pixels.score(features(s.X_val), s.y_val)
    assert m.grid_scores_[1][3] > m.grid_scores_[0][3]  # the pixels help, even at 800 images
    assert m.best_params_["pixel_weight"] == 0.5 and m.pixel_scale_ == 0.5 / 255
    direct = fmnist_c.SVC(C=10.0, gamma=m.best_params_["gamma"]).fit(features(s.X_train),
                                                                     s.y_train)
    np.testing.assert_array_equal(m.decision_function(s.X_test),
                                  direct.decision_function(features(s.X_test)))
    # images scaled to [0, 1] give the same features: the scale follows the largest pixel
    m01 = HOGSVC(hogs=(hogs[1],)).fit(s.X_train[:300] / np.float32(255), s.y_train[:300])
    m255 = HOGSVC(hogs=(hogs[1],)).fit(s.X_train[:300], s.y_train[:300])
    np.testing.assert_allclose(m01.pixel_scale_, m255.pixel_scale_ * 255, rtol=1e-12)
    m.save(tmp_path / "m.npz")
    back = HOGSVC.load(tmp_path / "m.npz")
    assert back.pixel_scale_ == m.pixel_scale_
    np.testing.assert_array_equal(back.decision_function(s.X_test), m.decision_function(s.X_test))
    config, arrays = m._file_contents()
    for bad in (-1.0, float("nan"), 1e300, "0.1", None):
        with pytest.raises(ValueError, match="pixel scale"):
            HOGSVC._from_file({**config, "pixel_scale": bad}, arrays)
    with pytest.raises(ValueError, match="SVC does not take its HOG's features"):
        HOGSVC._from_file({**config, "pixel_scale": 0.0}, arrays)  # the SVC wants the pixels
    for w in (-1, 1e300):  # negative; beyond float32 once divided by the largest pixel
        with pytest.raises(ValueError, match="pixel_weight"):
            HOGSVC(hogs=({**plain, "pixel_weight": w},)).fit(s.X_train[:100], s.y_train[:100])


def test_shifted_moves_each_pixel_one_step_and_zeros_the_edge():
    from fmnist_c.features import _SHIFTS, _shifted
    rng = np.random.default_rng(0)
    images = rng.integers(1, 256, (3, 4 * 5)).astype(np.float32)
    moved = _shifted(images, (4, 5), 8).reshape(8, 3, 4, 5)
    for k, (dy, dx) in enumerate(_SHIFTS):
        for n, r, c in np.ndindex(3, 4, 5):  # pixel (r, c) comes from (r - dy, c - dx)
            r0, c0 = r - dy, c - dx
            inside = 0 <= r0 < 4 and 0 <= c0 < 5
            assert moved[k, n, r, c] == (images[n].reshape(4, 5)[r0, c0] if inside else 0)
    assert _SHIFTS[:4] == ((1, 0), (-1, 0), (0, 1), (0, -1))  # virtual_shifts=4: no diagonal


def test_hog_svc_virtual_shifts_refit_on_the_support_vectors_and_their_moves(tmp_path):
    """virtual_shifts=4: the SVC fitted again, same C and gamma, on the first fit's support
    vectors followed by their images moved down, up, right and left (each move's copies in
    turn), as by hand; saved and loaded whole."""
    from fmnist_c.features import HOGSVC
    X, y = fmnist_c.load_sample()
    X, y, Xt = X[:400].astype(np.float32), y[:400], X[2000:2300].astype(np.float32)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    settings = {"pixels_per_cell": 7, "cells_per_block": 2, "pixel_weight": 0.5}
    plain = HOGSVC(hogs=(settings,), random_state=0).fit(X, y, w)
    m = HOGSVC(hogs=(settings,), virtual_shifts=4, random_state=0).fit(X, y, w)
    assert plain.n_virtual_ == 0 and m.best_params_ == plain.best_params_
    sv = plain.svc_.support_
    images = X[sv].reshape(-1, 28, 28)
    moved = [np.zeros_like(images) for _ in range(4)]
    moved[0][:, 1:], moved[1][:, :-1] = images[:, :-1], images[:, 1:]  # down, up
    moved[2][:, :, 1:], moved[3][:, :, :-1] = images[:, :, :-1], images[:, :, 1:]  # right, left
    rows = np.concatenate([images] + moved).reshape(-1, 784)

    def features(A):
        return np.hstack([hog(A, pixels_per_cell=7, cells_per_block=2), A.reshape(len(A), -1) * np.float32(0.5 / 255)])
    direct = fmnist_c.SVC(C=10.0, gamma=plain.best_params_["gamma"]).fit(
        features(rows), np.tile(y[sv], 5), np.tile(w[sv], 5))
    assert m.n_virtual_ == 4 * len(sv)
    np.testing.assert_array_equal(m.svc_.support_, direct.support_)
    np.testing.assert_array_equal(m.decision_function(Xt), direct.decision_function(features(Xt)))
    m.save(tmp_path / "m.npz")
    back = HOGSVC.load(tmp_path / "m.npz")
    assert back.virtual_shifts == 4 and back.n_virtual_ == m.n_virtual_
    np.testing.assert_array_equal(back.decision_function(Xt), m.decision_function(Xt))
    config, arrays = m._file_contents()
    for bad in (-1, 2.5, "4", True, None, 0, m.n_virtual_ + 1):
        with pytest.raises(ValueError, match="virtual support vectors"):
            HOGSVC._from_file({**config, "n_virtual": bad}, arrays)
    old = {**config, "params": {k: v for k, v in config["params"].items()
                                if k != "virtual_shifts"}}
    del old["n_virtual"]  # a file from before virtual_shifts
    assert HOGSVC._from_file(old, arrays).n_virtual_ == 0
    with pytest.raises(ValueError, match="virtual support vectors"):  # moves, but no copies
        HOGSVC._from_file({k: v for k, v in config.items() if k != "n_virtual"}, arrays)
    # probabilities: only the second SVC calibrated, an image and its moves in one fold
    calibrated = HOGSVC(hogs=(settings,), virtual_shifts=4, probability=True,
                        random_state=0).fit(X, y, w)
    by_hand = fmnist_c.SVC(C=10.0, gamma=plain.best_params_["gamma"], probability=True,
                           random_state=0).fit(features(rows), np.tile(y[sv], 5),
                                               np.tile(w[sv], 5), groups=np.tile(np.arange(len(sv)), 5))
    np.testing.assert_array_equal(calibrated.svc_.probA_, by_hand.probA_)
    np.testing.assert_array_equal(calibrated.predict_proba(Xt), by_hand.predict_proba(features(Xt)))
    with pytest.raises(ValueError, match="too small"):
        HOGSVC(hogs=({"pixels_per_cell": 1, "cells_per_block": 1, "image_shape": (1, -1)},),
               virtual_shifts=4).fit(X[:50].reshape(50, -1)[:, :780], y[:50])  # one-row images


def test_hog_svc_rejects_bad_settings_and_a_grid_without_validation_data():
    from fmnist_c.features import HOGSVC
    X, y = fmnist_c.load_sample()
    X, y = X[:60], y[:60]
    for kwargs, match in (({"hogs": ()}, "hogs must be"), ({"hogs": (4,)}, r"hogs\[0\] must be"),
                          ({"Cs": ()}, "Cs must be"), ({"Cs": (-1.0,)}, "Cs must be"),
                          ({"gamma_factors": "2"}, "gamma_factors must be"),
                          ({"subset": 0}, "subset"), ({"n_jobs": 0}, "n_jobs"),
                          ({"virtual_shifts": 3}, "virtual_shifts"),
                          ({"virtual_shifts": True}, "virtual_shifts"),
                          ({"virtual_shifts": "4"}, "virtual_shifts"),
                          ({"virtual_shifts": 4.0}, "virtual_shifts"),
                          ({"hogs": ({"block_norm": "L3"},)}, "block_norm"),
                          ({"Cs": (1.0, 10.0)}, "chooses among 2 settings on validation_data")):
        with pytest.raises((ValueError, TypeError), match=match):
            HOGSVC(**kwargs).fit(X, y)
    with pytest.raises(NotFittedError):
        HOGSVC().predict(X)


def test_hog_svc_saves_loads_pickles_clones_and_gives_probabilities(tmp_path):
    """HOGSVC as every estimator: save/load (its HOG settings, image shape and SVC in one
    .npz, read back by load_model too), pickle, clone's parameters, predict_proba with
    probability=True (sigmoids on validation_data's features when fit gets it)."""
    import pickle

    from fmnist_c.features import HOGSVC
    from fmnist_c.nn import load_model
    X, y = fmnist_c.load_sample()
    X, Xv, Xt = X[:600], X[600:900], X[900:1200]
    m = HOGSVC(hogs=({"pixels_per_cell": 7, "cells_per_block": 2},), probability=True,
               random_state=0).fit(X, y[:600], validation_data=(Xv, y[600:900]))
    direct = fmnist_c.SVC(C=10.0, gamma=m.best_params_["gamma"], probability=True).fit(
        hog(X, pixels_per_cell=7, cells_per_block=2), y[:600],
        validation_data=(hog(Xv, pixels_per_cell=7, cells_per_block=2), y[600:900]))
    proba = m.predict_proba(Xt)
    np.testing.assert_array_equal(
        proba, direct.predict_proba(hog(Xt, pixels_per_cell=7, cells_per_block=2)))
    path = tmp_path / "hogsvc.npz"
    m.save(path)
    for other in (HOGSVC.load(path), load_model(path), pickle.loads(pickle.dumps(m))):
        assert type(other) is HOGSVC
        np.testing.assert_array_equal(other.predict(Xt), m.predict(Xt))
        np.testing.assert_array_equal(other.predict_proba(Xt), proba)
        np.testing.assert_array_equal(other.predict(Xt.reshape(-1, 28, 28)), m.predict(Xt))
        assert other.best_params_ == m.best_params_
    assert sklearn_clone(m).get_params() == m.get_params()
    with pytest.raises(AttributeError, match="probability=True"):
        HOGSVC(hogs=({"pixels_per_cell": 7},)).fit(X[:100], y[:100]).predict_proba(Xt)
    with pytest.raises(ValueError, match="X has 100 features, but HOGSVC is expecting 784"):
        m.predict(np.zeros((2, 100), np.float32))


def test_hog_feature_count_without_computing_them():
    """features._n_features (the loader's check before any HOG runs) is hog's width, image
    sides that are not whole cells and blocks that do not fit included."""
    from fmnist_c.features import _n_features
    for h, w in ((28, 28), (20, 28), (7, 9), (3, 3)):
        img = np.ones((1, h, w), np.float32)
        for o, cell, block in ((9, 4, 2), (5, (3, 2), (2, 3)), (12, 7, 1), (9, 8, 3)):
            n = _n_features(h, w, o, cell, block)
            if n == 0:  # a block of cells does not fit: hog refuses such images
                with pytest.raises(ValueError, match="too small"):
                    hog(img, o, cell, block)
            else:
                assert n == hog(img, o, cell, block).shape[1]


def test_hog_svc_file_checks_before_running_hog(tmp_path, monkeypatch):
    """A crafted HOGSVC file is refused by comparing its SVC's width with the count its HOG
    settings give, before HOG runs (settings for a 2048 x 2048 image, one-pixel cells and
    238 orientations would make a zero image's HOG ~4 GB); a file whose SVC lacks the
    probabilities its settings promise is refused too."""
    from fmnist_c.features import HOG, HOGSVC
    X, y = fmnist_c.load_sample()
    m = HOGSVC(hogs=({"pixels_per_cell": 7, "cells_per_block": 2},)).fit(X[:200], y[:200])
    config, arrays = m._file_contents()
    huge = {**config, "hog": {**config["hog"], "image_shape": [2048, 2048], "orientations": 238,
                              "pixels_per_cell": [1, 1], "cells_per_block": [1, 1]}}
    monkeypatch.setattr(HOG, "fit", lambda *a, **k: pytest.fail("HOG ran before the check"))
    with pytest.raises(ValueError, match="SVC does not take its HOG's features"):
        HOGSVC._from_file(huge, arrays)
    monkeypatch.undo()
    lying = {**config, "params": {**config["params"], "probability": True}}
    with pytest.raises(ValueError, match="its SVC was fitted with probability=False"):
        HOGSVC._from_file(lying, arrays)
    assert HOGSVC._from_file(config, arrays).predict(X[:5]).shape == (5,)


def test_a_failed_hog_svc_fit_keeps_the_fitted_width():
    from fmnist_c.features import HOGSVC
    X, y = fmnist_c.load_sample()
    m = HOGSVC(hogs=({"pixels_per_cell": 7, "cells_per_block": 2},)).fit(X[:200], y[:200])
    with pytest.raises(ValueError, match="validation X has 784 features, but X has 400"):
        m.fit(X[:200].reshape(-1, 28, 28)[:, :20, :20], y[:200],
              validation_data=(X[200:300], y[200:300]))
    assert m.n_features_in_ == 784 and m.predict(X[:5]).shape == (5,)
    # a fit that fails in the SVC (sample_weight of the wrong length) keeps the fitted
    # steps together: HOG, pixel scale and SVC
    with_pixels = HOGSVC(hogs=({"pixels_per_cell": 7, "cells_per_block": 2,
                                "pixel_weight": 0.5},)).fit(X[:200], y[:200])
    before = with_pixels.decision_function(X[:5])
    with_pixels.set_params(hogs=({"pixels_per_cell": 7, "cells_per_block": 2},))
    with pytest.raises(ValueError):
        with_pixels.fit(X[:200], y[:200], sample_weight=np.ones(5))
    np.testing.assert_array_equal(with_pixels.decision_function(X[:5]), before)


def sklearn_clone(model):
    base = pytest.importorskip("sklearn.base")
    return base.clone(model)


def test_hog_svc_is_the_same_model_for_uint8_and_float32_images():
    """HOGSVC takes images as float32 (HOG's uint8 path works in float64, where a few
    gradients fall on another side of a bin boundary): bytes and their float32 values give
    the same fit and the same decision values, which its ONNX graph reproduces."""
    from fmnist_c.features import HOGSVC
    X, y = fmnist_c.load_sample()
    hogs = ({"pixels_per_cell": 4, "cells_per_block": 2, "transform_sqrt": True,
             "pixel_weight": 0.5},)
    a = HOGSVC(hogs=hogs).fit(X[:300], y[:300])
    b = HOGSVC(hogs=hogs).fit(X[:300].astype(np.float32), y[:300])
    np.testing.assert_array_equal(a.svc_.dual_coef_, b.svc_.dual_coef_)
    np.testing.assert_array_equal(a.decision_function(X[300:600]),
                                  b.decision_function(X[300:600].astype(np.float32)))


# A union of HOGs (a tuple of dicts): 4 x 4 cells of the square roots, 7 x 7 cells, and the
# pixels at weight 0.5, whose pixel_weight sits in the second dict and still follows both
FINE = {"pixels_per_cell": 4, "cells_per_block": 2, "transform_sqrt": True}
COARSE = {"pixels_per_cell": 7, "cells_per_block": 1, "orientations": 6}
UNION = (FINE, {**COARSE, "pixel_weight": 0.5})


def union_features(X, largest=255.0):
    """UNION's features by hand: each HOG's, then the pixels times 0.5 / largest"""
    X = np.asarray(X, np.float32)
    return np.hstack([hog(X, **FINE), hog(X, **COARSE),
                      X.reshape(len(X), -1) * np.float32(0.5 / largest)])


def test_hog_svc_union_is_the_svc_of_its_hogs_features_concatenated():
    """A union candidate is fitted, scored on validation and refitted as an SVC on its HOGs'
    features side by side and then the pixels: the same grid scores, gamma and decision
    values as that SVC fitted by hand; best_params_ names the union's dicts."""
    from fmnist_c.features import HOGSVC
    from fmnist_c.study import split_data
    s = split_data("official", *fmnist_c.load_sample(), "sample")[0]
    m = HOGSVC(hogs=(FINE, UNION), subset=800, random_state=0).fit(
        s.X_train, s.y_train, validation_data=(s.X_val, s.y_val))
    part = np.sort(np.random.default_rng(0).permutation(len(s.y_train))[:800])
    one = fmnist_c.SVC(C=10.0, gamma="scale").fit(union_features(s.X_train[part]),
                                                  s.y_train[part])
    assert m.grid_scores_[1][:2] == [1, 10.0]
    assert m.grid_scores_[1][3] == one.score(union_features(s.X_val), s.y_val)
    assert m.grid_scores_[1][3] > m.grid_scores_[0][3]  # the union helps, even at 800 images
    assert m.best_params_ == {"hogs": [FINE, {**COARSE, "pixel_weight": 0.5}], "C": 10.0,
                              "gamma": m.svc_.gamma}
    assert [h.get_params()["pixels_per_cell"] for h in m.hogs_] == [4, 7]
    assert m.pixel_scale_ == 0.5 / 255 and m.n_features_in_ == 784
    feats = union_features(s.X_train)
    assert m.svc_.n_features_in_ == feats.shape[1] == 1296 + 96 + 784
    gamma = 1 / (feats.shape[1] * feats.var(dtype=np.float64))
    np.testing.assert_allclose(m.best_params_["gamma"], gamma, rtol=1e-6)
    direct = fmnist_c.SVC(C=10.0, gamma=m.best_params_["gamma"]).fit(feats, s.y_train)
    np.testing.assert_array_equal(m.decision_function(s.X_test),
                                  direct.decision_function(union_features(s.X_test)))
    np.testing.assert_array_equal(m.predict(s.X_test.reshape(-1, 784)), m.predict(s.X_test))


def test_hog_svc_union_saves_loads_pickles_clones_and_gives_probabilities(tmp_path):
    """A union as every HOGSVC: save/load (its HOGs as a list in the file; one HOG still
    as the dict files held before unions), load_model, pickle (one pickled before unions,
    with hog_, too), clone, predict_proba."""
    import pickle

    from fmnist_c.features import HOGSVC
    from fmnist_c.nn import load_model
    X, y = fmnist_c.load_sample()
    X, Xv, Xt = X[:600], X[600:900], X[900:1100]
    m = HOGSVC(hogs=(UNION,), probability=True, random_state=0).fit(
        X, y[:600], validation_data=(Xv, y[600:900]))
    direct = fmnist_c.SVC(C=10.0, gamma=m.best_params_["gamma"], probability=True).fit(
        union_features(X), y[:600], validation_data=(union_features(Xv), y[600:900]))
    proba = m.predict_proba(Xt)
    np.testing.assert_array_equal(proba, direct.predict_proba(union_features(Xt)))
    config, _ = m._file_contents()
    assert [h["pixels_per_cell"] for h in config["hog"]] == [4, 7]
    assert all(h["image_shape"] == [28, 28] for h in config["hog"])
    path = tmp_path / "union.npz"
    m.save(path)
    for other in (HOGSVC.load(path), load_model(path), pickle.loads(pickle.dumps(m))):
        assert type(other) is HOGSVC and len(other.hogs_) == 2
        np.testing.assert_array_equal(other.predict(Xt), m.predict(Xt))
        np.testing.assert_array_equal(other.predict_proba(Xt), proba)
        assert other.best_params_["hogs"] == m.best_params_["hogs"]
    assert sklearn_clone(m).get_params() == m.get_params()
    single = HOGSVC(hogs=(FINE,)).fit(X[:200], y[:200])
    assert isinstance(single._file_contents()[0]["hog"], dict)  # as before unions
    old = pickle.loads(pickle.dumps(single))
    state = {k: v for k, v in vars(old).items() if k != "hogs_"}
    old.__dict__.clear()
    old.__setstate__({**state, "hog_": single.hogs_[0]})  # what a pickle of then holds
    assert not hasattr(old, "hog_")
    np.testing.assert_array_equal(old.decision_function(Xt), single.decision_function(Xt))


@pytest.mark.parametrize("bad, err, match", [
    ((), ValueError, r"hogs\[\d\] is an empty union"),
    ([FINE, 4], ValueError, "must be a dict of HOG settings or a tuple of them"),
    ("FINE", ValueError, "must be a dict of HOG settings or a tuple of them"),
    ((dict(FINE, pixel_weight=0.5), UNION[1]), ValueError, "has 2 pixel_weights"),
    ((FINE, {"pixel_per_cell": 7}), ValueError, r"unknown HOG settings \['pixel_per_cell'\]"),
    ((FINE, {"n_jobs": 2}), ValueError, r"unknown HOG settings \['n_jobs'\]"),
    ((FINE, {"block_norm": "L3"}), ValueError, r"hogs\[\d\]: block_norm"),
    ((FINE, {"cells_per_block": 0}), ValueError, r"hogs\[\d\]: cells_per_block"),
    ((FINE, {"transform_sqrt": 1}), TypeError, r"hogs\[\d\]: transform_sqrt"),
    ((FINE, {"pixel_weight": -1}), ValueError, r"hogs\[\d\]: pixel_weight"),
    ((FINE, {"pixel_weight": "0.5"}), TypeError, r"hogs\[\d\]: pixel_weight"),
    ((FINE, {"pixels_per_cell": (1, 4), "cells_per_block": 1, "image_shape": (1, -1)}),
     ValueError, "read the images in different shapes"),
    ((FINE, {"pixels_per_cell": 29}), ValueError, r"hogs\[\d\]: .*too small"),
])
def test_hog_svc_rejects_bad_unions(bad, err, match):
    """Each bad candidate is refused by fit with a message naming it (hogs[i]), before any
    SVC is fitted (a bad second candidate before the first one's SVC), and a refused fit
    keeps nothing of itself."""
    from fmnist_c import svm
    from fmnist_c.features import HOGSVC
    X, y = fmnist_c.load_sample()
    X = X.reshape(len(X), -1)  # rows, which each HOG reads in its own image_shape
    m = HOGSVC(hogs=(bad,))
    with pytest.raises(err, match=match):
        m.fit(X[:60], y[:60])
    assert not hasattr(m, "hogs_")
    fits = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(svm.SVC, "fit", lambda *a, **k: fits.append(1))
        with pytest.raises(err, match=match):
            HOGSVC(hogs=(FINE, bad)).fit(X[:60], y[:60], validation_data=(X[60:90], y[60:90]))
    assert not fits
    with pytest.raises(ValueError, match="hogs must be a non-empty sequence"):
        HOGSVC(hogs=FINE).fit(X[:60], y[:60])  # one dict, not a sequence of candidates


def test_hog_svc_union_file_checks_before_running_hog(monkeypatch):
    """A crafted union file is refused before any of its HOGs runs: a member asking for
    billions of features, members of different image shapes, a member whose blocks do not
    fit, an empty or mixed list, hundreds of one-feature HOGs of huge images (each would be
    set up on one); the file's intact contents load."""
    from fmnist_c.features import HOG, HOGSVC
    X, y = fmnist_c.load_sample()
    m = HOGSVC(hogs=(UNION,)).fit(X[:200], y[:200])
    config, arrays = m._file_contents()
    fine, coarse = config["hog"]
    huge = {**coarse, "image_shape": [2048, 2048], "orientations": 238,
            "pixels_per_cell": [1, 1], "cells_per_block": [1, 1]}
    monkeypatch.setattr(HOG, "fit", lambda *a, **k: pytest.fail("HOG ran before the check"))
    for hogs, match in (([fine, huge], "different shapes"),
                        ([{**fine, "image_shape": [1024, 1024]},
                          {**huge, "image_shape": [1024, 1024]}], "SVC does not take"),
                        ([fine, {**coarse, "orientations": 7}], "SVC does not take"),
                        ([fine, {**coarse, "cells_per_block": [5, 5]}], "gives no features"),
                        ([fine], "SVC does not take"), ([fine, coarse, coarse], "SVC does not take"),
                        ([], "not a dict or a non-empty list"), ([fine, 3], "not a dict or"),
                        ("fine", "not a dict or"),
                        ([fine, {**coarse, "image_shape": [28]}], "not \\(h, w\\)"),
                        # one feature each, but each HOG is set up on a 2048 x 2048 image
                        ([{**fine, "image_shape": [2048, 2048], "orientations": 1,
                           "pixels_per_cell": [2048, 2048], "cells_per_block": [1, 1]}] * 200,
                         "200 HOGs of 2048 x 2048 images are out of range")):
        with pytest.raises(ValueError, match=match):
            HOGSVC._from_file({**config, "hog": hogs}, arrays)
    for params, match in (((FINE, ()), "empty union"), (((UNION[1], UNION[1]),), "2 pixel_weights")):
        with pytest.raises(ValueError, match=match):
            HOGSVC._from_file({**config, "params": {**config["params"], "hogs": params}}, arrays)
    monkeypatch.undo()
    assert HOGSVC._from_file(config, arrays).predict(X[:5]).shape == (5,)
