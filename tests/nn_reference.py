"""A float64 NumPy interpreter of the C network program (fmnist_c.nn), and the finite-
difference checks built on it. Independent of the C code: it reads only the program rows
(csrc/nn/nn.h's columns) and the flat parameter array, with samples stored (H, W, C)."""
import numpy as np

# program columns (csrc/nn/nn.h enum fm_nn_column) and layer codes (enum fm_layer_type)
TYPE, IN_C, IN_H, IN_W, OUT_C, OUT_H, OUT_W, PARAM, KH, KW, STRIDE, PAD_H, PAD_W, SKIP = range(14)
DENSE, RELU, DROPOUT, CONV2D, MAXPOOL, AVGPOOL, FLATTEN, BATCHNORM, RESIDUAL = range(1, 10)


def _windows(h, row):
    """(n, out_h, out_w, kh, kw, C) view of every window of h (n, H, W, C), zero padded."""
    kh, kw, s, ph, pw = row[KH], row[KW], row[STRIDE], row[PAD_H], row[PAD_W]
    oh, ow = row[OUT_H], row[OUT_W]
    below = max((oh - 1) * s + kh - ph - h.shape[1], 0)
    right = max((ow - 1) * s + kw - pw - h.shape[2], 0)
    hp = np.pad(h, ((0, 0), (ph, below), (pw, right), (0, 0)))
    out = np.empty((h.shape[0], oh, ow, kh, kw, h.shape[3]))
    for a in range(kh):
        for b in range(kw):
            out[:, :, :, a, b, :] = hp[:, a:a + s * (oh - 1) + 1:s, b:b + s * (ow - 1) + 1:s, :]
    return out


def ref_forward(model, params, X, masks=None, training=False):
    """Logits of `model`'s program in float64; masks[i] multiplies dropout layer i; batch
    norm on batch statistics when training, else on its running statistics."""
    n = X.shape[0]
    h = X.astype(np.float64)
    inputs = []  # each layer's input, (n, H, W, C): residual joins add one of them
    for i, row in enumerate(model._program):
        code, off = row[TYPE], row[PARAM]
        c, ih, iw = row[IN_C], row[IN_H], row[IN_W]
        h = h.reshape(n, ih, iw, c)
        inputs.append(h)
        if code == DENSE:
            units, fan_in = row[OUT_C], c * ih * iw
            W = params[off:off + units * fan_in].reshape(units, fan_in)
            h = h.reshape(n, -1) @ W.T + params[off + units * fan_in:off + units * fan_in + units]
        elif code == CONV2D:
            f, kh, kw = row[OUT_C], row[KH], row[KW]
            W = params[off:off + f * kh * kw * c].reshape(f, kh, kw, c)
            b = params[off + f * kh * kw * c:off + f * kh * kw * c + f]
            h = np.einsum("nijabc,fabc->nijf", _windows(h, row), W) + b
        elif code == MAXPOOL:
            h = _windows(h, row).max(axis=(3, 4))
        elif code == AVGPOOL:
            h = _windows(h, row).mean(axis=(3, 4))
        elif code == RELU:
            h = np.maximum(h, 0)
        elif code == DROPOUT and masks is not None and i in masks:
            h = h * masks[i].reshape(h.shape)
        elif code == RESIDUAL:
            s = inputs[row[SKIP]]
            if row[KH] == 1:  # the projection: a 1x1 convolution with the stride
                f, sc = row[OUT_C], s.shape[3]
                W = params[off:off + f * sc].reshape(f, sc)
                s = s[:, ::row[STRIDE], ::row[STRIDE], :] @ W.T + params[off + f * sc:off + f * sc + f]
            h = h + s
        elif code == BATCHNORM:
            gamma, beta, rm, rv = params[off:off + 4 * c].reshape(4, c)
            eps = model._settings[i, 1]
            flat = h.reshape(-1, c)
            mean, var = (flat.mean(0), flat.var(0)) if training else (rm, rv)
            h = gamma * (h - mean) / np.sqrt(var + eps) + beta
    return h.reshape(n, -1)


def ref_loss(logits, T, sw=None):
    """Mean (weighted) softmax cross-entropy against target rows T, float64."""
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    per = -(T * logp).sum(1)
    return (per if sw is None else per * sw).sum() / len(T)


def central_diff(f, v, h=1e-6):
    g = np.zeros_like(v)
    for j in range(v.size):
        up, dn = v.copy(), v.copy()
        up.flat[j] += h
        dn.flat[j] -= h
        g.flat[j] = (f(up) - f(dn)) / (2 * h)
    return g


def onehot(y, k):
    return np.eye(k, dtype=np.float32)[y]


def check_against_fd(model, X, y, sw=None, masks=None, training=False, buffers=None):
    """The C loss, parameter and input gradients against the float64 reference and its
    central differences; returns the largest parameter and input errors. `buffers` marks
    parameters that are not trained (batch norm's running statistics): their gradient must
    be 0."""
    k = model.n_outputs_
    T = onehot(y, k)
    loss, g, dx = model.gradient(X, y, sample_weight=sw, training=training)
    p64, X64 = model.params_.astype(np.float64), X.astype(np.float64)
    sw64 = None if sw is None else sw.astype(np.float64)

    def f(p, x):
        return ref_loss(ref_forward(model, p, x, masks, training), T, sw64)

    np.testing.assert_allclose(loss, f(p64, X64), rtol=1e-5)
    fd_p = central_diff(lambda p: f(p, X64), p64)
    if buffers is not None:
        fd_p[buffers] = 0.0
    fd_x = central_diff(lambda x: f(p64, x), X64)
    err_p = np.abs(g - fd_p).max() if g.size else 0.0
    err_x = np.abs(dx - fd_x).max()
    if g.size:
        np.testing.assert_allclose(g, fd_p, rtol=1e-4, atol=2e-6)
    np.testing.assert_allclose(dx, fd_x, rtol=1e-4, atol=2e-6)
    return err_p, err_x
