"""Threads, for every estimator of conftest.ESTIMATORS: two Python threads training at
once get what sequential runs get; a random_state gives bit-identical fits whatever the
thread count; n_jobs and threadpoolctl's limits bind the OpenMP threads the kernels use."""
import textwrap
import threading

import pytest

from fmnist_c import _core
from fmnist_c._base import n_threads
from conftest import assert_same_fit, blobs, estimator_factories, run_json

ALL = estimator_factories(images=True)  # the data below are square: d = 64, 100
openmp = pytest.mark.skipif(_core.openmp_threads() == 0, reason="built without OpenMP")


def big_batches(make, **kw):
    """make(**kw), with batches large enough (where the estimator has them) for the GEMMs to
    split across threads."""
    params = make().get_params()
    kw = {k: v for k, v in kw.items() if k in params}  # random_state, where there is one
    return make(**kw, **({"batch_size": 512} if "batch_size" in params else {}))


@pytest.mark.parametrize("make", ALL)
def test_two_threads_training_at_once_match_sequential_runs(make):
    data = [blobs(n=1500, d=64, k=5, seed=s) for s in (1, 2)]
    models = [big_batches(make, random_state=s) for s in (1, 2)]
    alone = [big_batches(make, random_state=s).fit(X, y) for s, (X, y) in zip((1, 2), data)]
    start, errors = threading.Barrier(2), []

    def fit(model, X, y):
        try:
            start.wait()
            model.fit(X, y)
        except BaseException as e:  # surfaced below, as a failed assertion
            errors.append(e)

    workers = [threading.Thread(target=fit, args=(m, X, y)) for m, (X, y) in zip(models, data)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    for model, ref, (X, _) in zip(models, alone, data):
        assert_same_fit(model, ref, X)


@openmp
@pytest.mark.parametrize("make", ALL)
def test_same_random_state_gives_bit_identical_fits_on_any_thread_count(make):
    """Two runs on all cores, one limited to a single OpenMP thread (threadpoolctl), and
    for estimators with n_jobs, n_jobs=1, 2 and 3 (GEMM pairs split 1 + 2): the same fitted
    arrays and predictions."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    X, y = blobs(n=2000, d=100, k=5)
    ref = big_batches(make).fit(X, y)
    assert_same_fit(big_batches(make).fit(X, y), ref, X)
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert_same_fit(big_batches(make).fit(X, y), ref, X)
    if "n_jobs" in make().get_params():
        for jobs in (1, 2, 3):
            assert_same_fit(big_batches(make, n_jobs=jobs).fit(X, y), ref, X)


@openmp
def test_threadpoolctl_sees_and_limits_our_openmp_runtime():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    assert any(lib["user_api"] == "openmp" for lib in threadpoolctl.threadpool_info())
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert _core.openmp_threads() == 1  # the runtime threadpoolctl sets is ours
        assert n_threads(None) == n_threads(-1) == 1
        assert n_threads(2) == 2  # an explicit n_jobs wins, as in scikit-learn
    assert n_threads(None) == _core.openmp_threads() >= 1


@openmp
def test_kernels_start_no_helper_threads_when_limited_to_one(tmp_path):
    """In a fresh process, count the threads that are not Python's while every estimator
    fits and predicts under threadpool_limits(1), then with n_jobs=1: OpenMP never starts a
    helper (tree and forest fits included, which run on a worker thread). Then one fit
    with n_jobs=2 does start one, which shows the count would see them."""
    pytest.importorskip("threadpoolctl")
    script = textwrap.dedent("""
        import json, os, sys, threading, time
        from threadpoolctl import threadpool_limits
        from conftest import ESTIMATORS, blobs
        from fmnist_c import SGDLogisticRegression

        python = {threading.get_native_id()}  # threads Python starts say who they are
        def mark(*args):
            python.add(threading.get_native_id())
            sys.setprofile(None)
        threading.setprofile(mark)
        seen, stop = set(), threading.Event()
        def watch():
            while not stop.is_set():
                seen.update(int(t) for t in os.listdir("/proc/self/task"))
                time.sleep(0.0002)
        def helpers():  # threads Python did not start (one it did may be seen before its mark)
            return len(seen - python)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.05)
        counts = {"base": helpers()}
        X, y = blobs(n=3000, d=200, k=5)
        with threadpool_limits(1, user_api="openmp"):
            for cls, small in ESTIMATORS:
                cls(**small).fit(X, y).predict(X)
        counts["limited"] = helpers()
        for cls, small in ESTIMATORS:
            if "n_jobs" in cls().get_params():
                cls(**small, n_jobs=1).fit(X, y).predict(X)
        counts["one_job"] = helpers()
        SGDLogisticRegression(epochs=1, batch_size=512, n_jobs=2).fit(X, y)
        time.sleep(0.05)
        stop.set()
        watcher.join()  # not left inside listdir at exit: LeakSanitizer reports its open DIR
        counts["two_jobs"] = helpers()
        print(json.dumps(counts))
    """)
    counts = run_json(script, tmp_path, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="2")
    assert counts["limited"] == counts["base"], counts
    assert counts["one_job"] == counts["base"], counts
    assert counts["two_jobs"] > counts["base"], counts
