"""Build the one extension, fmnist_c._core, from every .c under csrc/ (docs/architecture.md
has the layout: a folder per model family, core/ for what they share, bind/ for the binding).

-O3 and OpenMP when the compiler has it; no -march=native: SIMD kernels are compiled with
per-function target attributes and chosen at run time, so a wheel runs on any x86-64.
FMNIST_C_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer.
"""
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np
from setuptools import Extension, setup


def compiler_accepts(flag):
    """True when the C compiler builds and links a tiny program with `flag`."""
    cc = os.environ.get("CC", "cc")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 0;}\n"
                    if "openmp" in flag else "int main(void){return 0;}\n")
        cmd = [cc, flag, src, "-o", os.path.join(tmp, "probe")]
        return subprocess.run(cmd, capture_output=True).returncode == 0


compile_args = ["-O3", "-std=gnu11", "-Wall", "-Wextra", "-fno-strict-aliasing"]
link_args = []
if sys.platform != "win32" and compiler_accepts("-fopenmp"):
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")
if os.environ.get("FMNIST_C_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    compile_args = [a for a in compile_args if a != "-O3"] + ["-O1", "-g"] + san
    link_args += san

setup(
    ext_modules=[
        Extension(
            "fmnist_c._core",
            sources=sorted(glob.glob("csrc/**/*.c", recursive=True)),
            depends=sorted(glob.glob("csrc/**/*.h", recursive=True)),
            include_dirs=["csrc", np.get_include()],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
    ]
)
