"""The study's CNN, our improved CNN and the ResNet candidate (resnet_cnn: residual blocks
on both sides), one training epoch each on the study split, side by side in one run:
fmnist_c (C engine) vs PyTorch CPU with the same thread count and the same network,
optimizer and batch size (PyTorch in its fastest plain loop: the data as one tensor
indexed by a random permutation, no DataLoader). Epochs alternate between the two
libraries so that both meet the same machine. Prints median epoch times, the ratio ours /
PyTorch (target <= 0.7; 0.6 for the ResNet, issue 18) and GFLOP/s, then the GFLOP/s of
every convolution's forward and backward on one batch, as training runs them (target >=
50% of ~200 GFLOP/s).

    python benchmarks/bench_cnn.py [--repeat 3] [--threads 2] [--samples 50400] [--nets resnet]
"""
import argparse
import statistics
import time

import numpy as np
# torch first: with fmnist_c's (the system's) libgomp loaded before it, oneDNN's strided 1x1
# convolution weight gradient (the ResNet's projections) crashed in torch 2.13
import torch
from _common import print_table, study_data, timed

import fmnist_c
from fmnist_c import _core
from fmnist_c.nn import (Adam, AdamW, Conv2D, Dense, Sequential, improved_cnn, resnet_cnn,
                         study_cnn)
from fmnist_c.nn.layers import _Join

NETS = {
    "study": dict(layers=study_cnn, batch=128, optimizer=lambda: Adam(1e-3)),
    "improved": dict(layers=improved_cnn, batch=128, optimizer=lambda: AdamW(2e-3, weight_decay=0.05)),
    "resnet": dict(layers=resnet_cnn, batch=128, optimizer=lambda: AdamW(2e-3, weight_decay=0.05)),
}


def flops_per_sample(model):
    """Multiply-adds x 2 of one training step per sample over the conv and dense layers:
    forward, weight gradients, and input gradients for every layer but the first."""
    total, first = 0, True
    for layer, shape, _, size in model._built:
        if isinstance(layer, (Conv2D, Dense, _Join)) and size:  # a join: its projection
            out = layer.output_shape(shape)
            macs = int(np.prod(out[1:])) * (size - out[0])  # pixels x weights
            total += 2 * macs * (2 if first else 3)
            first = False
    return total


def ours(name, X, y, threads):
    spec = NETS[name]
    m = Sequential(spec["layers"](), optimizer=spec["optimizer"](), random_state=0,
                   n_jobs=threads)
    m.fit(X[:spec["batch"] * 4], y[:spec["batch"] * 4], batch_size=spec["batch"], verbose=0)
    return lambda: m.fit(X, y, epochs=1, batch_size=spec["batch"], verbose=0), m


class TorchProgram(torch.nn.Module):
    """Modules run in a chain, but for residual joins: joins[i] = (depth, projection or
    None) adds the input of module i - depth (projected) to module i's input."""

    def __init__(self, mods, joins):
        super().__init__()
        self.mods = torch.nn.ModuleList(mods)
        self.projections = torch.nn.ModuleList(p for _, p in joins.values() if p is not None)
        self.joins = joins

    def forward(self, x):
        seen = []
        for i, mod in enumerate(self.mods):
            seen.append(x)
            if i in self.joins:
                depth, projection = self.joins[i]
                short = seen[-1 - depth]
                x = x + (short if projection is None else projection(short))
            else:
                x = mod(x)
        return x


def torch_layers(torch, model):
    """The same network in torch (NCHW; flattening after a permute to our (H, W, C) order
    costs nothing measurable and keeps the nets identical)."""
    mods, joins = [], {}
    for layer, shape, _, _ in model._built:
        t = type(layer).__name__
        if t == "_Join":
            stride = layer._stride(shape)
            joins[len(mods)] = (layer.depth, None if stride is None else
                                torch.nn.Conv2d(layer.source[0], shape[0], 1, stride))
            mods.append(torch.nn.Identity())
        elif t == "GlobalAveragePooling2D":
            mods.append(torch.nn.AdaptiveAvgPool2d(1))
        elif t == "Conv2D":
            pad = "same" if layer.padding == "same" else 0
            if pad == "same" and layer.strides > 1:  # torch's "same" is stride 1 only: k // 2
                pad = tuple(k // 2 for k in layer.kernel_size)  # on both sides, the same sizes
            mods.append(torch.nn.Conv2d(shape[0], layer.filters, layer.kernel_size, layer.strides,
                                        padding=pad))
        elif t == "BatchNorm":
            mods.append(torch.nn.BatchNorm2d(shape[0]) if shape[1] > 1 else
                        torch.nn.BatchNorm1d(shape[0]))
        elif t == "ReLU":
            mods.append(torch.nn.ReLU())
        elif t == "MaxPool2D":
            mods.append(torch.nn.MaxPool2d(layer.pool_size, layer._stride()))
        elif t == "Dropout":
            mods.append(torch.nn.Dropout(layer.rate))
        elif t == "Flatten":
            mods.append(torch.nn.Flatten())
        elif t == "Dense":
            mods.append(torch.nn.Sequential(torch.nn.Flatten(),
                                            torch.nn.Linear(int(np.prod(shape)), layer.units)))
        else:
            raise ValueError(t)
    return TorchProgram(mods, joins)


def pytorch(name, model, X, y, threads):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = NETS[name]
    net = torch_layers(torch, model)
    o = spec["optimizer"]()
    if isinstance(o, AdamW):
        opt = torch.optim.AdamW(net.parameters(), lr=o.learning_rate, weight_decay=o.weight_decay)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=o.learning_rate)
    Xt = torch.from_numpy(X.reshape(-1, 1, 28, 28))
    yt = torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()
    bs = spec["batch"]

    def epoch():
        net.train()
        order = torch.randperm(len(yt))
        for start in range(0, len(yt), bs):
            idx = order[start:start + bs]
            opt.zero_grad()
            loss_fn(net(Xt[idx]), yt[idx]).backward()
            opt.step()

    return epoch


def conv_rates(model, batch, threads, repeat=10):
    """GFLOP/s of each convolution as training runs it: one batch's forward and backward
    (weight gradient, and input gradient for all but the first layer) through
    _core.conv2d on `threads` threads, im2col, Winograd transforms and all, into the same
    output arrays each time (fresh ones cost page faults that training's workspace does
    not: 0.6 ms of the improved first layer's 1.7 ms). Multiply-adds
    are counted as a direct convolution would do them (x 2), so a Winograd layer, which
    does fewer multiplications, shows the rate that it is worth."""
    rows_out = []
    rng = np.random.default_rng(0)
    first = True
    for layer, shape, _, _ in model._built:
        if not isinstance(layer, Conv2D):
            continue
        out = layer.output_shape(shape)
        K = layer.kernel_size[0] * layer.kernel_size[1] * shape[0]
        pixels, F = out[1] * out[2], layer.filters
        _, _, pad_h, pad_w = layer._geometry(shape)
        x = rng.random((batch, *shape[1:], shape[0]), dtype=np.float32)
        w = rng.random((F, *layer.kernel_size, shape[0]), dtype=np.float32)
        dy = rng.random((batch, out[1], out[2], F), dtype=np.float32)

        args = dict(stride=layer.strides, pad_h=pad_h, pad_w=pad_w, input_grad=not first,
                    nthreads=threads)
        bias = w[:, 0, 0, 0].copy()
        arrays = _core.conv2d(x, w, bias, dy, **args)

        def step():  # into the same outputs, as training's workspace: no fresh pages
            _core.conv2d(x, w, bias, dy, out=arrays, **args)
        step()  # warm up
        t0 = time.perf_counter()
        for _ in range(repeat):
            step()
        passes = 2 if first else 3
        gf = 2 * passes * batch * pixels * K * F * repeat / (time.perf_counter() - t0) / 1e9
        rows_out.append([f"conv {shape[0]}->{F} {out[1]}x{out[2]}, forward + backward",
                         f"{batch * pixels}x{K}x{F} x{passes}", f"{gf:.1f}", f"{gf / 200:.0%}"])
        first = False
    return rows_out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3, help="epochs timed per library (median)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=50400, help="training images per epoch")
    ap.add_argument("--nets", default="study,improved,resnet")
    args = ap.parse_args()

    s, source = study_data(scale=True)
    X, y = s.X_train[:args.samples], s.y_train[:args.samples]
    print(f"data: {source}; {len(y)} training images, {args.threads} threads; fmnist_c "
          f"{fmnist_c.__version__} ({_core.gemm_kernel()}), torch {torch.__version__}")
    for name in args.nets.split(","):
        run_ours, m = ours(name, X, y, args.threads)
        run_torch = pytorch(name, m, X, y, args.threads)
        run_torch()  # warm up (oneDNN picks its kernels on the first pass)
        times = [(timed(run_ours)[0], timed(run_torch)[0]) for _ in range(args.repeat)]
        t_ours, t_torch = (statistics.median(t) for t in zip(*times))
        gflop = flops_per_sample(m) * len(y) / 1e9
        print(f"\n{name} network ({m.count_params():,} parameters), batch {NETS[name]['batch']}, "
              f"epochs: {', '.join(f'{a:.1f}/{b:.1f}' for a, b in times)} s (ours/torch)")
        print_table([["fmnist_c (C)", f"{t_ours:.2f}", f"{gflop / t_ours:.1f}", f"{t_ours / t_torch:.2f}"],
                     ["PyTorch CPU", f"{t_torch:.2f}", f"{gflop / t_torch:.1f}", "1.00"]],
                    ["library", "epoch s (median)", "GFLOP/s", "time / PyTorch"])
        target = 0.6 if name == "resnet" else 0.7  # issue 18's target for the ResNet
        print(f"ratio ours / PyTorch ({name}): {t_ours / t_torch:.2f} (target <= {target})")
        print()
        print_table(conv_rates(m, NETS[name]["batch"], args.threads),
                    ["kernel", "m x k x n", "GFLOP/s", "of 200"])


if __name__ == "__main__":
    main()
