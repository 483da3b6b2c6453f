"""show_config: what this build of fmnist_c runs on."""
import platform
import sys

import numpy as np

from . import _core


def config():
    """A dict: version, SIMD kernel, OpenMP threads, NumPy, Python, where the data is."""
    from . import __version__
    from .data import find_data
    threads = _core.openmp_threads()
    return {
        "fmnist_c": __version__,
        "simd": _core.gemm_kernel(),
        "openmp_threads": threads if threads else "OpenMP not available (1 thread)",
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "data": find_data() or "not found (the embedded sample will be used)",
    }


def show_config(file=None):
    """Print the SIMD level picked, OpenMP threads, NumPy version and where the data is."""
    for key, value in config().items():
        print(f"{key:>15}: {value}", file=file or sys.stdout)
