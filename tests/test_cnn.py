"""Convolutional layers (csrc/conv.c, batch norm in layers.c, augment.c) and CNNClassifier.

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

from fmnist_c import CNNClassifier, NotFittedError
from fmnist_c.nn import (Adam, AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                         GlobalAveragePooling2D, MaxPool2D, ReLU, Sequential, augment_images,
                         improved_cnn, load_model, study_cnn)
from conftest import interrupt_after
from nn_reference import check_against_fd


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
], ids=["valid", "same-stride2-rect", "same", "pointwise", "stride3-valid"])
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
def test_batchnorm_backward_matches_finite_differences(training):
    shape = (4, 3, 3)
    X, y = images(6, shape)
    X = X * 3 + 1  # away from zero mean, unit variance
    m = image_model([Conv2D(5, 2), BatchNorm(epsilon=1e-3), ReLU(), Dense(6), BatchNorm(), Dense(4)],
                    shape)
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
    assert [s for _, s, _ in m.summary()][-4] == (900, 1, 1)  # Flatten (900) as DESIGN.md


# ---- against PyTorch -------------------------------------------------------------------
def torch_net(m):
    """The torch twin of a Sequential of Conv2D/BatchNorm/ReLU/MaxPool2D/AvgPool2D/
    GlobalAveragePooling2D/Flatten/Dense with the same weights, NCHW inside, flattening in
    our (H, W, C) order."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    steps, params, bns = [], [], []
    for layer, shape, offset, size in m._built:
        views = layer._views(m.params_[offset:offset + size], shape)
        if isinstance(layer, Conv2D):
            w = torch.tensor(views[0].transpose(0, 3, 1, 2).copy(), requires_grad=True)
            b = torch.tensor(views[1].copy(), requires_grad=True)
            kh, kw, s, ph, pw = layer._window(shape)
            oh, ow = layer.output_shape(shape)[1:]
            pad = (pw, max((ow - 1) * s + kw - pw - shape[2], 0),
                   ph, max((oh - 1) * s + kh - ph - shape[1], 0))
            steps.append(lambda x, w=w, b=b, s=s, pad=pad: F.conv2d(F.pad(x, pad), w, b, stride=s))
            params += [w, b]
        elif isinstance(layer, BatchNorm):
            bn = torch.nn.BatchNorm2d(shape[0], eps=layer.epsilon, momentum=1 - layer.momentum)
            with torch.no_grad():
                for t, v in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), views):
                    t.copy_(torch.from_numpy(v.copy()))
            steps.append(lambda x, bn=bn: bn(x))
            params += [bn.weight, bn.bias]
            bns.append(bn)
        elif isinstance(layer, ReLU):
            steps.append(F.relu)
        elif isinstance(layer, (MaxPool2D, GlobalAveragePooling2D)):
            kh, kw, s, _, _ = layer._window(shape)
            pool = F.max_pool2d if type(layer) is MaxPool2D else F.avg_pool2d
            steps.append(lambda x, pool=pool, k=(kh, kw), s=s: pool(x, k, s))
        elif isinstance(layer, Flatten):
            steps.append(lambda x: x.permute(0, 2, 3, 1).reshape(len(x), -1, 1, 1))
        elif isinstance(layer, Dense):
            w = torch.tensor(views[0].copy(), requires_grad=True)
            b = torch.tensor(views[1].copy(), requires_grad=True)
            steps.append(lambda x, w=w, b=b: (x.permute(0, 2, 3, 1).reshape(len(x), -1) @ w.T
                                              + b)[:, :, None, None])
            params += [w, b]
        else:
            raise AssertionError(layer)

    def forward(x):
        c, h, w = m.input_shape_
        x = x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)
        for step in steps:
            x = step(x)
        return x.reshape(len(x), -1)
    return torch, forward, params, bns


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
    X, y = images(7, shape)
    torch, forward, params, _ = torch_net(m)
    xt = torch.from_numpy(X).requires_grad_(True)
    lt = torch.nn.functional.cross_entropy(forward(xt), torch.from_numpy(y))
    lt.backward()
    loss, g, dx = m.gradient(X, y, training=True)
    np.testing.assert_allclose(loss, lt.item(), rtol=1e-5)
    mine = [v for layer, shape, off, size in m._built
            for v in layer._views(g[off:off + size], shape)[:2]]
    ref = [p.grad.numpy() for p in params]
    assert len(mine) == len(ref)
    for a, b in zip(mine, ref):
        a = a.transpose(0, 3, 1, 2) if a.ndim == 4 else a
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_adam_training_and_running_statistics_match_torch():
    """Three Adam steps on batch statistics: every weight and batch norm's running mean and
    (unbiased) running variance as torch.optim.Adam and torch.nn.BatchNorm2d leave them."""
    layers, shape = TORCH_NETS["conv-bn-maxpool-stride2"]
    m = Sequential(layers, input_shape=shape, optimizer=Adam(0.01, epsilon=1e-8),
                   random_state=0).build(int(np.prod(shape)))
    X, y = images(16, shape)
    torch, forward, params, bns = torch_net(m)
    opt = torch.optim.Adam(params, lr=0.01, eps=1e-8)
    for _ in range(3):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(forward(torch.from_numpy(X)), torch.from_numpy(y)).backward()
        opt.step()
    m.fit(X, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    theirs, bn, compared = iter(params), iter(bns), 0
    for layer, shape, off, size in m._built:
        if not size:
            continue
        ref = [next(theirs), next(theirs)]
        if isinstance(layer, BatchNorm):
            b = next(bn)
            ref += [b.running_mean, b.running_var]
        for a, t in zip(layer._views(m.params_[off:off + size], shape), ref):
            a = a.transpose(0, 3, 1, 2) if a.ndim == 4 else a
            np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-4, atol=1e-5)
            compared += 1
    assert compared == 10
