"""Residual blocks (fmnist_c.nn.Residual; the join in csrc/nn/nn.c, its checks in program.c).

The join's forward and backward against central finite differences of the float64
interpreter (nn_reference.py), and where PyTorch is installed a residual CNN's loss, all
gradients, Adam steps and running statistics against torch; then thread-count
independence, save/load, ONNX export and the checks of the layer's arguments and rows.
"""
import pickle

import numpy as np
import pytest

from fmnist_c import CNNClassifier
from fmnist_c import _core
from fmnist_c.nn import (Adam, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                         GlobalAveragePooling2D, MaxPool2D, ReLU, Residual, Sequential,
                         load_model)
from nn_reference import check_against_fd
from test_cnn import image_model, images
from torch_reference import adam_matches_torch, gradients_match_torch


def basic_block(filters, strides=1):
    """ResNet's basic block: conv-bn-relu-conv-bn, then the sum's ReLU after the block."""
    return [Residual([Conv2D(filters, 3, strides=strides, padding="same"), BatchNorm(), ReLU(),
                      Conv2D(filters, 3, padding="same"), BatchNorm()]), ReLU()]


NETS = {
    # identity shortcut; the ReLU after the join is computed by the join
    "identity": ([Residual([Conv2D(3, 3, padding="same"), ReLU(), Conv2D(3, 3, padding="same")]),
                  ReLU(), Flatten(), Dense(4)], (3, 5, 5)),
    # projection with stride 2 (odd side: 7 -> 4), its shortcut the output of a fused ReLU
    "projection-stride2": ([Conv2D(3, 3, padding="same"), ReLU(), *basic_block(4, strides=2),
                            MaxPool2D(2), Flatten(), Dense(4)], (2, 7, 7)),
    # flat blocks; the first one's shortcut is the network's input, its body starts with a ReLU
    "flat": ([Residual([ReLU(), Dense(5)]), Residual([Dense(6), ReLU()]), Dense(4)], (5, 1, 1)),
    # nested blocks; a single-channel projection (the direct kernel); a block whose
    # shortcut is a ReLU's output that a max pooling reads too
    "nested": ([Residual([Conv2D(4, 1), ReLU(), Residual([Conv2D(4, 3, padding="same"), ReLU()]),
                          Conv2D(3, 3, strides=2, padding="same")]), ReLU(),
                Residual([MaxPool2D(2, strides=1), Conv2D(3, 2, padding="same")]), Flatten(),
                Dense(4)], (1, 6, 6)),
}


def bn_buffers(m):
    """Where batch norm's running statistics are: not trained, their gradient is 0."""
    buffers = np.zeros(m.params_.size, bool)
    for layer, (c, _, _), offset, _ in m._built:
        if isinstance(layer, BatchNorm):
            buffers[offset + 2 * c:offset + 4 * c] = True
    return buffers


@pytest.mark.parametrize("training", [True, False], ids=["batch-stats", "running-stats"])
@pytest.mark.parametrize("name", NETS)
def test_residual_backward_matches_finite_differences(name, training):
    layers, shape = NETS[name]
    X, y = images(5, shape)
    m = image_model(layers, shape)
    err_p, err_x = check_against_fd(m, X, y, training=training, buffers=bn_buffers(m))
    assert err_p < 1e-5 and err_x < 1e-5


def test_program_rows_of_a_residual_block():
    m = image_model(NETS["projection-stride2"][0], (2, 7, 7))
    join = m._program[m._program[:, _core.NN_COLUMNS["type"]] == _core.LAYER_TYPES["residual"]]
    assert join.shape[0] == 1
    # (C, H, W) in = out = (4, 4, 4); 1x1 window, stride 2; the shortcut is row 2's input
    assert join[0, 1:7].tolist() == [4, 4, 4, 4, 4, 4]
    assert join[0, 8:14].tolist() == [1, 1, 2, 0, 0, 2]
    assert m.summary()[7][2] == 4 * (3 + 1)  # the projection's weights and biases
    assert [w.shape for w in m.get_weights()][14:16] == [(4, 1, 1, 3), (4,)]


# ---- against PyTorch -------------------------------------------------------------------
TORCH_NET = ([Conv2D(8, 3, padding="same"), ReLU(),
              Residual([Conv2D(8, 3, padding="same"), ReLU(), BatchNorm(),
                        Conv2D(8, 3, padding="same")]), ReLU(),
              Residual([Conv2D(16, 3, strides=2, padding="same"), ReLU(), BatchNorm(),
                        Conv2D(16, 3, padding="same")]), ReLU(),
              GlobalAveragePooling2D(), Dense(5)], (1, 10, 10))


def test_residual_cnn_loss_and_all_gradients_match_torch_autograd():
    layers, shape = TORCH_NET
    m = Sequential(layers, input_shape=shape, random_state=0).build(int(np.prod(shape)))
    # 5 convolutions, a projection, 2 batch norms and Dense: weights and biases
    assert gradients_match_torch(m, *images(7, shape)) == 18


def test_residual_adam_training_and_running_statistics_match_torch():
    """Four Adam steps on batch statistics: every weight (the projection's too) and batch
    norm's running statistics as torch.optim.Adam and torch.nn.BatchNorm2d leave them."""
    layers, shape = TORCH_NET
    m = Sequential(layers, input_shape=shape, optimizer=Adam(0.01, epsilon=1e-8),
                   random_state=0).build(int(np.prod(shape)))
    assert adam_matches_torch(m, *images(32, shape), lr=0.01, batch=8, epochs=1) == 22


# ---- training, persistence, export -------------------------------------------------------
RESNET = [Conv2D(16, 3, padding="same"), BatchNorm(), ReLU(), *basic_block(16), Dropout(0.1),
          *basic_block(32, strides=2), GlobalAveragePooling2D()]


@pytest.fixture(scope="module")
def small_images(sample_split):
    s = sample_split
    f = lambda a: (a / np.float32(255)).astype(np.float32)  # noqa: E731
    return f(s.X_train[:300]), s.y_train[:300], f(s.X_val[:50]), s.y_val[:50]


def test_residual_training_is_bit_identical_across_threads(small_images):
    X, y, _, _ = small_images
    kw = dict(layers=RESNET, epochs=1, batch_size=64, augment_shift=2, augment_erase=0.3,
              random_state=5)
    a = CNNClassifier(n_jobs=1, **kw).fit(X, y)
    b = CNNClassifier(n_jobs=2, **kw).fit(X, y)
    np.testing.assert_array_equal(a.model_.params_, b.model_.params_)
    np.testing.assert_array_equal(a.predict_proba(X[:50]), b.predict_proba(X[:50]))


def test_residual_network_saves_loads_and_pickles(small_images, tmp_path):
    X, y, Xv, yv = small_images
    m = CNNClassifier(layers=RESNET, epochs=1, random_state=0).fit(X, y, validation_data=(Xv, yv))
    ref = m.predict_proba(Xv)
    m.save(tmp_path / "resnet.npz")
    for other in (CNNClassifier.load(tmp_path / "resnet.npz"), load_model(tmp_path / "resnet.npz"),
                  pickle.loads(pickle.dumps(m))):
        np.testing.assert_array_equal(other.predict_proba(Xv), ref)
        assert other.get_params()["layers"] == m.layers
    net = Sequential(NETS["nested"][0], input_shape=(1, 6, 6), random_state=0)
    net.fit(*images(20, (1, 6, 6)), verbose=0)
    net.save(tmp_path / "seq.npz")
    again = Sequential.load(tmp_path / "seq.npz")
    assert again.layers == net.layers
    X6 = images(8, (1, 6, 6))[0]
    np.testing.assert_array_equal(again.predict_proba(X6), net.predict_proba(X6))


@pytest.mark.parametrize("name", ["resnet", "flat-after-gap"])
def test_residual_network_exports_to_onnx(small_images, name):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    X, y, Xv, _ = small_images
    layers = RESNET if name == "resnet" else [
        Conv2D(8, 3, strides=2, activation="relu"), GlobalAveragePooling2D(),
        Residual([Dense(8), ReLU()]), Residual([Dense(12), BatchNorm(), ReLU()])]
    m = CNNClassifier(layers=layers, epochs=1, random_state=0).fit(X, y)
    session = ort.InferenceSession(m.to_onnx().SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    labels, proba = session.run(None, {"input": Xv.reshape(len(Xv), -1)})
    np.testing.assert_allclose(proba, m.predict_proba(Xv), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(labels, m.predict(Xv))


# ---- bad input -------------------------------------------------------------------------
def test_residual_arguments_are_checked():
    with pytest.raises(ValueError, match="at least one layer"):
        Residual([])
    with pytest.raises(TypeError, match="layer specs"):
        Residual([Conv2D(4, 3), "relu"])
    with pytest.raises(ValueError, match="no strided 1x1 projection"):  # 6x6 -> 4x4
        Sequential([Residual([Conv2D(4, 3)])], input_shape=(1, 6, 6)).build(36)
    with pytest.raises(ValueError, match="an image or keep it flat"):
        Sequential([Residual([Flatten(), Dense(4)])], input_shape=(1, 6, 6)).build(36)
    with pytest.raises(ValueError, match="an image or keep it flat"):
        Sequential([Residual([GlobalAveragePooling2D()])], input_shape=(2, 3, 3)).build(18)


@pytest.mark.parametrize("column, value", [
    ("skip", 4),    # the shortcut must be an earlier layer's input
    ("skip", -1),
    ("kh", 2),      # KH: 0 (identity) or 1 (projection)
    ("kh", 0),      # identity where the shapes differ
    ("stride", 3),  # a stride that does not map 7x7 to 4x4
    ("pad_h", 1),   # projections have no padding
    ("out_c", 5),   # a join keeps its input's shape
])
def test_the_binding_checks_residual_rows(column, value):
    layers, shape = NETS["projection-stride2"]
    m = image_model(layers, shape)
    X, _ = images(3, shape)
    bad = m._program.copy()
    row = int(np.flatnonzero(bad[:, _core.NN_COLUMNS["type"]] == _core.LAYER_TYPES["residual"])[0])
    bad[row, _core.NN_COLUMNS[column]] = value
    with pytest.raises(ValueError, match=f"invalid network program at layer {row}"):
        _core.nn_predict(m.params_, bad, m._settings, X)


def test_resnet_architecture(small_images):
    """CNNClassifier(architecture="resnet"): resnet_cnn's blocks (projections 32 -> 64 and
    64 -> 128 with stride 2), 364,938 parameters for 10 classes; it trains and predicts."""
    X, y, Xv, _ = small_images
    m = CNNClassifier(architecture="resnet", epochs=1, batch_size=32, random_state=0)
    m.fit(X[:64], y[:64])
    assert m.count_params() == 364_938
    joins = [layer for layer, _, _ in m.model_.summary() if type(layer).__name__ == "_Join"]
    assert [layer.source for layer in joins] == [(32, 14, 14), (64, 14, 14), (64, 14, 14)]
    assert m.predict_proba(Xv[:5]).shape == (5, 10)
