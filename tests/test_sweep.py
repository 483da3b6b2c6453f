"""Sweeps in parallel (fmnist_c.sweep): `fmnist-c reproduce --jobs / --dask` on a real
dask.distributed cluster on loopback (2 worker processes x 1 thread), against the serial
run: the same ledger rows, a worker killed mid-fit, an unreachable scheduler, Ctrl-C;
scikit-learn's searches with our estimators on Dask."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

import fmnist_c
from fmnist_c import _core, cli, ledger, study, sweep

from conftest import blobs, estimator_factories, interrupt_after, under_asan

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")
threadpoolctl = pytest.importorskip("threadpoolctl")
# Under AddressSanitizer every process (the worker processes too) runs on its allocator,
# and this file took 9.5 minutes at load 10 instead of 66 s; it tests Python and Dask, and
# the fits it runs are the sanitized suite's own.
pytestmark = pytest.mark.skipif(under_asan(), reason="Dask's worker processes under ASan: "
                                                     "minutes on a 2-core machine")

# fields that say where and when a row was made, not what the fit gave
WHERE = {"fit_seconds", "predict_us_per_image", "load_avg_1min", "date", "threads", "command"}
# lr and rf (a fraction of a second each on the sample) on both protocols, and the MLP
# (seconds) that the fault and Ctrl-C tests interrupt
CHEAP = [(m, p, s) for m, p in [("lr", "study"), ("rf", "study"), ("rf", "official"),
                                ("lr", "official-all")] for s in (0, 1)]
MLP = [("mlp", "study", s) for s in (0, 1)]
SAMPLE = study.load_data(sample=True)


def _rows(path):
    """{identity: row without WHERE}, each identity present once in the file."""
    rows = ledger.read(str(path))
    ids = [ledger.identity(r) for r in rows]
    assert len(ids) == len(set(ids)), "a row was written twice"
    return {i: {k: v for k, v in r.items() if k not in WHERE} for i, r in zip(ids, rows)}


def _fit(tasks, path, **how):
    return study.fit_tasks(tasks, *SAMPLE, str(path), log=lambda *a: None, **how)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """The serial sweep's ledger (path) and its rows."""
    path = tmp_path_factory.mktemp("serial") / "ledger.jsonl"
    _fit(CHEAP + MLP, path)
    rows = _rows(path)
    assert len(rows) == 10
    return types.SimpleNamespace(path=path, rows=rows)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as c:
        yield c


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as c:
        yield c


def test_threadpoolctl_sets_our_openmp_threads():
    libs = [i["prefix"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"]
    assert libs, "threadpoolctl does not see the OpenMP runtime _core links"
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert _core.openmp_threads() == 1


def test_dask_sweep_writes_the_serial_rows(serial, cluster, tmp_path):
    runs, last = _fit(CHEAP + MLP, tmp_path / "ledger.jsonl", dask=cluster.scheduler_address)
    assert _rows(tmp_path / "ledger.jsonl") == serial.rows
    # every fit ran with one OpenMP thread on its one-thread worker
    assert {r["threads"] for r in runs.values()} == {1}
    seed, pred, history = last[("mlp", "study")]
    assert seed == 1 and len(pred) == 600 and len(history["val_accuracy"]) == 20


def test_local_processes_write_the_serial_rows(serial, tmp_path):
    _fit(CHEAP, tmp_path / "ledger.jsonl", jobs=2)
    rows = _rows(tmp_path / "ledger.jsonl")
    assert len(rows) == 8 and all(serial.rows[i] == row for i, row in rows.items())


def test_resume_runs_only_what_is_missing(serial, tmp_path):
    """From a git checkout, the rows of this commit are kept; an installed package (a
    wheel) records no commit, so it cannot tell its own rows and refits every task."""
    path = tmp_path / "ledger.jsonl"
    lines = serial.path.read_text().splitlines(keepends=True)
    kept = [line for i, line in enumerate(lines) if i % 3]  # as if 4 fits had not ended
    path.write_text("".join(kept))
    log = []
    res = study.reproduce(models=["lr", "rf"], seeds=2, sample=True, out=str(tmp_path),
                          verbose=0, log=log.append, resume=True)
    if ledger.environment()["git_commit"] is None:
        assert log[0] == f"4 fits to run here; 0 taken from {path} (--resume)"
        return
    assert log[0] == f"2 fits to run here; 2 taken from {path} (--resume)"
    assert path.read_text().splitlines(keepends=True)[:6] == kept  # untouched, then 2 rows
    rows = _rows(path)
    assert len(rows) == 8 and all(serial.rows[i] == row for i, row in rows.items())
    assert sorted((r["model"], r["seed"]) for r in rows.values() if r["protocol"] == "study") \
        == [("lr", 0), ("lr", 1), ("mlp", 0), ("rf", 0), ("rf", 1)]  # mlp 0: a kept row
    assert [r["seed"] for r in res["models"]["rf"]["runs"]] == [0, 1]


def _tasks_lost_with(address, dask_scheduler):
    """The tasks the worker at `address` was processing when it was removed."""
    return [sorted(map(str, msg["processing-tasks"]))
            for _, msg in dask_scheduler.get_events("all")
            if msg.get("action") == "remove-worker" and msg.get("worker") == address]


def test_a_killed_worker_costs_a_rerun_not_a_row(serial, cluster, client, tmp_path):
    pids = client.run(os.getpid)
    killed = []

    def kill_a_busy_worker():
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                time.sleep(0.3)  # inside the fit, past the data's arrival
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    try:
        assert cli.main(["reproduce", "--models", "mlp", "--seeds", "2", "--sample", "--quiet",
                         "--out", str(tmp_path), "--dask", cluster.scheduler_address]) == 0
    finally:
        killer.join()
    assert killed
    lost = client.run_on_scheduler(_tasks_lost_with, killed[0])
    assert lost, "the worker was killed between fits"
    rows = _rows(tmp_path / "ledger.jsonl")
    assert len(rows) == 2 and all(serial.rows[i] == row for i, row in rows.items())
    client.wait_for_workers(2, timeout=120)  # the nanny restarts it: later tests have two


def test_ctrl_c_cancels_the_distributed_sweep(serial, cluster, tmp_path):
    address = cluster.scheduler_address
    script = f"""
import sys, time
from distributed import Client
from fmnist_c import cli
real = sys.stdout
class Watch:  # says "ready" once a fit has ended: the sweep is under way
    said = False
    def write(self, text):
        if text.startswith("[") and not Watch.said:
            Watch.said = True
            real.write("ready\\n")
            real.flush()
        return len(text)
    def flush(self):
        pass
sys.stdout = Watch()
code = cli.main(["reproduce", "--models", "mlp", "--seeds", "10", "--sample", "--quiet",
                 "--out", {str(tmp_path)!r}, "--dask", {address!r}])
sys.stdout = real
with Client({address!r}, set_as_default=False) as c:  # what the scheduler still holds
    deadline = time.monotonic() + 20
    left = c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
print("exit", code, "tasks", left)
"""
    out, _ = interrupt_after(script, tmp_path, 0.5)
    assert out.split() == ["exit", "130", "tasks", "0"], out
    rows = _rows(tmp_path / "ledger.jsonl")  # whole lines, none twice
    assert 1 <= len(rows) < 10
    assert all(serial.rows[i] == row for i, row in rows.items() if i in serial.rows)


def test_unreachable_scheduler_is_an_error_at_once(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = subprocess.run([sys.executable, "-m", "fmnist_c", "reproduce", "--models", "lr",
                          "--sample", "--out", str(tmp_path), "--dask", f"tcp://127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 2, run.stderr  # cwd: -m puts it first, and a clone's source
    # tree (without its built extension, installed elsewhere) must not shadow the package
    assert f"cannot reach the Dask scheduler at 'tcp://127.0.0.1:{port}' within " \
           f"{sweep.CONNECT_TIMEOUT} s" in run.stderr
    assert not (tmp_path / "ledger.jsonl").exists()


def test_without_dask_the_cli_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed fails
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--models", "lr", "--sample", "--out", str(tmp_path),
                  "--dask", "tcp://127.0.0.1:8786"])
    assert "--dask needs distributed: pip install 'fmnist_c[dask]'" in capsys.readouterr().err
    monkeypatch.setenv("FMNIST_C_DASK", "tcp://127.0.0.1:8786")  # the address from the env
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--models", "lr", "--sample", "--out", str(tmp_path)])
    assert "pip install 'fmnist_c[dask]'" in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [({"jobs": 0}, "jobs must be"),
                                          ({"jobs": "2"}, "jobs must be"),
                                          ({"threads": 0}, "threads must be"),
                                          ({"jobs": 2, "dask": "tcp://h:1"}, "jobs is for")])
def test_sweep_refuses_bad_arguments(bad, message):
    with pytest.raises(ValueError, match=message):
        sweep.run(print, [()], **bad)


def test_cli_refuses_jobs_with_dask(capsys):
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "--jobs", "2", "--dask", "tcp://127.0.0.1:8786"])
    assert "jobs is for local processes" in capsys.readouterr().err


def test_sklearn_searches_run_our_estimators_on_dask(client):
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import GridSearchCV, HalvingGridSearchCV

    X, y = blobs(150, 16, 3)  # 16 features: 4x4 images for the CNN
    searches = [GridSearchCV(make.values[0](), {}, cv=3)
                for make in estimator_factories(images=True)]
    searches += [GridSearchCV(fmnist_c.RandomForestClassifier(6, random_state=0),
                              {"max_depth": [2, 4, None]}, cv=3),
                 HalvingGridSearchCV(fmnist_c.SVC(gamma="scale"), {"C": [0.01, 1, 100]}, cv=3,
                                     factor=3, min_resources=30, random_state=0)]
    for search in searches:
        here = clone(search).fit(X, y)
        with joblib.parallel_config(backend="dask", client=client):
            there = clone(search).set_params(n_jobs=-1).fit(X, y)
        assert there.best_params_ == here.best_params_, search.estimator
        np.testing.assert_array_equal(there.cv_results_["mean_test_score"],
                                      here.cv_results_["mean_test_score"])
