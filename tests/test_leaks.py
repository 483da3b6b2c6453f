"""Memory: 1,000 fit/predict cycles of every estimator of conftest.ESTIMATORS and
IMAGE_ESTIMATORS (the data are 10x10 images) keep the resident set and the bytes malloc
has handed out flat. (LeakSanitizer checks the C allocations themselves, on one and more
threads: .ci/run.)"""
import os
import textwrap

import pytest

from conftest import ESTIMATORS, IMAGE_ESTIMATORS, run_json, under_asan

WARM_UP, CYCLES = 100, 1000
# Bounds over 1,000 cycles, measured here with leaks injected (ctypes malloc per cycle):
# RSS misses a leak of 1 KiB a cycle (it lands in pages freed earlier) but not one of
# 16 KiB (a copy of X), and flat estimators move it by up to ~110 KiB; glibc's count of
# bytes in use (mallinfo2) shows even 100 B a cycle (+100 KiB) and moves by up to 20 KiB.
RSS_BOUND, MALLOC_BOUND = 1 << 20, 64 << 10


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs Linux /proc")
@pytest.mark.parametrize("index", range(len(ESTIMATORS + IMAGE_ESTIMATORS)),
                         ids=[cls.__name__ for cls, _ in ESTIMATORS + IMAGE_ESTIMATORS])
def test_fit_predict_cycles_keep_rss_flat(index, tmp_path):
    """In a fresh process on one OpenMP thread: on a crowded machine, thousands of
    two-thread regions on 40 samples would spend their time waiting for a core."""
    if under_asan():
        pytest.skip("ASan's quarantine holds freed memory: RSS grows by design")
    script = textwrap.dedent(f"""
        import ctypes, json, os
        from conftest import ESTIMATORS, IMAGE_ESTIMATORS, blobs, seeded

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost")]

        libc = ctypes.CDLL(None)
        mallinfo2 = getattr(libc, "mallinfo2", None)  # glibc >= 2.33
        if mallinfo2:
            mallinfo2.restype = MallInfo2

        def usage():
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            m = mallinfo2() if mallinfo2 else None
            return {{"rss": rss, "malloc": m.uordblks + m.hblkhd if m else 0}}

        cls, small = (ESTIMATORS + IMAGE_ESTIMATORS)[{index}]
        X, y = blobs(n=40, d=100, k=3)
        model = cls(**seeded(cls, 0), **small)
        for _ in range({WARM_UP}):
            model.fit(X, y).predict_proba(X)
        before = usage()
        for _ in range({CYCLES}):
            model.fit(X, y).predict_proba(X)
        print(json.dumps({{k: v - before[k] for k, v in usage().items()}}))
    """)
    grown = run_json(script, tmp_path, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    assert grown["rss"] < RSS_BOUND, f"RSS grew by {grown['rss'] >> 10} KiB"
    assert grown["malloc"] < MALLOC_BOUND, f"malloc'd bytes grew by {grown['malloc'] >> 10} KiB"
