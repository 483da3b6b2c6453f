"""PyTorch twins of our networks for the tests: torch_net builds one on the same weights,
gradients_match_torch and adam_matches_torch compare a network's gradients and Adam steps
with torch's. Each skips its test where torch is not installed."""
import numpy as np
import pytest

from fmnist_c.nn import BatchNorm, Conv2D, Dense, Flatten, GlobalAveragePooling2D, MaxPool2D, ReLU
from fmnist_c.nn.layers import _Join


def torch_net(m):
    """The torch twin of a Sequential of Conv2D/BatchNorm/ReLU/MaxPool2D/AvgPool2D/
    GlobalAveragePooling2D/Flatten/Dense/Residual with the same weights, NCHW inside,
    flattening in our (H, W, C) order."""
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
        elif isinstance(layer, _Join):  # adds the input of the step `depth` steps up
            w = b = None
            if views:
                w = torch.tensor(views[0][:, 0, 0, :].copy(), requires_grad=True)
                b = torch.tensor(views[1].copy(), requires_grad=True)
                params += [w, b]

            # the 1x1 projection as a product (oneDNN's 1x1 strided weight gradient crashed
            # in torch 2.13 with the system's libgomp loaded first)
            def join(x, seen, d=layer.depth, w=w, b=b, s=layer._stride(shape)):
                short = seen[-1 - d]
                if w is not None:
                    short = torch.einsum("nchw,fc->nfhw", short[:, :, ::s, ::s], w) + b[:, None, None]
                return x + short
            join.joins = True
            steps.append(join)
        else:
            raise AssertionError(layer)

    def forward(x):
        c, h, w = m.input_shape_
        x = x.reshape(len(x), h, w, c).permute(0, 3, 1, 2)
        seen = []  # each step's input
        for step in steps:
            seen.append(x)
            x = step(x, seen) if hasattr(step, "joins") else step(x)
        return x.reshape(len(x), -1)
    return torch, forward, params, bns


def gradients_match_torch(m, X, y):
    """m's loss, every weight's gradient and the input gradient on batch statistics against
    torch autograd on the same weights (cross-entropy with m's label_smoothing); returns how
    many weight arrays were compared."""
    torch, forward, params, _ = torch_net(m)
    xt = torch.from_numpy(X).requires_grad_(True)
    lt = torch.nn.functional.cross_entropy(forward(xt), torch.from_numpy(y),
                                           label_smoothing=m.label_smoothing)
    lt.backward()
    loss, g, dx = m.gradient(X, y, training=True)
    np.testing.assert_allclose(loss, lt.item(), rtol=1e-5)
    mine = [v for layer, shape, off, size in m._built
            for v in layer._views(g[off:off + size], shape)[:2]]
    ref = [p.grad.numpy() for p in params]
    assert len(mine) == len(ref)
    for a, b in zip(mine, ref):
        a = a.transpose(0, 3, 1, 2) if a.ndim == 4 else a
        np.testing.assert_allclose(a.reshape(b.shape), b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-4, atol=1e-6)
    return len(mine)


def adam_matches_torch(m, X, y, lr, batch, epochs):
    """m (built with Adam(lr, epsilon=1e-8)) trained `epochs` epochs in order in batches of
    `batch`, against torch.optim.Adam on the same weights (cross-entropy with m's
    label_smoothing; with m's ema_momentum, the exponential moving average of torch's
    weights after each step): every weight and batch norm's running mean and (unbiased)
    running variance; returns how many arrays were compared."""
    torch, forward, params, bns = torch_net(m)
    opt = torch.optim.Adam(params, lr=lr, eps=1e-8)
    avg = [p.detach().clone() for p in params]
    for _ in range(epochs):
        for start in range(0, len(y), batch):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(forward(torch.from_numpy(X[start:start + batch])),
                                              torch.from_numpy(y[start:start + batch]),
                                              label_smoothing=m.label_smoothing).backward()
            opt.step()
            for a, p in zip(avg, params):
                a.mul_(m.ema_momentum).add_(p.detach() * (1 - m.ema_momentum))
    if m.ema_momentum:
        params = avg
    m.fit(X, y, epochs=epochs, batch_size=batch, shuffle=False, verbose=0)
    theirs, bn, compared = iter(params), iter(bns), 0
    for layer, shape, off, size in m._built:
        if not size:
            continue
        ref = [next(theirs), next(theirs)]
        if isinstance(layer, BatchNorm):
            b = next(bn)
            ref += [b.running_mean, b.running_var]
        for a, t in zip(layer._views(m.params_[off:off + size], shape), ref):
            t = t.detach().numpy()
            a = a.transpose(0, 3, 1, 2) if a.ndim == 4 else a
            np.testing.assert_allclose(a.reshape(t.shape), t, rtol=1e-4, atol=1e-5)
            compared += 1
    assert next(theirs, None) is None
    return compared
