"""How `fmnist-c reproduce --seeds S --protocol both` scales with Dask workers, in one run:
the same (model, protocol, seed) fits serially here (each fit with every OpenMP thread of
the machine: what `fmnist-c reproduce` does without --jobs or --dask) and on a Dask
LocalCluster of 1 and 2 one-thread worker processes (each fit on one thread). Per run:
the wall time (connecting, scattering the data and every fit; not the cluster's start),
the sum of the fits' own seconds, the longest fit, and the speed-up against 1 worker;
then the wall time projected for more workers (the fits shared out longest first, as the
sweep starts them, with the 1-worker run's seconds). Rows go to a throw-away ledger per
run, not results/: only their seconds are read.

    flock /work/bench.lock python benchmarks/bench_sweep.py --models lr,rf,mlp --seeds 5
"""
import argparse
import heapq
import os
import tempfile
import time

from distributed import LocalCluster

from fmnist_c import ledger, study


def tasks_of(models, seeds):
    """The (model, protocol, seed) fits `reproduce --protocol both` makes."""
    return [(key, p, seed) for p, ms in study.protocol_plan("both", models) for key in ms
            for seed in study.seed_list(seeds)]


def sweep(tasks, data, **how):
    """(wall seconds, {task: fit seconds}) of fitting `tasks` with study.fit_tasks."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "ledger.jsonl")
        t0 = time.perf_counter()
        study.fit_tasks(tasks, *data, path, log=lambda *a: None, **how)
        wall = time.perf_counter() - t0
        return wall, {(r["model"], r["protocol"], r["seed"]): r["fit_seconds"]
                      for r in ledger.read(path)}


def makespan(seconds, workers):
    """Wall time of one-thread fits of `seconds` on `workers`, longest started first."""
    free = [0.0] * workers
    for s in sorted(seconds, reverse=True):
        heapq.heapreplace(free, free[0] + s)
    return max(free)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lr,rf,mlp")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--sample", action="store_true", help="the embedded sample (a dry run)")
    args = ap.parse_args()
    data = study.load_data(args.sample)
    tasks = tasks_of(args.models.split(","), args.seeds)
    print(f"{len(tasks)} fits ({args.models}, seeds 0-{args.seeds - 1}, protocol both) on "
          f"{data[2]} data; {os.cpu_count()} cores; load {os.getloadavg()}; "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    runs = {}
    wall, fits = sweep(tasks, data)
    runs["serial"] = (wall, fits)
    print(f"serial, {ledger.environment()['threads']} threads a fit: {wall:.1f} s, fits "
          f"{sum(fits.values()):.1f} s, longest {max(fits.values()):.1f} s; load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    for workers in (1, 2):
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            started = time.perf_counter() - t0
            wall, fits = sweep(tasks, data, dask=cluster.scheduler_address)
        runs[workers] = (wall, fits)
        print(f"Dask, {workers} worker(s) x 1 thread (cluster started in {started:.1f} s): "
              f"{wall:.1f} s, fits {sum(fits.values()):.1f} s, longest "
              f"{max(fits.values()):.1f} s, speed-up {runs[1][0] / wall:.2f}x against 1 "
              f"worker, {runs['serial'][0] / wall:.2f}x against serial; load "
              f"{os.getloadavg()[0]:.1f}", flush=True)
    one = list(runs[1][1].values())
    print("projected from the 1-worker fits (longest first; no scatter or scheduling "
          "cost): " + ", ".join(f"{w} workers {makespan(one, w):.0f} s"
                                for w in (1, 2, 4, 8, 16, 32, 64)) +
          f"; never below the longest fit, {max(one):.1f} s")


if __name__ == "__main__":
    main()
