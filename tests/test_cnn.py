"""Convolutional layers (csrc/nn/conv.c, batch norm in layers.c, augment.c) and CNNClassifier.

Each layer's backward is checked against central finite differences of the float64 NumPy
interpreter in nn_reference.py (tolerances as in test_nn.py), and where PyTorch is
installed, small CNNs' losses, all gradients, Adam steps and batch-norm running statistics
against torch on the same weights and batch.
"""
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fmnist_c
from fmnist_c import CNNClassifier, NotFittedError
from fmnist_c.nn import (Adam, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                         GlobalAveragePooling2D, MaxPool2D, ReLU, Sequential, augment_images,
                         load_model, study_cnn)
from conftest import interrupt_after
from fmnist_c import _core
from test_gemm import FAST_KERNELS
from nn_reference import check_against_fd
from torch_reference import adam_matches_torch, gradients_match_torch, torch_net


def image_model(layers, shape, seed=0):
    """A built network on (C, H, W) inputs with random weights (batch norm's running
    variance kept positive)."""
    m = Sequential(layers, input_shape=shape, random_state=seed).build(int(np.prod(shape)))
    rng = np.random.default_rng(seed + 100)
    m.params_[...] = rng.normal(0, 0.5, m.params_.size)
    for layer, (c, _, _), offset, _ in m._built:
        if isinstance(layer, BatchNorm):
            m.params_[offset + 3 * c:offset + 4 * c] = rng.uniform(0.5, 2.0, c)
    return m


def images(n, shape, seed=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, int(np.prod(shape)))).astype(np.float32), rng.integers(0, 4, n)


# ---- every layer's backward against finite differences ---------------------------------
@pytest.mark.parametrize("layers, shape", [
    ([Conv2D(3, 3), Flatten(), Dense(4)], (2, 6, 5)),
    ([Conv2D(3, (3, 2), strides=2, padding="same"), Flatten(), Dense(4)], (2, 7, 6)),
    ([Conv2D(4, 3, padding="same"), Dense(4)], (1, 5, 5)),
    ([Conv2D(3, 1), Dense(4)], (2, 4, 4)),
    ([Conv2D(2, 3, strides=3), Dense(4)], (1, 8, 8)),
    # each convolution computes the ReLU after it, each max pooling that ReLU's backward
    ([Conv2D(3, 3, padding="same"), ReLU(), MaxPool2D(2), Conv2D(2, 2), ReLU(),
      MaxPool2D(2, strides=1), Flatten(), Dense(4)], (1, 9, 9)),
], ids=["valid", "same-stride2-rect", "same", "pointwise", "stride3-valid", "relu-fused"])
def test_conv2d_backward_matches_finite_differences(layers, shape):
    X, y = images(5, shape)
    err_p, err_x = check_against_fd(image_model(layers, shape), X, y)
    assert err_p < 1e-5 and err_x < 1e-5


@pytest.mark.parametrize("pool", [MaxPool2D(2), MaxPool2D(3, strides=2), MaxPool2D(2, strides=1),
                                  AvgPool2D(2), AvgPool2D(3, strides=2), GlobalAveragePooling2D()],
                         ids=["max2", "max3s2", "max2s1-overlap", "avg2", "avg3s2", "global-avg"])
def test_pooling_backward_matches_finite_differences(pool):
    shape = (3, 7, 6)
    X, y = images(4, shape)
    check_against_fd(image_model([pool, Dense(4)], shape), X, y)


def test_flatten_is_keras_order_and_identity():
    shape = (3, 2, 2)
    m = image_model([Flatten()], shape)
    X, y = images(3, shape)
    np.testing.assert_array_equal(m.decision_function(X), X)  # (H, W, C) memory order kept
    check_against_fd(m, X, np.minimum(y, 11))


@pytest.mark.parametrize("training", [True, False], ids=["batch-stats", "running-stats"])
@pytest.mark.parametrize("layers, shape", [
    ([Conv2D(5, 2), BatchNorm(epsilon=1e-3), ReLU(), Dense(6), BatchNorm(), Dense(4)], (4, 3, 3)),
    # each batch norm computes the ReLU after it; the ReLU's backward runs in the batch
    # norm's when a convolution follows, in the max pooling's when one follows
    ([Conv2D(3, 3, padding="same"), BatchNorm(), ReLU(), Conv2D(4, 2), BatchNorm(), ReLU(),
      MaxPool2D(2), Flatten(), Dense(4)], (2, 5, 5)),
], ids=["dense", "relu-fused"])
def test_batchnorm_backward_matches_finite_differences(training, layers, shape):
    X, y = images(6, shape)
    X = X * 3 + 1  # away from zero mean, unit variance
    m = image_model(layers, shape)
    # inference mode: running statistics are buffers, not parameters: their gradient is 0
    buffers = np.zeros(m.params_.size, bool)
    for layer, (c, _, _), offset, _ in m._built:
        if isinstance(layer, BatchNorm):
            buffers[offset + 2 * c:offset + 4 * c] = True
    err_p, err_x = check_against_fd(m, X, y, training=training, buffers=buffers)
    assert err_p < 1e-5 and err_x < 1e-5


def test_batchnorm_running_statistics_gradients_are_zero():
    shape = (2, 3, 3)
    X, y = images(6, shape)
    m = image_model([BatchNorm(), Dense(4)], shape)
    _, g, _ = m.gradient(X, y, training=True)
    np.testing.assert_array_equal(g[4:8], 0)  # running mean and variance are not trained
    assert np.abs(g[:4]).min() > 0


def test_study_network_has_126310_parameters():
    m = Sequential(study_cnn(), random_state=0).build(784)
    assert m.count_params() == 126_310
    assert [s for _, s, _ in m.summary()][-4] == (900, 1, 1)  # Flatten (900), as the study


# ---- against PyTorch -------------------------------------------------------------------
TORCH_NETS = {
    # ReLU before BatchNorm: a bias right before batch norm has a zero gradient, and Adam
    # turns that rounding noise into full steps, which no two implementations share
    "conv-bn-maxpool-stride2": ([Conv2D(4, 3, padding="same"), ReLU(), BatchNorm(), MaxPool2D(2),
                                 Conv2D(6, 3, strides=2), ReLU(), Flatten(), Dense(5)], (1, 12, 12)),
    "rect-same-avgpool-gap": ([Conv2D(3, (3, 2), strides=2, padding="same"), AvgPool2D(2, strides=1),
                               Conv2D(5, 1), ReLU(), GlobalAveragePooling2D(), Dense(5)], (2, 9, 9)),
}


@pytest.mark.parametrize("name", TORCH_NETS)
def test_cnn_loss_and_all_gradients_match_torch_autograd(name):
    layers, shape = TORCH_NETS[name]
    m = Sequential(layers, input_shape=shape, random_state=0).build(int(np.prod(shape)))
    assert gradients_match_torch(m, *images(7, shape)) > 0


def test_study_network_follows_torch_step_by_step():
    """The study's CNN from the same initial weights, 20 Adam steps (lr 1e-3, epsilon 1e-7,
    batches of 128 real images in order): every weight as torch.optim.Adam leaves it, so
    training follows PyTorch's step by step (further on, float rounding differences grow
    as in any chaotic training run)."""
    X, y = fmnist_c.load_sample()
    rows = np.random.default_rng(0).permutation(len(y))[:20 * 128]  # classes mixed in a batch
    X, y = (X.reshape(len(X), -1)[rows] / np.float32(255)).astype(np.float32), y[rows]
    m = Sequential(study_cnn(), optimizer=Adam(1e-3), random_state=0).build(784)
    torch, forward, params, _ = torch_net(m)
    opt = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    for start in range(0, len(y), 128):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(forward(torch.from_numpy(X[start:start + 128])),
                                          torch.from_numpy(y[start:start + 128])).backward()
        opt.step()
    m.fit(X, y, epochs=1, batch_size=128, shuffle=False, verbose=0)
    theirs = iter(params)
    for layer, shape, off, size in m._built:
        for a in layer._views(m.params_[off:off + size], shape):
            a = a.transpose(0, 3, 1, 2) if a.ndim == 4 else a
            np.testing.assert_allclose(a, next(theirs).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert next(theirs, None) is None


def test_adam_training_and_running_statistics_match_torch():
    """Three Adam steps on batch statistics: every weight and batch norm's running mean and
    (unbiased) running variance as torch.optim.Adam and torch.nn.BatchNorm2d leave them."""
    layers, shape = TORCH_NETS["conv-bn-maxpool-stride2"]
    m = Sequential(layers, input_shape=shape, optimizer=Adam(0.01, epsilon=1e-8),
                   random_state=0).build(int(np.prod(shape)))
    assert adam_matches_torch(m, *images(16, shape), lr=0.01, batch=16, epochs=3) == 10


# ---- augmentation ------------------------------------------------------------------------
def shifted(img, dy, dx):
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_augment_shift_is_a_zero_filled_translation_within_range():
    X = np.random.default_rng(0).uniform(0.1, 1, (300, 7, 6)).astype(np.float32)
    out = augment_images(X, shift=2, random_state=0)
    seen = set()
    for a, x in zip(out, X):
        hits = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                if np.array_equal(a, shifted(x, dy, dx))]
        assert len(hits) == 1
        seen.add(hits[0])
    assert len(seen) == 25  # every offset drawn


def test_augment_flip_mirrors_about_half_and_erase_zeroes_one_rectangle():
    X = np.random.default_rng(1).uniform(0.1, 1, (400, 8, 8, 2)).astype(np.float32)
    f = augment_images(X, flip=True, random_state=0)
    mirrored = np.array([np.array_equal(a, x[:, ::-1]) for a, x in zip(f, X)])
    assert all(m or np.array_equal(a, x) for m, a, x in zip(mirrored, f, X))
    assert 0.4 < mirrored.mean() < 0.6
    e = augment_images(X, erase=1.0, random_state=0)
    erased = 0
    for a, x in zip(e, X):
        zero = (a == 0).all(axis=2)
        np.testing.assert_array_equal(a[~zero], x[~zero])  # the rest untouched
        if zero.any():
            rows, cols = np.nonzero(zero)
            box = zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            assert box.all()  # one filled rectangle
            assert 0.02 * 64 * 0.5 <= box.size <= 0.33 * 64 * 1.5
            erased += 1
    assert erased > 200  # one attempt: rectangles that do not fit are skipped


def test_augment_is_seeded_and_checks_its_arguments():
    X = np.random.default_rng(2).random((20, 6, 6)).astype(np.float32)
    a = augment_images(X, shift=1, flip=True, erase=0.5, random_state=3)
    np.testing.assert_array_equal(a, augment_images(X, shift=1, flip=True, erase=0.5, random_state=3))
    assert not np.array_equal(a, augment_images(X, shift=1, flip=True, erase=0.5, random_state=4))
    with pytest.raises(ValueError, match="shift"):
        augment_images(X, shift=6)
    with pytest.raises(ValueError, match="erase"):
        augment_images(X, erase=1.5)
    with pytest.raises(ValueError, match="shift"):
        augment_images(X, shift=-1)
    with pytest.raises(ValueError, match="images"):
        augment_images(X.reshape(20, 36))


# ---- CNNClassifier -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_images(sample_split):
    s = sample_split
    f = lambda a: (a / np.float32(255)).astype(np.float32)  # noqa: E731
    return f(s.X_train[:600]), s.y_train[:600], f(s.X_val), s.y_val


TINY = [Conv2D(4, 3, activation="relu"), MaxPool2D(2), Conv2D(8, 3, activation="relu"),
        MaxPool2D(2), Flatten()]


def test_defaults_are_the_study_network_and_training(small_images):
    X, y, Xv, yv = small_images
    m = CNNClassifier(epochs=1, random_state=0).fit(X[:256], y[:256])
    assert m.count_params() == 126_310
    p = m.get_params()
    assert (p["optimizer"], p["learning_rate"], p["batch_size"], p["epochs"]) == ("adam", 1e-3, 128, 1)
    assert CNNClassifier().epochs == 50 and CNNClassifier().restore_best_weights


def test_fit_learns_and_keeps_the_best_validation_epoch(small_images):
    X, y, Xv, yv = small_images
    m = CNNClassifier(layers=TINY, epochs=6, batch_size=32, learning_rate=3e-3,
                      random_state=0).fit(X, y, validation_data=(Xv, yv))
    assert len(m.history_["val_accuracy"]) == 6
    assert m.best_epoch_ == 1 + int(np.argmax(m.history_["val_accuracy"]))
    assert m.score(Xv, yv) == pytest.approx(max(m.history_["val_accuracy"]))
    assert m.score(Xv, yv) > 0.6
    proba = m.predict_proba(Xv)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-5)


def test_image_layouts_give_identical_predictions(small_images):
    X, y, Xv, _ = small_images
    m = CNNClassifier(layers=TINY, epochs=1, random_state=0).fit(X[:128], y[:128])
    imgs = Xv[:50].reshape(-1, 28, 28)
    ref = m.predict_proba(imgs)
    for form in (imgs[:, :, :, None], imgs[:, None], imgs.reshape(50, 784),
                 np.asfortranarray(imgs), imgs.astype(np.float64)[:, ::1, ::1]):
        np.testing.assert_array_equal(m.predict_proba(form), ref)


def test_same_random_state_is_bit_identical_across_threads(small_images):
    X, y, _, _ = small_images
    kw = dict(layers=[Conv2D(6, 3, padding="same"), BatchNorm(), ReLU(), MaxPool2D(2), Dropout(0.2),
                      Flatten(), Dense(16, activation="relu")],
              epochs=2, batch_size=64, augment_shift=2, augment_flip=True, augment_erase=0.3,
              random_state=5)
    a = CNNClassifier(n_jobs=1, **kw).fit(X[:300], y[:300])
    b = CNNClassifier(n_jobs=2, **kw).fit(X[:300], y[:300])
    np.testing.assert_array_equal(a.model_.params_, b.model_.params_)
    c = CNNClassifier(**{**kw, "augment_flip": False}).fit(X[:300], y[:300])
    assert not np.array_equal(a.model_.params_, c.model_.params_)  # augmentation is applied


def test_save_load_pickle_and_predict_in_a_fresh_process(small_images, tmp_path):
    X, y, Xv, _yv = small_images
    m = CNNClassifier(layers=[Conv2D(4, 3), BatchNorm(), ReLU(), GlobalAveragePooling2D()],
                      epochs=2, random_state=0).fit(X[:200], y[:200], validation_data=(Xv, _yv))
    ref = m.predict_proba(Xv[:20])
    path = tmp_path / "cnn.npz"
    m.save(path)
    for other in (CNNClassifier.load(path), load_model(path), pickle.loads(pickle.dumps(m))):
        np.testing.assert_array_equal(other.predict_proba(Xv[:20]), ref)
        assert other.get_params()["layers"] == m.layers
        assert other.history_ == m.history_ and other.best_epoch_ == m.best_epoch_
    np.save(tmp_path / "x.npy", Xv[:20])
    script = textwrap.dedent(f"""
        import numpy as np
        from fmnist_c import CNNClassifier
        m = CNNClassifier.load({str(path)!r})
        print(m.predict(np.load({str(tmp_path / "x.npy")!r})).tolist())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, check=True).stdout
    assert out.strip() == str(ref.argmax(1).tolist())


def test_bad_input_and_settings(small_images):
    X, y, _, _ = small_images
    with pytest.raises(NotFittedError):
        CNNClassifier().predict(X[:2])
    with pytest.raises(ValueError, match="architecture"):
        CNNClassifier(architecture="vgg").fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="shift"):
        CNNClassifier(layers=TINY, augment_shift=28).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="erase"):
        CNNClassifier(layers=TINY, augment_erase=-0.1).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="larger than"):
        CNNClassifier(layers=[Conv2D(4, 29)]).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="image input"):
        Sequential([Dense(5), Conv2D(2, 1)]).build(784)
    with pytest.raises(TypeError, match="layer specs"):
        CNNClassifier(layers=["conv"]).fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="padding"):
        Conv2D(4, 3, padding="full")
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2D(4, (3, 3, 3))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm(momentum=1.0)
    m = CNNClassifier(layers=TINY, epochs=1, random_state=0).fit(X[:64], y[:64])
    with pytest.raises(ValueError, match="features"):
        m.predict(X.reshape(len(X), -1)[:3, :700])


def test_ctrl_c_stops_cnn_training_and_leaves_model_usable(tmp_path):
    script = textwrap.dedent("""
        import numpy as np
        from fmnist_c import CNNClassifier
        rng = np.random.default_rng(0)
        X = rng.random((2000, 28, 28), dtype=np.float32); y = rng.integers(0, 10, 2000)
        m = CNNClassifier(epochs=100000, random_state=0)
        print("ready", flush=True)
        try:
            m.fit(X, y, validation_data=(X[:200], y[:200]))
        except KeyboardInterrupt:
            print("interrupted", m.predict(X[:5]).shape, flush=True)
    """)
    out, elapsed = interrupt_after(script, tmp_path, 3.0)
    assert out.startswith("interrupted"), out
    assert "(5,)" in out
    assert elapsed < 5  # includes interpreter shutdown


@pytest.mark.full_data
def test_study_cnn_on_the_full_data(full_split):
    """Two epochs of the study's CNN on the study split already pass 0.85 (its 50-epoch
    run: 0.9092 printed, ours in benchmarks/README.md)."""
    s = full_split
    f = lambda a: (a / np.float32(255)).astype(np.float32)  # noqa: E731
    m = CNNClassifier(epochs=2, random_state=0).fit(f(s.X_train), s.y_train,
                                                    validation_data=(f(s.X_val), s.y_val))
    assert m.score(f(s.X_test), s.y_test) >= 0.85


# ---- the binding treats the program and the buffers as untrusted -------------------------
def _conv_reference(x, w, b, dy, stride, pad_h, pad_w):
    """float64 (y, dx, dw, db) of a channels-last convolution: every window of the zero-padded
    x, and the adjoint that adds each window's gradient back where it was read."""
    n, h, wd, _ = x.shape
    _, kh, kw, _ = w.shape
    oh, ow = dy.shape[1:3]
    below, right = max((oh - 1) * stride + kh - pad_h - h, 0), max((ow - 1) * stride + kw - pad_w - wd, 0)
    xp = np.pad(x.astype(np.float64), ((0, 0), (pad_h, below), (pad_w, right), (0, 0)))
    taps = [(a, c, np.s_[:, a:a + stride * (oh - 1) + 1:stride, c:c + stride * (ow - 1) + 1:stride])
            for a in range(kh) for c in range(kw)]
    win = np.stack([xp[s] for _, _, s in taps], axis=3)  # (n, oh, ow, kh*kw, C)
    w2 = w.astype(np.float64).reshape(len(w), kh * kw, -1)
    y = np.einsum("nijtc,ftc->nijf", win, w2) + b
    dw = np.einsum("nijf,nijtc->ftc", dy, win).reshape(w.shape)
    dwin = np.einsum("nijf,ftc->nijtc", dy, w2)
    dxp = np.zeros_like(xp)
    for t, (_, _, s) in enumerate(taps):
        dxp[s] += dwin[:, :, :, t]
    return y, dxp[:, pad_h:pad_h + h, pad_w:pad_w + wd], dw, dy.sum(axis=(0, 1, 2))


CONV_KERNELS = [k for k in ("portable", "avx2", "avx512") if k in FAST_KERNELS]


@pytest.mark.parametrize("kernel", CONV_KERNELS)
@pytest.mark.parametrize("in_c,filters,kh,kw,stride,pad,out", [
    (1, 16, 3, 3, 1, (0, 0), (26, 26)),   # the study network's first layer
    (1, 32, 3, 3, 1, (1, 1), (28, 28)),   # the improved network's ("same")
    (1, 5, 3, 2, 2, (1, 0), (14, 14)),    # filters not a multiple of 16, strided
    (1, 33, 5, 5, 1, (2, 2), (28, 28)),
    (1, 1, 1, 1, 1, (0, 0), (28, 28)),
    (1, 20, 3, 3, 3, (0, 0), (8, 8)),     # crops: the last input rows are never read
    (3, 7, 3, 3, 1, (1, 1), (28, 28)),    # im2col and the GEMM
])
def test_conv2d_matches_numpy_for_every_kernel_family(kernel, in_c, filters, kh, kw, stride, pad, out):
    """_core.conv2d's y, dx, dw and db against a float64 NumPy convolution, for each micro-
    kernel family of the single-channel direct path (and the GEMM path with 3 channels), on
    5 samples: float32 sums of at most ~4,000 terms, so a tolerance of 1e-4 relative to the
    result's scale."""
    rng = np.random.default_rng(filters)
    x = rng.normal(size=(5, 28, 28, in_c)).astype(np.float32)
    w = rng.normal(size=(filters, kh, kw, in_c)).astype(np.float32)
    b = rng.normal(size=filters).astype(np.float32)
    dy = rng.normal(size=(5, *out, filters)).astype(np.float32)
    got = _core.conv2d(x, w, b, dy, stride=stride, pad_h=pad[0], pad_w=pad[1], kernel=kernel)
    for name, g, r in zip(("y", "dx", "dw", "db"), got, _conv_reference(x, w, b, dy, stride, *pad)):
        assert g.shape == r.shape, name
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * np.abs(r).max(), err_msg=name)
    fastest = _core.conv2d(x, w, b, dy, stride=stride, pad_h=pad[0], pad_w=pad[1], nthreads=1)
    with_two = _core.conv2d(x, w, b, dy, stride=stride, pad_h=pad[0], pad_w=pad[1], nthreads=2)
    for one, two in zip(fastest, with_two):
        np.testing.assert_array_equal(one, two)
    y, dx, dw, db = _core.conv2d(x, w, b, dy, stride=stride, pad_h=pad[0], pad_w=pad[1],
                                 input_grad=False, nthreads=2)  # as a first layer trains
    assert dx is None
    for one, two in zip((y, dw, db), (with_two[0], *with_two[2:])):
        np.testing.assert_array_equal(one, two)


@pytest.mark.parametrize("kernel", CONV_KERNELS)
@pytest.mark.parametrize("n,size,in_c,filters,pad,out", [
    (5, (14, 14), 32, 64, (1, 1), (14, 14)),  # the improved network's second and third layers
    (5, (14, 14), 17, 20, (0, 0), (12, 12)),  # valid; channels and filters past a vector
    (1, (7, 5), 3, 5, (1, 1), (7, 5)),        # odd sides: the last tiles half outside
    (5, (7, 5), 33, 7, (0, 0), (5, 3)),
    (2, (9, 8), 2, 3, (0, 1), (7, 8)),        # padding on one side only
    (3, (8, 8), 4, 6, (2, 2), (5, 5)),        # crops: the last input rows are never read
    (1, (1, 1), 3, 4, (1, 1), (1, 1)),        # one pixel: a single tile, mostly padding
    (2, (6, 6), 1, 4, (1, 1), (6, 6)),        # one channel (left to choose: direct)
    (9, (28, 28), 40, 48, (1, 1), (28, 28)),  # one sample per chunk: groups of several chunks
])
def test_winograd_matches_numpy_and_im2col(kernel, n, size, in_c, filters, pad, out):
    """Winograd F(2x2, 3x3)'s y, dx, dw and db against the float64 NumPy convolution, for each
    family of its transforms: its transforms add and subtract up to 16 products per term
    (and halve weights), a little less exact than direct sums, so a tolerance of 1e-4
    relative to the result's scale (errors seen: below 1e-6). It agrees with im2col to the
    same tolerance, is what 'auto' runs for 32 channels or more, and gives bit-identical
    results on one thread and two."""
    rng = np.random.default_rng(in_c * 100 + filters)
    x = rng.normal(size=(n, *size, in_c)).astype(np.float32)
    w = rng.normal(size=(filters, 3, 3, in_c)).astype(np.float32)
    b = rng.normal(size=filters).astype(np.float32)
    dy = rng.normal(size=(n, *out, filters)).astype(np.float32)
    args = dict(pad_h=pad[0], pad_w=pad[1], kernel=kernel)
    got = _core.conv2d(x, w, b, dy, algorithm="winograd", **args)
    im2col = _core.conv2d(x, w, b, dy, algorithm="im2col", **args)
    for name, g, r, i in zip(("y", "dx", "dw", "db"), got, _conv_reference(x, w, b, dy, 1, *pad), im2col):
        assert g.shape == r.shape, name
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * np.abs(r).max(), err_msg=name)
        np.testing.assert_allclose(g, i, rtol=1e-4, atol=1e-4 * np.abs(r).max(), err_msg=name)
    auto = _core.conv2d(x, w, b, dy, **args)
    for g, a, i in zip(got, auto, im2col):
        np.testing.assert_array_equal(a, g if in_c >= 32 else i)
    one = _core.conv2d(x, w, b, dy, algorithm="winograd", nthreads=1, **args)
    two = _core.conv2d(x, w, b, dy, algorithm="winograd", nthreads=2, **args)
    for a, c in zip(one, two):
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("in_c, input_grad", [(1, False), (3, True), (32, True)],
                         ids=["direct", "im2col", "winograd"])
def test_conv2d_writes_into_the_outputs_it_is_given(in_c, input_grad):
    """out=(y, dx, dw, db) of an earlier call is overwritten whole (NaN left in it shows)
    and returned; wrong shapes, dtypes or a dx without input_grad are refused."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 6, 5, in_c)).astype(np.float32)
    w = rng.normal(size=(4, 3, 3, in_c)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    dy = rng.normal(size=(3, 6, 5, 4)).astype(np.float32)
    args = dict(pad_h=1, pad_w=1, input_grad=input_grad)
    fresh = _core.conv2d(x, w, b, dy, **args)
    out = tuple(None if a is None else np.full_like(a, np.nan) for a in fresh)
    got = _core.conv2d(x, w, b, dy, out=out, **args)
    for g, o, f in zip(got, out, fresh):
        assert g is o
        if f is not None:
            np.testing.assert_array_equal(g, f)
    bad = [out[:3], (out[0][:, :5], *out[1:]), (out[0].astype(np.float64), *out[1:]),
           (out[0], np.zeros_like(x), *out[2:]) if not input_grad else (out[0], None, *out[2:])]
    for o in bad:
        with pytest.raises((ValueError, TypeError)):  # TypeError: None where dx belongs
            _core.conv2d(x, w, b, dy, out=o, **args)


def test_a_short_last_batch_fits_the_workspace_of_a_full_one():
    """28 samples of 32 channels at 14x14 go through the 64-filter Winograd convolution in
    chunks of 4 (groups of 7, at most 6 fitting a chunk), the last 24 in chunks of 6: the
    workspace, sized for 28, must hold the larger chunks (the sanitizer build reads past it
    otherwise). The short batch trains as the same samples do alone."""
    layers = lambda: [Conv2D(64, 3, padding="same"), Flatten(), Dense(4)]  # noqa: E731
    X, y = images(52, (32, 14, 14))
    assert _core.conv_chunk(14, 14, 32, 3, 3, 64, 28) == 4 and _core.conv_chunk(14, 14, 32, 3, 3, 64, 24) == 6
    m = image_model(layers(), (32, 14, 14)).fit(X, y, batch_size=28, shuffle=False, verbose=0)
    alone = image_model(layers(), (32, 14, 14))
    alone.fit(X[:28], y[:28], batch_size=28, shuffle=False, verbose=0)
    alone.fit(X[28:], y[28:], batch_size=24, shuffle=False, verbose=0)
    np.testing.assert_array_equal(m.params_, alone.params_)


def test_winograd_is_only_forced_on_3x3_stride_1_windows():
    x, w, b, dy = (np.zeros(s, np.float32) for s in ((2, 6, 6, 2), (4, 3, 3, 2), (4,), (2, 2, 2, 4)))
    with pytest.raises(ValueError, match="winograd needs"):
        _core.conv2d(x, w, b, dy, stride=2, algorithm="winograd")
    with pytest.raises(ValueError, match="algorithm must be"):
        _core.conv2d(x, w, b, dy, algorithm="fft")


def test_conv2d_checks_its_arguments():
    x, w, b, dy = (np.zeros(s, np.float32) for s in ((2, 6, 6, 1), (4, 3, 3, 1), (4,), (2, 4, 4, 4)))
    with pytest.raises(ValueError, match="shapes must agree"):
        _core.conv2d(x, w, np.zeros(3, np.float32), dy)
    with pytest.raises(ValueError, match="padding"):
        _core.conv2d(x, w, b, dy, pad_h=3)
    with pytest.raises(ValueError, match="kernel must be"):
        _core.conv2d(x, w, b, dy, kernel="sse9")
    missing = [k for k in ("avx2", "avx512") if k not in FAST_KERNELS]
    for kernel in missing:
        with pytest.raises(ValueError, match="not available"):
            _core.conv2d(x, w, b, dy, kernel=kernel)


def test_a_1x1_convolution_that_crops_is_not_taken_for_pointwise():
    """A 1x1 stride-1 program row whose output is smaller than its input (no Python layer
    writes one; the binding must still compute it right): the crop, not the first pixels."""
    m = image_model([Conv2D(2, 1)], (1, 4, 4))
    m._program[0, 5:7] = 2  # out_h = out_w = 2
    m.n_outputs_ = 8
    X, y = images(5, (1, 4, 4))
    check_against_fd(m, X, np.minimum(y, 7))


def test_train_refuses_buffers_that_share_memory_and_absurd_batches():
    m = image_model([Conv2D(2, 3), MaxPool2D(2), Flatten()], (1, 6, 6))
    X, y = images(4, (1, 6, 6))
    size = _core.nn_workspace_size(m.params_, m._program, m._settings, 4)
    ws = np.zeros(size + 16 + m.params_.size, np.float32)
    start = (-ws.ctypes.data % 64) // 4
    common = dict(params=m.params_, grads=np.zeros_like(m.params_), program=m._program,
                  settings=m._settings, x=X, y=y, order=np.arange(4), lr=np.ones(1, np.float32),
                  batch_size=4, optimizer=0, momentum=0.0, nesterov=False, beta1=0.0, beta2=0.0,
                  epsilon=1.0, weight_decay=0.0, step=0, seed=0)
    params = ws[start:start + m.params_.size]  # the workspace below starts on them
    params[...] = m.params_
    with pytest.raises(ValueError, match="params and workspace share memory"):
        _core.nn_train(state=np.zeros_like(m.params_), workspace=ws[start:start + size],
                       **{**common, "params": params})
    grads = np.zeros_like(m.params_)
    with pytest.raises(ValueError, match="grads and state share memory"):
        _core.nn_train(state=grads, **{**common, "grads": grads})
    with pytest.raises(ValueError, match="batch_size"):
        _core.nn_train(state=np.zeros_like(m.params_), **{**common, "batch_size": 2**62,
                                                          "lr": np.ones(0, np.float32)})
    with pytest.raises(ValueError, match="sizes"):
        _core.conv_chunk(2**40, 2**40, 1, 1, 1, 1, 1)
