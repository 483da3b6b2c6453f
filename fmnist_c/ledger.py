"""The results ledger: one JSON line per fitted model (results/ledger.jsonl), the only
source of the accuracies and times the README, the notebooks' prose and `fmnist-c report`
quote. `fmnist-c reproduce` appends to it; `fmnist-c verify` re-runs its rows.

A family that wants its runs in the ledger adds one entry to ``fmnist_c.study.MODELS``;
code that fits models itself (a sweep, a Dask task) builds the row with ``record`` and
writes it with ``append``:

    from fmnist_c import ledger, study
    split, source, _ = study.load_split("study")                 # or "official", ...
    model, pred, row = study.run_model("lr", split, seed=3, data=source)  # fit, time, record
    ledger.append(row)                                           # results/ledger.jsonl

or, for a model fitted elsewhere, ``ledger.record(key, model, X_test, y_test, ...)``.
``study.fit_tasks`` runs many such fits at once (local processes or Dask: fmnist_c.sweep)
and appends their rows as they end.

Appends are atomic: under an exclusive ``flock`` on ``<ledger>.lock`` the ledger is
copied to a temporary file in the same folder, the new line added, the copy fsync'ed and
renamed over the ledger (then the folder fsync'ed). A crash leaves the old file or the
new one, never half a line; concurrent writers (threads, processes, Dask workers on this
machine) queue on the lock, so none loses another's row. Git merges the file line by
line (``.gitattributes``: ``merge=union``), so branches that each append rows rebase
without conflicts.
"""
import datetime
import fcntl
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

from . import metrics

DEFAULT_PATH = os.path.join("results", "ledger.jsonl")
# what identifies a run: re-running a row with these gives the same fit, bit for bit, on
# the same kernels (the newest row of an identity is the one that counts)
IDENTITY = ("model", "protocol", "data", "seed", "overrides")


def environment():
    """Where a row was made: package version, git commit, CPU, the SIMD kernels picked
    (equality on re-run is required only on the same kernels), threads, load."""
    from . import __version__, _core
    kernels = {name[:-len("_kernel")]: getattr(_core, name)()
               for name in sorted(dir(_core)) if name.endswith("_kernel")}
    return {
        "fmnist_c": __version__,
        "git_commit": _git_commit(),
        "cpu": _cpu_name(),
        "kernels": kernels,
        "threads": _core.openmp_threads() or 1,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit(here=os.path.dirname(os.path.abspath(__file__))):
    """HEAD of the checkout this package was imported from (+ "-dirty" when tracked files
    other than the ledger differ from it: rows appended by this very run, or an earlier
    protocol of it, change no code), or None when it is not a git checkout (an installed
    wheel)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                              text=True, timeout=10)
        if head.returncode:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top,exclude)" + DEFAULT_PATH], cwd=here, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.strip() else "")


def command_line():
    """This process's command line as a shell would take it ("fmnist-c reproduce ...")."""
    argv = list(sys.argv)
    if argv and os.path.basename(argv[0]) in ("fmnist-c", "__main__.py"):
        argv[0] = "fmnist-c"
    return shlex.join(argv)


def model_bytes(model):
    """Bytes of every array the fitted model holds (nested fitted objects included): the
    weights of a network, the nodes of a forest, the stored training set of a kNN."""
    seen, total = set(), 0

    def walk(obj):
        nonlocal total
        items = obj.items() if isinstance(obj, dict) else vars(obj).items()
        for key, value in items:
            if isinstance(value, np.ndarray):
                if id(value) not in seen:
                    seen.add(id(value))
                    total += value.nbytes
            elif isinstance(value, (list, tuple)) and key.endswith("_"):
                for v in value:
                    if hasattr(v, "__dict__"):
                        walk(v)
            elif isinstance(value, dict) or (key.endswith("_") and hasattr(value, "__dict__")):
                walk(value)

    walk(model)
    return total


def record(key, model, X_test, y_test, *, protocol, seed, fit_seconds, data="full",
           n_train=None, n_val=None, val_accuracy=None, overrides=None, load_before=None,
           extra=None, pred=None, predict_seconds=None, command=None):
    """The ledger row of a fitted `model` (registry key `key`, fitted in `fit_seconds`) on
    (X_test, y_test), the test set of `protocol` as the model sees it (scaled as it was
    trained). Predicts the whole test set in one call and times it, unless given the
    predictions `pred` and the `predict_seconds` they took; `load_before` is
    os.getloadavg()[0] taken before the fit (the load after it is taken here), so a fit
    timed on a busy machine says so. `overrides` are the parameters set on the registry's
    model (what `verify` sets again); `extra` any JSON-able model facts (chosen depth,
    best epoch); `command` what made the row (default: this process's command line)."""
    if pred is None:
        t0 = time.perf_counter()
        pred = model.predict(X_test)
        predict_seconds = time.perf_counter() - t0
    pred, y_test = np.asarray(pred), np.asarray(y_test)
    acc, lo, hi = metrics.accuracy_ci(y_test, pred)
    load_after = os.getloadavg()[0]
    row = {
        "model": key, "protocol": protocol, "data": data, "seed": int(seed),
        "overrides": dict(overrides or {}),
        "params": _jsonable(model.get_params()),
        "test_accuracy": float(acc), "test_ci95": [float(lo), float(hi)],
        "macro_f1": float(metrics.f1_score(y_test, pred)),
        "val_accuracy": None if val_accuracy is None else float(val_accuracy),
        "n_train": n_train, "n_val": n_val, "n_test": int(len(y_test)),
        "predictions_md5": predictions_md5(pred),
        "fit_seconds": float(fit_seconds),
        "predict_us_per_image": 1e6 * predict_seconds / max(len(y_test), 1),
        "model_bytes": model_bytes(model),
        "load_avg_1min": [None if load_before is None else round(load_before, 2),
                          round(load_after, 2)],
        **environment(),
        "command": command or command_line(),
    }
    if extra:
        row["extra"] = extra
    return row


def predictions_md5(pred):
    """MD5 of the predicted labels as int64: two runs agree on every test image iff equal."""
    return hashlib.md5(np.ascontiguousarray(np.asarray(pred, np.int64)).tobytes()).hexdigest()


def append(row, path=DEFAULT_PATH):
    """Add `row` (a dict) to the ledger at `path` as one JSON line, atomically (see the
    module docstring); creates the file and its folder when missing."""
    line = json.dumps(row, sort_keys=True, allow_nan=False) + "\n"
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, "rb") as f:
                old = f.read()
        except FileNotFoundError:
            old = b""
        if old and not old.endswith(b"\n"):  # written by hand without a final newline
            old += b"\n"
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".ledger-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(old + line.encode())
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read(path=DEFAULT_PATH):
    """Every row of the ledger at `path`, in file order ([] when there is none)."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def identity(row):
    """The tuple that says which run a row is (see IDENTITY)."""
    return tuple(json.dumps(row.get(k), sort_keys=True) for k in IDENTITY)


def latest(rows):
    """The row that counts for each identity, in the order of their first appearance: the
    newest (by date; the later line among equal dates), except that a newer row with the
    same result as the one kept (predictions' MD5, validation accuracy and the extra
    record) only confirms it, and the earlier row keeps counting with its times. So
    re-running `fmnist-c reproduce` in a checkout on the same kernels changes none of the
    figures README quotes, while a fit that changed, or a row that records more, does."""
    def result(row):
        return (row.get("predictions_md5"), row.get("val_accuracy"),
                json.dumps(row.get("extra"), sort_keys=True))
    best = {}
    for row in sorted(rows, key=lambda r: r["date"]):  # stable: equal dates keep file order
        key = identity(row)
        kept = best.get(key)
        if kept is None or row.get("predictions_md5") is None or result(row) != result(kept):
            best[key] = row
    first = {}
    for row in rows:
        first.setdefault(identity(row), len(first))
    return sorted(best.values(), key=lambda r: first[identity(r)])


def select(rows, models=None, protocols=None, data="full", seeds=None):
    """The rows of the given models / protocols / data source / seeds (None: any)."""
    return [r for r in rows
            if (models is None or r["model"] in models)
            and (protocols is None or r["protocol"] in protocols)
            and (data is None or r["data"] == data)
            and (seeds is None or r["seed"] in seeds)]


def _jsonable(params):
    def plain(v):
        return isinstance(v, (int, float, str, bool, type(None)))
    return {k: v if plain(v) else list(v) if isinstance(v, (list, tuple)) and all(map(plain, v))
            else repr(v) for k, v in params.items()}
