"""Memory: 1,000 fit/predict cycles of every estimator of conftest.ESTIMATORS keep the
resident set flat. (LeakSanitizer checks the C allocations themselves: .ci/run.)"""
import os

import pytest

from conftest import blobs, estimator_factories

PAGE = os.sysconf("SC_PAGE_SIZE")
WARM_UP, CYCLES = 100, 1000
# Over 1,000 cycles: catches a leak of 1 KiB or more per cycle; measured here, the flat
# estimators move by at most ~100 KiB (allocator arenas settling after warm-up).
BOUND = 1 << 20


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def under_asan():
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("make", estimator_factories())
def test_fit_predict_cycles_keep_rss_flat(make):
    if under_asan():
        pytest.skip("ASan's quarantine holds freed memory: RSS grows by design")
    X, y = blobs(n=40, d=100, k=3)
    model = make()
    for _ in range(WARM_UP):
        model.fit(X, y).predict_proba(X)
    before = rss()
    for _ in range(CYCLES):
        model.fit(X, y).predict_proba(X)
    grown = rss() - before
    assert grown < BOUND, f"RSS grew by {grown / 1024:.0f} KiB over {CYCLES} fit/predict cycles"
