"""Training ingredients of the networks: label smoothing in the loss, weight averaging
(exponential moving average, then batch norm's statistics recomputed) and test-time
augmentation by shifted copies. Checked against torch where PyTorch is installed
(CrossEntropyLoss(label_smoothing), torch.optim.Adam with a moving average, BatchNorm's
cumulative running statistics as torch.optim.swa_utils.update_bn computes them)."""
import numpy as np
import pytest

from fmnist_c import CNNClassifier, MLPClassifier
from fmnist_c import _core
from fmnist_c.nn import (Adam, BatchNorm, Conv2D, Dropout, GlobalAveragePooling2D, MaxPool2D,
                         ReLU, Residual, Sequential)
from test_cnn import TORCH_NETS, images, shifted
from test_residual import TORCH_NET
from torch_reference import adam_matches_torch, gradients_match_torch, torch_net


def built(layers, shape, **kw):
    return Sequential(layers, input_shape=shape, random_state=0, **kw).build(int(np.prod(shape)))


# ---- label smoothing -------------------------------------------------------------------
@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_loss_and_gradients_match_torch(smoothing):
    layers, shape = TORCH_NET
    m = built(layers, shape, label_smoothing=smoothing)
    assert gradients_match_torch(m, *images(7, shape)) == 18


def test_label_smoothing_training_matches_torch_and_categorical_targets():
    layers, shape = TORCH_NETS["conv-bn-maxpool-stride2"]
    m = built(layers, shape, optimizer=Adam(0.01, epsilon=1e-8), label_smoothing=0.2)
    X, y = images(16, shape)
    assert adam_matches_torch(m, X, y, lr=0.01, batch=8, epochs=2) == 10
    # the same as training on the smoothed rows (1 - e) onehot + e / k as given targets
    rows = (np.eye(5, dtype=np.float32)[y] * np.float32(0.8) + np.float32(0.2 / 5))
    other = built(layers, shape, optimizer=Adam(0.01, epsilon=1e-8),
                  loss="categorical_crossentropy")
    other.fit(X, rows, epochs=2, batch_size=8, shuffle=False, verbose=0)
    np.testing.assert_array_equal(other.params_, m.params_)
    # validation and evaluate score plain cross-entropy
    plain = built(layers, shape)
    plain.params_[...] = m.params_
    assert m.evaluate(X, y) == plain.evaluate(X, y)


# ---- weight averaging ------------------------------------------------------------------
def test_moving_average_of_weights_matches_torch():
    """Adam steps and, after each, avg = m avg + (1 - m) w on torch's side: the weights a fit
    with ema_momentum ends with (a network without batch norm: nothing recomputed)."""
    layers, shape = TORCH_NETS["rect-same-avgpool-gap"]
    m = built(layers, shape, optimizer=Adam(0.01, epsilon=1e-8), ema_momentum=0.7)
    assert adam_matches_torch(m, *images(24, shape), lr=0.01, batch=6, epochs=2) == 6


def test_batchnorm_refresh_matches_torch_cumulative_statistics():
    """_core.nn_refresh_batchnorm against torch's BatchNorm2d with momentum None (the
    cumulative average torch.optim.swa_utils.update_bn sets up) over the same batches; the
    trained weights stay as they were."""
    torch = pytest.importorskip("torch")
    layers, shape = TORCH_NET
    m = built(layers, shape)
    X, _ = images(30, shape)
    before = m.params_.copy()
    _core.nn_refresh_batchnorm(m.params_, m._program, m._settings, X, 8)
    _, forward, _, bns = torch_net(Sequential(layers, input_shape=shape, random_state=0)
                                   .build(int(np.prod(shape))))
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    with torch.no_grad():
        for start in range(0, 30, 8):
            forward(torch.from_numpy(X[start:start + 8]))
    stats = np.zeros(m.params_.size, bool)
    theirs = iter(bns)
    for layer, (c, _, _), off, _ in m._built:
        if isinstance(layer, BatchNorm):
            bn = next(theirs)
            np.testing.assert_allclose(m.params_[off + 2 * c:off + 3 * c],
                                       bn.running_mean.numpy(), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(m.params_[off + 3 * c:off + 4 * c],
                                       bn.running_var.numpy(), rtol=1e-4, atol=1e-6)
            stats[off + 2 * c:off + 4 * c] = True
    np.testing.assert_array_equal(m.params_[~stats], before[~stats])
    assert not np.array_equal(m.params_[stats], before[stats])


def test_fit_with_averaging_ends_on_the_average_with_refreshed_statistics():
    """The weights after fit are the average; batch norm's statistics are those the refresh
    computes for them over X, with dropout off (not the average's own)."""
    shape = (1, 8, 8)
    layers = [Conv2D(6, 3, padding="same"), BatchNorm(), ReLU(), Dropout(0.3), MaxPool2D(2),
              GlobalAveragePooling2D()]
    X, y = images(40, shape)
    m = built(layers, shape, optimizer=Adam(0.01), ema_momentum=0.8)
    m.fit(X, y, epochs=2, batch_size=10, verbose=0)
    again = m.params_.copy()
    _core.nn_refresh_batchnorm(again, m._program, m._settings, X, 10)
    np.testing.assert_array_equal(again, m.params_)
    raw = built(layers, shape, optimizer=Adam(0.01))
    raw.fit(X, y, epochs=2, batch_size=10, verbose=0)
    assert not np.allclose(raw.params_, m.params_)


def test_ingredients_are_bit_identical_across_threads(sample_split):
    X = (sample_split.X_train[:256] / np.float32(255)).astype(np.float32)
    y = sample_split.y_train[:256]
    kw = dict(layers=[Conv2D(8, 3, padding="same"), BatchNorm(), ReLU(), MaxPool2D(2),
                      Residual([Conv2D(8, 3, padding="same"), BatchNorm(), ReLU()]),
                      Dropout(0.2), GlobalAveragePooling2D()],
              epochs=2, batch_size=64, label_smoothing=0.1, ema_momentum=0.9, tta_shift=1,
              restore_best_weights=False, random_state=3)
    a = CNNClassifier(n_jobs=1, **kw).fit(X, y)
    b = CNNClassifier(n_jobs=2, **kw).fit(X, y)
    np.testing.assert_array_equal(a.model_.params_, b.model_.params_)
    np.testing.assert_array_equal(a.predict_proba(X[:40]), b.predict_proba(X[:40]))


def test_averaging_does_not_combine_with_restoring_the_best_epoch():
    X, y = images(40, (1, 6, 6))
    with pytest.raises(ValueError, match="ema_momentum and restore_best_weights"):
        MLPClassifier(hidden_layer_sizes=(8,), ema_momentum=0.9, epochs=1).fit(
            X, y, validation_data=(X, y))


# ---- test-time augmentation ------------------------------------------------------------
def test_test_time_shifts_average_the_shifted_copies(sample_split):
    X = (sample_split.X_train[:200] / np.float32(255)).astype(np.float32)
    y = sample_split.y_train[:200]
    m = CNNClassifier(layers=[Conv2D(4, 3, activation="relu"), MaxPool2D(2)], epochs=1,
                      tta_shift=2, random_state=0).fit(X, y)
    imgs = X[:30].reshape(-1, 28, 28)
    copies = [np.stack([shifted(i, dy, dx) for i in imgs])
              for dy, dx in ((0, 0), (-2, 0), (2, 0), (0, -2), (0, 2))]
    ref = np.mean([m.model_.predict_proba(c.reshape(30, -1)) for c in copies], axis=0)
    proba = m.predict_proba(imgs)
    np.testing.assert_allclose(proba, ref, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(m.predict(imgs), m.classes_[proba.argmax(1)])
    np.testing.assert_allclose(m.decision_function(imgs), np.log(proba), rtol=1e-6)
    m.set_params(tta_shift=0)
    np.testing.assert_array_equal(m.predict_proba(imgs), m.model_.predict_proba(X[:30]))
    m.set_params(tta_shift=2)
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")  # the export averages the same copies
    label, p = ort.InferenceSession(m.to_onnx(input_shape=(28, 28)).SerializeToString()).run(
        None, {"input": imgs})
    np.testing.assert_allclose(p, proba, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(label, m.predict(imgs))
