"""The study's ANN (784-256-256-10 ReLU, SGD lr 0.01 momentum 0.9, batch 64), one training
epoch on the study split, side by side in one run: fmnist_c (C engine) vs PyTorch CPU with
the same thread count. PyTorch gets its fastest plain loop (the data as one tensor,
indexed by a random permutation; no DataLoader). Prints median epoch times over
--repeat epochs (ours and PyTorch alternating), the ratio ours / PyTorch (target <= 0.5) and our GFLOP/s.

    python benchmarks/bench_mlp.py [--repeat 5] [--threads 2]
"""
import argparse
import os
import statistics

import numpy as np
from _common import print_table, study_data, timed

import fmnist_c
from fmnist_c.nn import SGD, Dense, Sequential

SIZES = (784, 256, 256, 10)
BATCH = 64


def flops_per_sample():
    """Multiply-adds x 2 of one training step per sample: forward, weight gradients, and the
    input gradients of every layer but the first."""
    mats = [a * b for a, b in zip(SIZES[:-1], SIZES[1:])]
    return 2 * (2 * sum(mats) + sum(mats[1:]))


def ours(X, y, threads):
    """A function training one epoch of our network, and the model."""
    m = Sequential([Dense(256, activation="relu"), Dense(256, activation="relu"), Dense(10)],
                   optimizer=SGD(0.01, momentum=0.9), random_state=0, n_jobs=threads)
    m.fit(X[:BATCH * 8], y[:BATCH * 8], batch_size=BATCH, verbose=0)  # build, warm up
    return lambda: m.fit(X, y, epochs=1, batch_size=BATCH, verbose=0), m


def pytorch(X, y, threads):
    """A function training one epoch of the same network in PyTorch."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = []
    for a, b in zip(SIZES[:-1], SIZES[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        order = torch.randperm(len(yt))
        for start in range(0, len(yt), BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            loss_fn(net(Xt[idx]), yt[idx]).backward()
            opt.step()

    return epoch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5, help="epochs timed per library (median)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    s, source = study_data(scale=True)
    X = s.X_train
    y = s.y_train
    print(f"data: {source}; {len(y)} training images, batch {BATCH}, {args.threads} threads; "
          f"fmnist_c {fmnist_c.__version__} ({fmnist_c._core.gemm_kernel()}), torch {torch.__version__}")
    run_ours, m = ours(X, y, args.threads)
    run_torch = pytorch(X, y, args.threads)
    # alternate the two so that both meet the same machine (others share its 2 cores)
    # a busy machine stalls OpenMP's spinning threads (PyTorch's far more): say how busy
    load = os.getloadavg()[0]
    times = [(timed(run_ours)[0], timed(run_torch)[0]) for _ in range(args.repeat)]
    print(f"load average (1 min) before / after the epochs: {load:.2f} / {os.getloadavg()[0]:.2f}")
    t_ours, t_torch = (statistics.median(t) for t in zip(*times))
    gflop = flops_per_sample() * len(y) / 1e9
    rows = [["fmnist_c (C)", f"{t_ours:.3f}", f"{gflop / t_ours:.1f}", f"{t_ours / t_torch:.2f}"],
            ["PyTorch CPU", f"{t_torch:.3f}", f"{gflop / t_torch:.1f}", "1.00"]]
    print_table(rows, ["library", "epoch s (median)", "GFLOP/s", "time / PyTorch"])
    print(f"ratio ours / PyTorch: {t_ours / t_torch:.2f} (target <= 0.5); "
          f"our test accuracy after {m.n_iter_} epochs: "
          f"{np.mean(m.predict(s.X_test.reshape(len(s.y_test), -1)) == s.y_test):.4f}")


if __name__ == "__main__":
    main()
