"""Regenerate fmnist_c/sample.npz, the embedded stratified sample, from the full data.

300 images per class drawn without replacement by a fixed-seed RandomState (whose stream
NumPy keeps stable) from load_fashion_mnist("all"), stored in increasing index order
with their source indices. The zip is written with fixed timestamps, so the same data
always gives the same bytes.

    python tools/make_sample.py [--data DIR] [--out fmnist_c/sample.npz]
"""
import argparse
import importlib.util
import io
import os
import sys
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PER_CLASS = 300
SEED = 0


def load_data_module():
    """fmnist_c/data.py on its own, so this runs without building the C extension."""
    spec = importlib.util.spec_from_file_location(
        "fmnist_c_data", os.path.join(ROOT, "fmnist_c", "data.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def draw(y, per_class=PER_CLASS, seed=SEED):
    """Sorted indices of `per_class` samples of each class 0..9."""
    rng = np.random.RandomState(seed)
    picked = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def write_npz(path, arrays):
    """np.savez_compressed, but byte-for-byte reproducible (fixed zip timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="directory holding the four IDX files")
    parser.add_argument("--out", default=os.path.join(ROOT, "fmnist_c", "sample.npz"))
    args = parser.parse_args(argv)
    data = load_data_module()
    X, y = data.load_fashion_mnist("all", path=args.data)
    indices = draw(y)
    write_npz(args.out, {"X": X[indices], "y": y[indices], "indices": indices})
    counts = np.bincount(y[indices], minlength=10)
    print(f"wrote {args.out}: {len(indices)} images, per class {counts.tolist()}, "
          f"{os.path.getsize(args.out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
