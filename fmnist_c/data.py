"""Fashion-MNIST data: IDX reader, loaders, the embedded sample and the study's split.

Only the standard library and NumPy. Nothing here touches the network unless a caller
asks for ``download=True``. Arrays are not cached between calls: reading the gzipped
training images takes about a quarter of a second, and a cache would hand every caller
the same mutable array.
"""
import gzip
import hashlib
import math
import operator
import os
import tempfile
import urllib.request
import zlib
from collections import namedtuple

import numpy as np

__all__ = [
    "CLASS_NAMES",
    "DOWNLOAD_URL",
    "StudySplit",
    "find_data",
    "load_fashion_mnist",
    "load_sample",
    "official_split",
    "official_split_indices",
    "read_idx",
    "study_split",
    "study_split_indices",
]

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

# The official files, over HTTPS. The authors' other mirror,
# http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/, serves the same bytes but
# only over plain HTTP; either is safe because every download is checked by MD5.
DOWNLOAD_URL = "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"

ENV_VAR = "FMNIST_C_DATA"
SYSTEM_DATA_DIR = "/usr/share/datasets/fashion-mnist"  # Debian: dataset-fashion-mnist

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# MD5 of each file's decompressed content.
MD5 = {
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}

SAMPLE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sample.npz")

# IDX type codes; every multi-byte type is big-endian on disk.
_IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_DATA_BYTES = 1 << 31      # a header claiming more is treated as hostile or corrupt
_MAX_DOWNLOAD_BYTES = 1 << 28  # the largest official file is 26 MB compressed
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bounded(f, n):
    """Read up to n bytes from f in chunks, so a lying header never allocates n at once."""
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(min(_CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return buf


def _parse_header(name, f, file_size=None):
    """Read and check an IDX header; return (dtype, dims, number of data bytes)."""
    magic = _read_bounded(f, 4)
    if len(magic) < 4:
        raise ValueError(f"{name}: truncated header: expected 4 bytes, found {len(magic)}")
    if magic[0] != 0 or magic[1] != 0:
        raise ValueError(f"{name}: bad magic number 0x{bytes(magic).hex()}: "
                         "not an IDX file (it must start with two zero bytes)")
    code, ndim = magic[2], magic[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{name}: unknown IDX dtype code 0x{code:02x} "
                         f"(known: {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)})")
    if ndim == 0:
        raise ValueError(f"{name}: bad header: zero dimensions")
    raw_dims = _read_bounded(f, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(f"{name}: truncated header: expected {4 * ndim} bytes of "
                         f"dimensions, found {len(raw_dims)}")
    dims = tuple(int.from_bytes(raw_dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    if any(d == 0 for d in dims):
        raise ValueError(f"{name}: bad header: dimensions {dims} include a zero")
    dtype = _IDX_DTYPES[code]
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes > _MAX_DATA_BYTES:
        raise ValueError(f"{name}: bad header: dimensions {dims} claim {nbytes} bytes "
                         f"of data, more than the limit of {_MAX_DATA_BYTES}")
    if file_size is not None:
        found = file_size - 4 - 4 * ndim
        if found < nbytes:
            raise ValueError(f"{name}: truncated: expected {nbytes} bytes of data, found {found}")
        if found > nbytes:
            raise ValueError(f"{name}: {found - nbytes} trailing bytes after the "
                             f"{nbytes} bytes of data")
    return dtype, dims, nbytes


def _read_idx_gzip(name, f):
    with gzip.GzipFile(fileobj=f, mode="rb") as g:
        try:
            dtype, dims, nbytes = _parse_header(name, g)
            data = _read_bounded(g, nbytes)
            if len(data) < nbytes:
                raise ValueError(f"{name}: truncated: expected {nbytes} bytes of data, "
                                 f"found {len(data)}")
            # Reading past the end makes gzip check the CRC and length trailer.
            extra = len(_read_bounded(g, _CHUNK))
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(f"{name}: corrupt gzip stream: {e}") from None
    if extra:
        raise ValueError(f"{name}: trailing bytes after the {nbytes} bytes of data")
    return np.frombuffer(data, dtype=dtype).reshape(dims)


def _read_idx_raw(name, f):
    dtype, dims, nbytes = _parse_header(name, f, file_size=os.fstat(f.fileno()).st_size)
    out = np.empty(dims, dtype=dtype)
    got = f.readinto(memoryview(out).cast("B"))
    if got != nbytes:  # the file changed under us
        raise ValueError(f"{name}: truncated: expected {nbytes} bytes of data, found {got}")
    return out


def read_idx(path):
    """Read an IDX file, gzipped or raw, into a native-endian NumPy array.

    Gzip is recognised by its magic bytes, not the file name. The header, the dtype
    code, the dimensions and the exact length (no truncation, no trailing bytes) are
    checked, and a gzip stream's CRC is verified. Every problem raises ValueError naming
    the file; a header that claims more data than the file holds is caught before any
    allocation.
    """
    name = os.fspath(path)
    with open(name, "rb") as f:
        gzipped = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        arr = _read_idx_gzip(name, f) if gzipped else _read_idx_raw(name, f)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _cache_dir():
    return os.path.join(os.path.expanduser("~"), ".cache", "fmnist_c")


def _candidates(path):
    """The directories to search, in order."""
    if path is not None:
        return [os.fspath(path)]
    env = os.environ.get(ENV_VAR)
    if env:
        return [env]
    return [_cache_dir(), SYSTEM_DATA_DIR]


def _find_file(directory, name):
    """The path of `name` (raw) or `name.gz` in directory, or None."""
    for candidate in (name, name + ".gz"):
        full = os.path.join(directory, candidate)
        if os.path.isfile(full):
            return full
    return None


def _search(path, names):
    """First candidate directory holding every one of `names`; (dir or None, places)."""
    places = _candidates(path)
    for directory in places:
        if all(_find_file(directory, n) for n in names):
            return directory, places
    return None, places


def find_data(path=None):
    """The directory where the full data set (all four files) is found, or None.

    Searches exactly as load_fashion_mnist does: `path` alone when given, else
    $FMNIST_C_DATA alone when set (and not empty), else ~/.cache/fmnist_c, then
    /usr/share/datasets/fashion-mnist.
    """
    return _search(path, FILES["train"] + FILES["test"])[0]


def _not_found(names, places):
    looked = "\n".join(f"  {p}" for p in places)
    return FileNotFoundError(
        "Fashion-MNIST not found. Looked for "
        + ", ".join(f"{n}[.gz]" for n in names)
        + f" in:\n{looked}\n"
        "To get the data, do one of:\n"
        "  sudo apt-get install dataset-fashion-mnist\n"
        "  fmnist_c.load_fashion_mnist(download=True)   (fetches into ~/.cache/fmnist_c)\n"
        f"  set {ENV_VAR} to a directory holding the four IDX files")


def _md5_of_gzip(name, path):
    """MD5 of a gzip file's decompressed content; a corrupt stream is a ValueError."""
    h = hashlib.md5()
    total = 0
    try:
        with gzip.open(path, "rb") as g:
            while chunk := g.read(_CHUNK):
                total += len(chunk)
                if total > _MAX_DATA_BYTES:
                    raise ValueError(f"{name}: decompresses to more than {_MAX_DATA_BYTES} bytes")
                h.update(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{name}: corrupt gzip stream: {e}") from None
    return h.hexdigest()


def _download(name, directory):
    """Fetch name.gz into directory; keep it only if its decompressed MD5 matches."""
    url = DOWNLOAD_URL.rstrip("/") + "/" + name + ".gz"
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    size = 0
                    while chunk := response.read(_CHUNK):
                        size += len(chunk)
                        if size > _MAX_DOWNLOAD_BYTES:
                            raise ValueError(f"{url}: larger than {_MAX_DOWNLOAD_BYTES} bytes")
                        out.write(chunk)
            except OSError as e:  # urllib.error.URLError, timeouts, resets
                raise OSError(f"download of {url} failed: {e}") from e
        got = _md5_of_gzip(url, tmp)
        if got != MD5[name]:
            raise ValueError(f"{url}: MD5 of the decompressed content is {got}, "
                             f"expected {MD5[name]}; the file was not kept")
        final = os.path.join(directory, name + ".gz")
        os.replace(tmp, final)
        return final
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _load_pair(images_path, labels_path):
    X = read_idx(images_path)
    y = read_idx(labels_path)
    if X.dtype != np.uint8 or X.ndim != 3 or X.shape[1:] != (28, 28):
        raise ValueError(f"{images_path}: expected uint8 images of shape (n, 28, 28), "
                         f"found {X.dtype} {X.shape}")
    if y.dtype != np.uint8 or y.ndim != 1:
        raise ValueError(f"{labels_path}: expected a 1-D uint8 array of labels, "
                         f"found {y.dtype} {y.shape}")
    if y.size and y.max() > 9:
        bad = int(np.argmax(y > 9))
        raise ValueError(f"{labels_path}: label {int(y[bad])} at index {bad} "
                         "is outside 0..9")
    if len(X) != len(y):
        raise ValueError(f"{images_path} holds {len(X)} images but {labels_path} "
                         f"holds {len(y)} labels")
    return X, y


def load_fashion_mnist(split="train", path=None, download=False):
    """Load Fashion-MNIST as (X, y): X uint8 (n, 28, 28) C-contiguous, y int64 (n,).

    split: "train" (60,000), "test" (10,000) or "all" (70,000: train then test, the
    order of OpenML's copy and of the original study).

    Where the files are looked for, in order, each as `name` or `name.gz`:
      1. `path`, when given (the only place looked);
      2. $FMNIST_C_DATA, when set (the only place looked);
      3. ~/.cache/fmnist_c;
      4. /usr/share/datasets/fashion-mnist (Debian package dataset-fashion-mnist);
      5. with download=True only: the official files are fetched from DOWNLOAD_URL
         into `path`, else $FMNIST_C_DATA, else ~/.cache/fmnist_c, and each is checked
         against its MD5 before use (a mismatch raises ValueError and is not kept).
    Found nowhere: FileNotFoundError saying where it looked and how to get the data.
    Every call reads the files afresh (no cache); the arrays are the caller's own.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', not {split!r}")
    parts = ("train", "test") if split == "all" else (split,)
    names = tuple(n for part in parts for n in FILES[part])
    directory, places = _search(path, names)
    if directory is None:
        if not download:
            raise _not_found(names, places)
        directory = places[0] if path is not None or os.environ.get(ENV_VAR) else _cache_dir()
        for name in names:
            if _find_file(directory, name) is None:
                _download(name, directory)
    Xs, ys = [], []
    for part in parts:
        images, labels = (_find_file(directory, n) for n in FILES[part])
        X, y = _load_pair(images, labels)
        Xs.append(X)
        ys.append(y)
    X = np.ascontiguousarray(Xs[0] if len(Xs) == 1 else np.concatenate(Xs))
    y = (ys[0] if len(ys) == 1 else np.concatenate(ys)).astype(np.int64)
    return X, y


def load_sample(return_indices=False):
    """The embedded stratified sample: 300 images per class, 3,000 in all.

    Drawn once with a fixed seed from the 70,000 images in "all" order (see
    tools/make_sample.py) and shipped in the package, so it needs no data files.
    Returns (X, y), X uint8 (3000, 28, 28) and y int64, in increasing order of source
    index; with return_indices=True, (X, y, indices) where indices (int64) locate each
    image in load_fashion_mnist("all").
    """
    with np.load(SAMPLE_FILE) as npz:
        X = np.ascontiguousarray(npz["X"], dtype=np.uint8)
        y = npz["y"].astype(np.int64)
        indices = npz["indices"].astype(np.int64)
    return (X, y, indices) if return_indices else (X, y)


StudySplit = namedtuple("StudySplit", "X_train y_train X_val y_val X_test y_test")


def _holdout(idx, share, random_state):
    """(kept, held_out) of the index array idx as scikit-learn's train_test_split(
    test_size=share, random_state=random_state) splits it: the share rounded up is taken
    from the front of a RandomState(random_state) permutation, the rest keeps permuted order."""
    p = np.random.RandomState(random_state).permutation(len(idx))
    n_out = math.ceil(share * len(idx))
    return idx[p[n_out:]].astype(np.int64), idx[p[:n_out]].astype(np.int64)


def study_split_indices(n, random_state=0):
    """The original study's split of range(n) as (train_idx, val_idx, test_idx), int64.

    Identical to scikit-learn's train_test_split(test_size=0.2, random_state=rs), then
    train_test_split(test_size=0.1, random_state=rs) on the remainder, without needing
    scikit-learn: sklearn rounds the test share up and takes the first n_test entries
    of a RandomState(rs) permutation as the test set, the rest (in permuted order) as
    the training set. For n = 70,000: 50,400 / 5,600 / 14,000.
    """
    n = operator.index(n)
    random_state = operator.index(random_state)
    if n < 3:
        raise ValueError(f"the study split needs at least 3 samples, got {n}")
    rest, test = _holdout(np.arange(n), 0.2, random_state)
    train, val = _holdout(rest, 0.1, random_state)
    return train, val, test


def official_split_indices(n, n_train=60000, random_state=0):
    """The official Fashion-MNIST protocol on range(n) as (train_idx, val_idx, test_idx).

    The first n_train indices are the official training images, the rest the official
    test images (the order of load_fashion_mnist("all")). The test set is the official
    test set, untouched; the validation set is 10% of the official training images,
    held out the way the study's second split does it (train_test_split(test_size=0.1,
    random_state=rs)). For n = 70,000: 54,000 / 6,000 / 10,000.
    """
    n = operator.index(n)
    n_train = operator.index(n_train)
    random_state = operator.index(random_state)
    if not 2 <= n_train < n:
        raise ValueError(f"n_train must leave at least 2 training and 1 test sample: "
                         f"got n_train={n_train} of n={n}")
    train, val = _holdout(np.arange(n_train), 0.1, random_state)
    return train, val, np.arange(n_train, n, dtype=np.int64)


def _split(X, y, indices):
    X = np.asarray(X)
    y = np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} samples but y has {len(y)}")
    train, val, test = indices(len(X))
    return StudySplit(X[train], y[train], X[val], y[val], X[test], y[test])


def study_split(X, y, random_state=0):
    """Split (X, y) as the original study did: 72% train, 8% validation, 20% test.

    Returns StudySplit(X_train, y_train, X_val, y_val, X_test, y_test); the indices
    behind it come from study_split_indices(len(X), random_state).
    """
    return _split(X, y, lambda n: study_split_indices(n, random_state))


def official_split(X, y, n_train=60000, random_state=0):
    """Split (X, y), the official training images first, by the official protocol: the
    official test set as test, 10% of the official training set as validation.

    Returns a StudySplit; the indices come from official_split_indices(len(X), n_train,
    random_state). On load_fashion_mnist("all"): 54,000 / 6,000 / 10,000. On the
    embedded sample, n_train is the number of sample images from the official training
    file: (load_sample(return_indices=True)[2] < 60000).sum().
    """
    return _split(X, y, lambda n: official_split_indices(n, n_train, random_state))
