"""Tests for fmnist_c.data: IDX reader, search order, download, sample, study split."""
import functools
import gzip
import hashlib
import http.server
import math
import os
import struct
import threading

import numpy as np
import pytest

from fmnist_c import data

ALL_NAMES = data.FILES["train"] + data.FILES["test"]
STUDY_TEST_COUNTS = [1391, 1424, 1366, 1455, 1388, 1397, 1473, 1354, 1341, 1411]
DTYPE_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
               np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


# --- helpers ---------------------------------------------------------------------------

def idx_bytes(arr):
    """The IDX encoding of arr (big-endian)."""
    arr = np.asarray(arr)
    big = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    code = DTYPE_CODES[big.dtype]
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + big.tobytes()


def write(path, payload, gz=False):
    path.write_bytes(gzip.compress(payload, mtime=0) if gz else payload)
    return path


def make_dataset(directory, n_train=20, n_test=10, gz=True, seed=0):
    """Write four small synthetic IDX files into directory; return the arrays."""
    rng = np.random.RandomState(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, n in (("train", n_train), ("test", n_test)):
        X = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        images, labels = data.FILES[part]
        suffix = ".gz" if gz else ""
        write(directory / (images + suffix), idx_bytes(X), gz)
        write(directory / (labels + suffix), idx_bytes(y), gz)
        arrays[part] = (X, y.astype(np.int64))
    return arrays


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """An environment where no real data can be found: empty HOME, no env var, no system dir."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", str(tmp_path / "no-system-dir"))
    return home


def decompressed_md5(path):
    raw = open(path, "rb").read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return hashlib.md5(raw).hexdigest()


# --- IDX reader ------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    if dtype == "u1":
        arr = np.arange(30, dtype=np.uint8).reshape(2, 3, 5) * 8
    got = data.read_idx(write(tmp_path / "a.idx", idx_bytes(arr), gz))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    assert got.shape == arr.shape
    np.testing.assert_array_equal(got, arr)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    np.testing.assert_array_equal(data.read_idx(write(tmp_path / "raw.gz", idx_bytes(arr))), arr)
    np.testing.assert_array_equal(data.read_idx(write(tmp_path / "zipped", idx_bytes(arr), gz=True)), arr)


def test_read_idx_accepts_str_path_and_one_dimension(tmp_path):
    arr = np.array([3, 1, 4], dtype=np.uint8)
    path = write(tmp_path / "labels", idx_bytes(arr))
    np.testing.assert_array_equal(data.read_idx(str(path)), arr)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
BAD_FILES = {
    "empty": (b"", "truncated header"),
    "short header": (b"\x00\x00\x08", "truncated header"),
    "bad magic": (b"\x01\x02" + GOOD[2:], "bad magic"),
    "bad dtype code": (b"\x00\x00\x07" + GOOD[3:], "dtype code 0x07"),
    "zero ndim": (b"\x00\x00\x08\x00", "zero dimensions"),
    "missing dims": (b"\x00\x00\x08\x02\x00\x00\x00\x03", "truncated header"),
    "zero dim": (b"\x00\x00\x08\x02" + struct.pack(">II", 3, 0), "zero"),
    "huge dims": (b"\x00\x00\x08\x02" + struct.pack(">II", 2**20, 2**20) + b"\x00" * 100, "limit"),
    "huge double dims": (b"\x00\x00\x0e\x03" + struct.pack(">III", 2**31, 2**31, 2**31), "limit"),
    "claims 1 GiB": (b"\x00\x00\x08\x02" + struct.pack(">II", 2**15, 2**15) + b"\x00" * 100,
                     "truncated: expected 1073741824 bytes of data, found 100"),
    "truncated data": (GOOD[:-5], "truncated: expected 12 bytes of data, found 7"),
    "trailing bytes": (GOOD + b"\x00\x01", "trailing bytes"),
    "float data short": (b"\x00\x00\x0d\x01" + struct.pack(">I", 3) + b"\x00" * 11, "truncated"),
}


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_read_idx_rejects_bad_files(tmp_path, case, gz):
    payload, message = BAD_FILES[case]
    path = write(tmp_path / "bad-file-idx", payload, gz)
    with pytest.raises(ValueError) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    zipped = gzip.compress(GOOD, mtime=0)
    path = write(tmp_path / "cut.gz", zipped[:-12])
    with pytest.raises(ValueError, match="corrupt gzip") as info:
        data.read_idx(path)
    assert "cut.gz" in str(info.value)


def test_read_idx_rejects_bad_gzip_crc(tmp_path):
    zipped = bytearray(gzip.compress(GOOD, mtime=0))
    zipped[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    path = write(tmp_path / "crc.gz", bytes(zipped))
    with pytest.raises(ValueError, match="CRC") as info:
        data.read_idx(path)
    assert "crc.gz" in str(info.value)


def test_read_idx_rejects_garbage_after_gzip_stream(tmp_path):
    path = write(tmp_path / "tail.gz", gzip.compress(GOOD, mtime=0) + b"garbage")
    with pytest.raises(ValueError, match="tail.gz"):
        data.read_idx(path)


def test_read_idx_missing_file_is_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        data.read_idx(tmp_path / "nope")


# --- load_fashion_mnist on synthetic files -----------------------------------------------

@pytest.mark.parametrize("gz", [False, True])
def test_load_synthetic_splits(tmp_path, no_data, gz):
    arrays = make_dataset(tmp_path / "d", gz=gz)
    for split in ("train", "test"):
        X, y = data.load_fashion_mnist(split, path=tmp_path / "d")
        assert X.dtype == np.uint8 and X.shape == arrays[split][0].shape and X.flags.c_contiguous
        assert y.dtype == np.int64 and y.ndim == 1
        np.testing.assert_array_equal(X, arrays[split][0])
        np.testing.assert_array_equal(y, arrays[split][1])
    X, y = data.load_fashion_mnist("all", path=tmp_path / "d")
    assert X.shape == (30, 28, 28) and X.flags.c_contiguous and y.dtype == np.int64
    np.testing.assert_array_equal(X, np.concatenate([arrays["train"][0], arrays["test"][0]]))
    np.testing.assert_array_equal(y, np.concatenate([arrays["train"][1], arrays["test"][1]]))


def test_load_mixed_raw_and_gz(tmp_path, no_data):
    arrays = make_dataset(tmp_path / "d", gz=True)
    name = data.FILES["train"][0]
    os.remove(tmp_path / "d" / (name + ".gz"))
    write(tmp_path / "d" / name, idx_bytes(arrays["train"][0]))
    X, _ = data.load_fashion_mnist("train", path=tmp_path / "d")
    np.testing.assert_array_equal(X, arrays["train"][0])


@pytest.mark.parametrize("split", ["val", "TRAIN", "", None, "validation"])
def test_load_rejects_unknown_split(split):
    with pytest.raises(ValueError, match="split"):
        data.load_fashion_mnist(split)


def test_load_rejects_count_mismatch(tmp_path, no_data):
    make_dataset(tmp_path / "d")
    labels = data.FILES["train"][1]
    write(tmp_path / "d" / (labels + ".gz"), idx_bytes(np.zeros(19, np.uint8)), gz=True)
    with pytest.raises(ValueError) as info:
        data.load_fashion_mnist("train", path=tmp_path / "d")
    message = str(info.value)
    assert data.FILES["train"][0] in message and labels in message
    assert "20" in message and "19" in message


@pytest.mark.parametrize("bad_label", [10, 255])
def test_load_rejects_labels_out_of_range(tmp_path, no_data, bad_label):
    make_dataset(tmp_path / "d")
    labels = data.FILES["test"][1]
    y = (np.arange(10) % 10).astype(np.uint8)
    y[7] = bad_label
    write(tmp_path / "d" / (labels + ".gz"), idx_bytes(y), gz=True)
    with pytest.raises(ValueError, match=f"label {bad_label} at index 7") as info:
        data.load_fashion_mnist("test", path=tmp_path / "d")
    assert labels in str(info.value)


@pytest.mark.parametrize("shape,dtype", [((5, 28, 27), np.uint8), ((5, 784), np.uint8),
                                         ((5, 28, 28), ">i4")])
def test_load_rejects_wrong_image_shape_or_type(tmp_path, no_data, shape, dtype):
    make_dataset(tmp_path / "d")
    images, labels = data.FILES["test"]
    write(tmp_path / "d" / (images + ".gz"), idx_bytes(np.zeros(shape, dtype)), gz=True)
    write(tmp_path / "d" / (labels + ".gz"), idx_bytes(np.zeros(5, np.uint8)), gz=True)
    with pytest.raises(ValueError, match="28, 28") as info:
        data.load_fashion_mnist("test", path=tmp_path / "d")
    assert images in str(info.value)


def test_load_rejects_wrong_label_type(tmp_path, no_data):
    make_dataset(tmp_path / "d")
    labels = data.FILES["test"][1]
    write(tmp_path / "d" / (labels + ".gz"), idx_bytes(np.zeros(10, ">i4")), gz=True)
    with pytest.raises(ValueError, match="uint8 array of labels") as info:
        data.load_fashion_mnist("test", path=tmp_path / "d")
    assert labels in str(info.value)


# --- search order ------------------------------------------------------------------------

def assert_how_to_get(message):
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message
    assert "FMNIST_C_DATA" in message


def test_nothing_found_says_where_and_how(no_data):
    assert data.find_data() is None
    with pytest.raises(FileNotFoundError) as info:
        data.load_fashion_mnist()
    message = str(info.value)
    assert_how_to_get(message)
    assert os.path.join(str(no_data), ".cache", "fmnist_c") in message
    assert data.SYSTEM_DATA_DIR in message


def test_path_is_the_only_place_looked(tmp_path, no_data):
    arrays = make_dataset(no_data / ".cache" / "fmnist_c", seed=1)
    make_dataset(tmp_path / "given", seed=2)
    X, _ = data.load_fashion_mnist("test", path=tmp_path / "given")
    assert not np.array_equal(X, arrays["test"][0])
    assert data.find_data(tmp_path / "given") == str(tmp_path / "given")
    (tmp_path / "empty").mkdir()
    assert data.find_data(tmp_path / "empty") is None
    with pytest.raises(FileNotFoundError) as info:
        data.load_fashion_mnist("test", path=tmp_path / "empty")
    message = str(info.value)
    assert str(tmp_path / "empty") in message and str(no_data) not in message
    assert_how_to_get(message)


def test_env_var_is_the_only_place_looked(tmp_path, no_data, monkeypatch):
    make_dataset(no_data / ".cache" / "fmnist_c", seed=1)
    arrays = make_dataset(tmp_path / "env", seed=2)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    X, _ = data.load_fashion_mnist("train")
    np.testing.assert_array_equal(X, arrays["train"][0])
    assert data.find_data() == str(tmp_path / "env")

    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "empty"))
    assert data.find_data() is None
    with pytest.raises(FileNotFoundError) as info:
        data.load_fashion_mnist("train")
    message = str(info.value)
    assert str(tmp_path / "empty") in message and str(no_data) not in message
    assert_how_to_get(message)


def test_empty_env_var_counts_as_unset(tmp_path, no_data, monkeypatch):
    make_dataset(no_data / ".cache" / "fmnist_c")
    monkeypatch.setenv(data.ENV_VAR, "")
    assert data.find_data() == str(no_data / ".cache" / "fmnist_c")


def test_cache_is_searched_before_system_dir(tmp_path, no_data, monkeypatch):
    system = make_dataset(tmp_path / "system", seed=1)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", str(tmp_path / "system"))
    assert data.find_data() == str(tmp_path / "system")
    X, _ = data.load_fashion_mnist("test")
    np.testing.assert_array_equal(X, system["test"][0])

    cache = make_dataset(no_data / ".cache" / "fmnist_c", seed=2)
    assert data.find_data() == str(no_data / ".cache" / "fmnist_c")
    X, _ = data.load_fashion_mnist("test")
    np.testing.assert_array_equal(X, cache["test"][0])


def test_a_directory_needs_every_file_of_the_split(tmp_path, no_data):
    make_dataset(tmp_path / "d")
    os.remove(tmp_path / "d" / (data.FILES["test"][1] + ".gz"))
    assert data.find_data(tmp_path / "d") is None
    X, _ = data.load_fashion_mnist("train", path=tmp_path / "d")
    assert len(X) == 20
    for split in ("test", "all"):
        with pytest.raises(FileNotFoundError, match=data.FILES["test"][1]):
            data.load_fashion_mnist(split, path=tmp_path / "d")


# --- download ------------------------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        QuietHandler.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving tmp_path/served; DOWNLOAD_URL points at it."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    QuietHandler.requests = []
    monkeypatch.setattr(data, "DOWNLOAD_URL", f"http://127.0.0.1:{httpd.server_address[1]}/files/")
    try:
        yield served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def serve_dataset(server, monkeypatch):
    """Synthetic gz files under /files/ with their MD5s patched into data.MD5."""
    arrays = make_dataset(server / "files", gz=True)
    for name in ALL_NAMES:
        monkeypatch.setitem(data.MD5, name, decompressed_md5(server / "files" / (name + ".gz")))
    return arrays


def test_download_fetches_verifies_and_caches(server, no_data, monkeypatch):
    arrays = serve_dataset(server, monkeypatch)
    with pytest.raises(FileNotFoundError):
        data.load_fashion_mnist("all")
    assert QuietHandler.requests == []

    X, y = data.load_fashion_mnist("all", download=True)
    np.testing.assert_array_equal(X, np.concatenate([arrays["train"][0], arrays["test"][0]]))
    np.testing.assert_array_equal(y, np.concatenate([arrays["train"][1], arrays["test"][1]]))
    cache = no_data / ".cache" / "fmnist_c"
    assert sorted(os.listdir(cache)) == sorted(n + ".gz" for n in ALL_NAMES)
    assert sorted(QuietHandler.requests) == sorted(f"/files/{n}.gz" for n in ALL_NAMES)
    assert data.find_data() == str(cache)

    QuietHandler.requests = []
    X2, _ = data.load_fashion_mnist("all", download=True)
    np.testing.assert_array_equal(X2, X)
    assert QuietHandler.requests == []


def test_download_only_what_the_split_needs(server, no_data, monkeypatch):
    serve_dataset(server, monkeypatch)
    data.load_fashion_mnist("test", download=True)
    assert sorted(QuietHandler.requests) == sorted(f"/files/{n}.gz" for n in data.FILES["test"])


def test_download_goes_to_env_dir(server, no_data, monkeypatch, tmp_path):
    serve_dataset(server, monkeypatch)
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    data.load_fashion_mnist("test", download=True)
    assert sorted(os.listdir(tmp_path / "env")) == sorted(n + ".gz" for n in data.FILES["test"])
    assert not (no_data / ".cache").exists()


def test_download_wrong_md5_is_not_kept(server, no_data, monkeypatch):
    serve_dataset(server, monkeypatch)
    bad = data.FILES["train"][0]
    monkeypatch.setitem(data.MD5, bad, "0" * 32)
    with pytest.raises(ValueError, match="MD5") as info:
        data.load_fashion_mnist("train", download=True)
    assert bad in str(info.value)
    cache = no_data / ".cache" / "fmnist_c"
    assert not any(name.startswith(bad) for name in os.listdir(cache))


def test_download_corrupt_gzip_is_not_kept(server, no_data, monkeypatch):
    serve_dataset(server, monkeypatch)
    name = data.FILES["test"][1]
    path = server / "files" / (name + ".gz")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="corrupt gzip"):
        data.load_fashion_mnist("test", download=True)
    assert not any(n.startswith(name) for n in os.listdir(no_data / ".cache" / "fmnist_c"))


def test_download_http_error_is_oserror(server, no_data, monkeypatch):
    serve_dataset(server, monkeypatch)
    os.remove(server / "files" / (data.FILES["test"][0] + ".gz"))
    with pytest.raises(OSError, match="404"):
        data.load_fashion_mnist("test", download=True)
    cache = no_data / ".cache" / "fmnist_c"
    assert not any(n.endswith(".part") for n in os.listdir(cache))


# --- study split ------------------------------------------------------------------------------

def check_partition(train, val, test, n):
    for idx in (train, val, test):
        assert idx.dtype == np.int64
    everything = np.concatenate([train, val, test])
    assert len(everything) == n
    np.testing.assert_array_equal(np.sort(everything), np.arange(n))


def test_study_split_indices_sizes_for_the_study():
    train, val, test = data.study_split_indices(70000)
    assert (len(train), len(val), len(test)) == (50400, 5600, 14000)
    check_partition(train, val, test, 70000)


def test_study_split_indices_follow_the_documented_recipe():
    p = np.random.RandomState(0).permutation(70000)
    rest = p[14000:]
    q = np.random.RandomState(0).permutation(56000)
    train, val, test = data.study_split_indices(70000, random_state=0)
    np.testing.assert_array_equal(test, p[:14000])
    np.testing.assert_array_equal(val, rest[q[:5600]])
    np.testing.assert_array_equal(train, rest[q[5600:]])


@pytest.mark.parametrize("n", [3, 7, 10, 11, 99, 3000, 70000])
@pytest.mark.parametrize("random_state", [0, 1, 42])
def test_study_split_matches_sklearn(n, random_state):
    model_selection = pytest.importorskip("sklearn.model_selection")
    idx = np.arange(n)
    rest, test = model_selection.train_test_split(idx, test_size=0.2, random_state=random_state)
    train, val = model_selection.train_test_split(rest, test_size=0.1, random_state=random_state)
    got = data.study_split_indices(n, random_state)
    for mine, theirs in zip(got, (train, val, test)):
        np.testing.assert_array_equal(mine, theirs)
    check_partition(*got, n)


def test_study_split_on_arrays():
    X = np.arange(100 * 4).reshape(100, 2, 2)
    y = np.arange(100) % 10
    s = data.study_split(X, y)
    assert isinstance(s, data.StudySplit)
    train, val, test = data.study_split_indices(100)
    np.testing.assert_array_equal(s.X_train, X[train])
    np.testing.assert_array_equal(s.y_val, y[val])
    np.testing.assert_array_equal(s.X_test, X[test])
    assert (len(s.X_train), len(s.X_val), len(s.X_test)) == (72, 8, 20)
    np.testing.assert_array_equal(s.y_train, s.X_train[:, 0, 0] // 4 % 10)


def test_study_split_rejects_bad_input():
    with pytest.raises(ValueError, match="samples"):
        data.study_split(np.zeros((10, 28, 28)), np.zeros(9))
    with pytest.raises(ValueError, match="at least 3"):
        data.study_split_indices(2)
    with pytest.raises(TypeError):
        data.study_split_indices(100, random_state=None)


@pytest.mark.parametrize("n, n_train", [(70000, 60000), (3000, 2563), (12, 9)])
def test_official_split_keeps_the_official_test_set(n, n_train):
    train, val, test = data.official_split_indices(n, n_train)
    check_partition(train, val, test, n)
    np.testing.assert_array_equal(test, np.arange(n_train, n))
    assert len(val) == math.ceil(0.1 * n_train) and train.max() < n_train
    if n == 70000:
        assert (len(train), len(val), len(test)) == (54000, 6000, 10000)


def test_official_split_matches_sklearn_holdout():
    model_selection = pytest.importorskip("sklearn.model_selection")
    train, val = model_selection.train_test_split(np.arange(500), test_size=0.1, random_state=3)
    got = data.official_split_indices(600, 500, random_state=3)
    np.testing.assert_array_equal(got[0], train)
    np.testing.assert_array_equal(got[1], val)


def test_official_split_on_arrays_and_bad_input():
    X = np.arange(30 * 4).reshape(30, 2, 2)
    y = np.arange(30) % 10
    s = data.official_split(X, y, n_train=20)
    np.testing.assert_array_equal(s.X_test, X[20:])
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (18, 2, 10)
    with pytest.raises(ValueError, match="samples"):
        data.official_split(X, y[:-1], n_train=20)
    for n_train in (30, 40, 1):
        with pytest.raises(ValueError, match="n_train"):
            data.official_split_indices(30, n_train)
    with pytest.raises(TypeError):
        data.official_split_indices(30, 20.5)


# --- the embedded sample ------------------------------------------------------------------

def test_sample_is_stratified_and_small():
    X, y, indices = data.load_sample(return_indices=True)
    assert X.dtype == np.uint8 and X.shape == (len(y), 28, 28) and X.flags.c_contiguous
    assert y.dtype == np.int64 and indices.dtype == np.int64
    counts = np.bincount(y, minlength=10)
    assert len(counts) == 10 and counts.min() >= 200
    assert counts.tolist() == [300] * 10
    assert len(indices) == len(y)
    assert np.all(np.diff(indices) > 0) and indices[0] >= 0 and indices[-1] < 70000
    assert os.path.getsize(data.SAMPLE_FILE) <= 2 * 1024 * 1024
    X2, y2 = data.load_sample()
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)


def test_class_names():
    assert data.CLASS_NAMES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


# --- the real data ------------------------------------------------------------------------

FULL_DATA = data.find_data()
full_data = pytest.mark.skipif(
    FULL_DATA is None, reason="Fashion-MNIST not found (set FMNIST_C_DATA, or "
                              "sudo apt-get install dataset-fashion-mnist)")


@pytest.fixture(scope="module")
def everything():
    return data.load_fashion_mnist("all")


@pytest.mark.full_data
@full_data
@pytest.mark.parametrize("name", ALL_NAMES)
def test_full_data_md5(name):
    assert decompressed_md5(data._find_file(FULL_DATA, name)) == data.MD5[name]


@pytest.mark.full_data
@full_data
@pytest.mark.parametrize("split,n", [("train", 60000), ("test", 10000)])
def test_full_data_shapes_and_counts(split, n):
    X, y = data.load_fashion_mnist(split)
    assert X.shape == (n, 28, 28) and X.dtype == np.uint8 and X.flags.c_contiguous
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == [n // 10] * 10


@pytest.mark.full_data
@full_data
def test_full_data_all_is_train_then_test(everything):
    X, y = everything
    assert X.shape == (70000, 28, 28) and y.shape == (70000,)
    Xt, yt = data.load_fashion_mnist("test")
    np.testing.assert_array_equal(X[60000:], Xt)
    np.testing.assert_array_equal(y[60000:], yt)


@pytest.mark.full_data
@full_data
def test_full_data_study_split(everything):
    X, y = everything
    s = data.study_split(X, y)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (50400, 5600, 14000)
    assert np.bincount(s.y_test, minlength=10).tolist() == STUDY_TEST_COUNTS
    check_partition(*data.study_split_indices(len(y)), len(y))


@pytest.mark.full_data
@full_data
def test_sample_matches_full_data(everything):
    X, y = everything
    Xs, ys, indices = data.load_sample(return_indices=True)
    np.testing.assert_array_equal(Xs, X[indices])
    np.testing.assert_array_equal(ys, y[indices])
