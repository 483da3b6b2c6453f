"""The C kernels stand alone (docs/architecture.md, "The binding's rules"): every .c and .h
under csrc/ outside bind/ compiles by itself under -Wall -Wextra -Werror, so each header
includes what it uses, and none of them includes Python.h. Skips without gcc or without the
source tree (tests run from an installed wheel)."""
import glob
import os
import re
import shutil
import subprocess

import pytest

CSRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "csrc")
KERNELS = sorted(os.path.relpath(p, CSRC) for p in glob.glob(os.path.join(CSRC, "**", "*.[ch]"),
                                                             recursive=True)
                 if not os.path.relpath(p, CSRC).startswith("bind" + os.sep))
pytestmark = pytest.mark.skipif(not KERNELS or shutil.which("gcc") is None,
                                reason="needs gcc and the csrc/ source tree")


@pytest.mark.parametrize("path", KERNELS)
def test_kernel_file_compiles_alone(path):
    cmd = ["gcc", "-fsyntax-only", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-fopenmp",
           "-I", CSRC, "-x", "c", os.path.join(CSRC, path)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("path", KERNELS)
def test_kernel_file_does_not_include_python(path):
    with open(os.path.join(CSRC, path)) as f:
        assert not re.search(r'#\s*include\s*[<"](Python|numpy/)', f.read())
