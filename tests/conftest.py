import functools
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import fmnist_c
from fmnist_c import (SVC, CNNClassifier, CNNEnsembleClassifier, DecisionTreeClassifier, GradientBoostingClassifier,
                      KNeighborsClassifier,
                      MLPClassifier, RandomForestClassifier, SGDLogisticRegression)
from fmnist_c.nn import Conv2D, Flatten, MaxPool2D
from fmnist_c.data import find_data
from fmnist_c.features import HOGSVC

# Every estimator, with settings that fit ~40 samples in milliseconds: the cross-cutting
# tests (bad input, leaks, threads, determinism, numerics) run over this list, so a new
# estimator joins all of them with one line here.
ESTIMATORS = [
    (SGDLogisticRegression, dict(epochs=3, batch_size=8)),
    (DecisionTreeClassifier, dict()),
    (RandomForestClassifier, dict(n_estimators=4)),
    (GradientBoostingClassifier, dict(n_estimators=4, num_leaves=4, min_child_samples=2)),
    (MLPClassifier, dict(hidden_layer_sizes=(8,), epochs=3, batch_size=8)),
    (KNeighborsClassifier, dict(n_neighbors=1)),  # fits on two samples too
    (SVC, dict(probability=True)),
]
# Estimators of square images only (their features must be s x s pixels): the tests whose
# data are square (d = 16, 64, 100) run over ESTIMATORS + IMAGE_ESTIMATORS.
IMAGE_ESTIMATORS = [
    (CNNClassifier, dict(layers=[Conv2D(3, 3), MaxPool2D(2), Flatten()], epochs=2, batch_size=8)),
    (CNNEnsembleClassifier, dict(estimator=CNNClassifier(layers=[Conv2D(3, 3), MaxPool2D(2), Flatten()],
                                                         epochs=2, batch_size=8), n_members=2)),
    (HOGSVC, dict(hogs=({"pixels_per_cell": 2, "cells_per_block": 1},), probability=True)),
    # a union of two HOGs and the pixels
    (HOGSVC, dict(hogs=(({"pixels_per_cell": 2, "cells_per_block": 1},
                         {"orientations": 4, "pixels_per_cell": 1, "cells_per_block": 2,
                          "pixel_weight": 0.5}),), probability=True)),
    # refitted on its support vectors and their one-pixel moves
    (HOGSVC, dict(hogs=({"pixels_per_cell": 2, "cells_per_block": 1},), virtual_shifts=4,
                  probability=True)),
]


def estimator_factories(only=lambda cls: True, images=False):
    """pytest params: a factory per estimator of ESTIMATORS (and IMAGE_ESTIMATORS with
    `images`; those `only` keeps) making it with its small settings and random_state=0;
    keywords override."""
    return [pytest.param(functools.partial(cls, **{**seeded(cls, 0), **small}), id=cls.__name__)
            for cls, small in ESTIMATORS + (IMAGE_ESTIMATORS if images else []) if only(cls)]


def seeded(cls, seed):
    """{"random_state": seed} for an estimator that has one (k-nearest neighbours has no
    randomness), else {}."""
    return {"random_state": seed} if "random_state" in cls().get_params() else {}


def has_param(name):
    """For estimator_factories: keep the estimators with hyper-parameter `name`."""
    return lambda cls: name in cls().get_params()


def fitted_state(est):
    """Every array a fitted estimator holds (nested fitted objects such as model_ and
    dicts such as _nodes included), by dotted name: what "bit-identical" compares."""
    state = {}

    def walk(prefix, obj):
        items = obj.items() if isinstance(obj, dict) else vars(obj).items()
        for key, value in items:
            if isinstance(value, np.ndarray):
                state[prefix + key] = value
            elif isinstance(value, dict) or (key.endswith("_") and hasattr(value, "__dict__")):
                walk(f"{prefix}{key}.", value)

    walk("", est)
    return state


def assert_same_fit(a, b, X):
    """a and b hold bit-identical fitted arrays and give bit-identical predictions on X."""
    sa, sb = fitted_state(a), fitted_state(b)
    assert sa.keys() == sb.keys() and sa
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Skips that must not pass quietly fail instead: with CI=true and the full data
    installed, a full-data test (marked full_data or using full_split); with
    FMNIST_C_FORBID_SKIPS=1 (the PyTorch pass of .ci/run, where torch is installed), any."""
    report = (yield).get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    full = "full_data" in item.keywords or "full_split" in getattr(item, "fixturenames", ())
    if os.environ.get("FMNIST_C_FORBID_SKIPS") == "1":
        why = "FMNIST_C_FORBID_SKIPS=1"
    elif os.environ.get("CI") == "true" and full and find_data() is not None:
        why = "CI=true with the full data installed, a full-data test"
    else:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
    report.outcome = "failed"
    report.longrepr = f"skipped, which is a failure here ({why}): {reason}"


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


def run_json(script, cwd, **env):
    """Run `script` in a fresh interpreter (cwd away from the source tree, this run's
    sys.path, `env` added to the environment); returns what it printed, parsed as JSON."""
    out = subprocess.run([sys.executable, "-c", script], cwd=cwd, text=True, capture_output=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env},
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def under_asan():
    """Whether this process runs with AddressSanitizer loaded (CI's sanitizer pass)."""
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


def interrupt_after(script, cwd, seconds):
    """Run `script` in a fresh interpreter (cwd away from the source tree), wait for it to
    print "ready", let it run `seconds`, send SIGINT; returns (stdout, seconds it took to end)."""
    # SIGINT back to its default in the child, so that Python turns it into KeyboardInterrupt:
    # a shell starting the tests in the background (`pytest &`, nohup) leaves it ignored,
    # and every Ctrl-C test would then fail on a signal its child never sees
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                         cwd=cwd, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert p.stdout.readline().strip() == "ready"
    time.sleep(seconds)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        out, _ = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # the interrupt was not honoured: fail, leave no child
        p.kill()
        p.communicate()
        raise
    return out, time.monotonic() - sent
