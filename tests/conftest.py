import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fmnist_c
from fmnist_c.data import find_data


@pytest.fixture(scope="session")
def full_split():
    """The study's split of the full 70,000 images; skips where the data is absent."""
    if find_data() is None:
        pytest.skip("full Fashion-MNIST not found (apt-get install dataset-fashion-mnist)")
    return fmnist_c.study_split(*fmnist_c.load_fashion_mnist("all"))


@pytest.fixture(scope="session")
def sample_split():
    """The embedded sample, split the study's way (always available)."""
    return fmnist_c.study_split(*fmnist_c.load_sample())


def blobs(n=300, d=12, k=4, seed=0):
    """Small linearly separable-ish data for fast estimator tests."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, d))
    y = rng.integers(0, k, n)
    return (centers[y] + rng.normal(0, 1, (n, d))).astype(np.float32), y


def interrupt_after(script, cwd, seconds):
    """Run `script` in a fresh interpreter (cwd away from the source tree), wait for it to
    print "ready", let it run `seconds`, send SIGINT; returns (stdout, seconds it took to end)."""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                         cwd=cwd, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.stdout.readline().strip() == "ready"
    time.sleep(seconds)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=30)
    return out, time.monotonic() - sent
