"""The package as users install it: `python -m build` makes the sdist and, from the
unpacked sdist alone, the wheel; `twine check` passes; the wheel, installed where no C
compiler can be found, passes the test suite (small data). Building takes minutes of a
crowded machine's CPU, so those tests run only with FMNIST_C_TEST_WHEEL=1 (and from a
source checkout); README's "Install from a wheel" records the full manual check (a fresh
venv, auditwheel, a CPU without AVX under QEMU). That the built extension runs on any
x86-64 is checked always, from its machine code."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

import fmnist_c._core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILERS = ("cc", "gcc", "clang", "c99", "x86_64-linux-gnu-gcc")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """(sdist, wheel) built by `python -m build` (sdist first, the wheel from it)."""
    if os.environ.get("FMNIST_C_TEST_WHEEL") != "1":
        pytest.skip("builds the sdist and a wheel (minutes): set FMNIST_C_TEST_WHEEL=1")
    if not os.path.exists(os.path.join(ROOT, "setup.py")):
        pytest.skip("needs the source checkout (setup.py, csrc/)")
    pytest.importorskip("build", reason="pip install build")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), ROOT], check=True,
                   stdout=subprocess.DEVNULL)
    (sdist,), (wheel,) = glob.glob(str(out / "*.tar.gz")), glob.glob(str(out / "*.whl"))
    return sdist, wheel


def test_twine_check_passes(dist):
    pytest.importorskip("twine", reason="pip install twine")
    result = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *dist],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sdist_holds_every_source_the_build_reads(dist):
    with tarfile.open(dist[0]) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    sources = {os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "csrc", "**", "*.[ch]"),
                                                           recursive=True)}
    needed = sources | {"setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE",
                        "fmnist_c/sample.npz", "fmnist_c/study_results.json"}
    assert needed <= names, sorted(needed - names)


def test_wheel_holds_the_extension_and_data_not_the_sources(dist):
    with zipfile.ZipFile(dist[1]) as whl:
        names = whl.namelist()
        meta = whl.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry = whl.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert [n for n in names if n.startswith("fmnist_c/_core") and n.endswith(".so")]
    assert {"fmnist_c/sample.npz", "fmnist_c/study_results.json",
            "fmnist_c/nn/__init__.py"} <= set(names)
    assert not [n for n in names if n.endswith((".c", ".h"))]
    assert "fmnist-c = fmnist_c.cli:main" in entry
    assert "Provides-Extra: onnx" in meta and "onnxruntime" in meta


def test_installed_wheel_passes_the_suite_without_a_compiler(dist, tmp_path):
    """The wheel alone (pip --no-deps --target; the dependencies are this environment's)
    first on the path; PATH holds this Python's folder and git only, CC is /bin/false."""
    target, tools = tmp_path / "site", tmp_path / "bin"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), dist[1]], check=True)
    tools.mkdir()
    if shutil.which("git"):  # the ledger records the commit with it
        os.symlink(shutil.which("git"), tools / "git")
    path = os.pathsep.join([os.path.dirname(sys.executable), str(tools)])
    assert not [c for c in COMPILERS if shutil.which(c, path=path)], "a compiler is on PATH"
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "PATH": path, "CC": "/bin/false", "PYTHONPATH": str(target),
           "FMNIST_C_DATA": str(tmp_path / "empty")}
    env.pop("FMNIST_C_TEST_WHEEL")
    where = subprocess.run([sys.executable, "-c", "import fmnist_c._core as c; print(c.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert where.stdout.startswith(str(target))
    # cwd outside the checkout, so the source tree's fmnist_c is not the one imported
    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            os.path.join(ROOT, "tests")], env=env, cwd=tmp_path,
                           capture_output=True, text=True)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-2000:]


# x86-64's baseline is SSE2. Beyond it: AVX and later (VEX/EVEX encodings, v-prefixed
# mnemonics; AVX-512 mask registers, k-prefixed), BMI and friends, SSE3 to SSE4.2. Not
# tzcnt: GCC writes __builtin_ctz as "rep bsf", which objdump shows as tzcnt and which
# runs as bsf on CPUs without BMI1.
BEYOND_SSE2 = set("""andn bextr blsi blsmsk blsr bzhi shlx shrx sarx pdep pext mulx rorx lzcnt
    popcnt movbe adcx adox crc32 addsubps addsubpd haddps haddpd hsubps hsubpd lddqu movddup
    movshdup movsldup pshufb phaddw phaddd phaddsw phsubw phsubd phsubsw pmaddubsw pmulhrsw
    psignb psignw psignd pabsb pabsw pabsd palignr blendps blendpd blendvps blendvpd pblendvb
    pblendw dpps dppd insertps extractps mpsadbw packusdw pcmpeqq pcmpgtq pextrb pextrd
    pextrq pinsrb pinsrd pinsrq pmaxsb pmaxsd pmaxud pmaxuw pminsb pminsd pminud pminuw
    pmuldq pmulld ptest roundps roundpd roundss roundsd pmovsxbw pmovsxbd pmovsxbq pmovsxwd
    pmovsxwq pmovsxdq pmovzxbw pmovzxbd pmovzxbq pmovzxwd pmovzxwq pmovzxdq phminposuw
    movntdqa pcmpestri pcmpestrm pcmpistri pcmpistrm""".split())
PREFIXES = {"rep", "repz", "repnz", "repe", "repne", "lock", "notrack", "bnd", "data16", "cs", "ds"}


def beyond_sse2(mnemonic):
    base = mnemonic.split(".")[0]
    return base[0] in "vk" or base in BEYOND_SSE2 or base.rstrip("bwlq") in BEYOND_SSE2


def test_only_the_run_time_chosen_kernels_go_beyond_sse2():
    """The extension as built (here: what CI's pip install made) has instructions beyond
    x86-64's SSE2 baseline only in the SIMD kernels that fm_cpu_has picks at run time
    (compiled per function with target attributes, named for their level: *avx2*,
    *avx512*, *vnni*), so it runs on any x86-64. A -march=native or -mavx in setup.py, or
    a compiler vectorising a portable loop with AVX, fails this."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    code = subprocess.run([objdump, "-d", "--no-show-raw-insn", fmnist_c._core.__file__],
                          capture_output=True, text=True, check=True).stdout
    beyond, function = {}, None
    for line in code.splitlines():
        if line.endswith(">:"):
            function = line.split("<", 1)[1][:-2]
            continue
        words = [w for w in line.split("\t", 1)[-1].split() if w not in PREFIXES]
        if len(line.split("\t")) > 1 and words and beyond_sse2(words[0]):
            beyond.setdefault(function, set()).add(words[0])
    kernels = {f for f in beyond if re.search(r"avx|vnni", f)}
    assert len(kernels) >= 10, "the SIMD kernels were not found: is this the extension?"
    assert not set(beyond) - kernels, {f: beyond[f] for f in set(beyond) - kernels}
