"""Running independent fits in parallel through joblib: in local processes (``jobs``) or
on a dask.distributed cluster (``dask``: a scheduler's address), for `fmnist-c reproduce`'s
(model, seed, protocol) tasks. Not a scheduler of its own: joblib hands the tasks out,
Dask places them, moves the data and re-runs a task whose worker died.

Each task fixes its own OpenMP thread count (threadpoolctl, which finds the libgomp our
extension links), so a Dask worker with k threads runs k one-thread fits, or one k-thread
fit with ``threads=k`` on workers started with ``--nthreads 1``, never k x k threads.
Fits are bit-identical for any thread count, so where a task ran changes no result.
"""
import os

INSTALL = "pip install 'fmnist_c[dask]' (dask[distributed], joblib and threadpoolctl)"
CONNECT_TIMEOUT = 5  # seconds: an unreachable scheduler is an error at once, not a hang


def _need(what):
    try:
        import joblib  # noqa: F401
        import threadpoolctl  # noqa: F401
        if what == "dask":
            import distributed  # noqa: F401
    except ImportError as e:
        flag = "--dask" if what == "dask" else "--jobs above 1"
        raise ImportError(f"{flag} needs {e.name}: {INSTALL}") from None


def connect(address, timeout=CONNECT_TIMEOUT):
    """A dask.distributed Client of the scheduler at `address` ("tcp://host:8786"), or a
    ConnectionError saying so within `timeout` seconds."""
    _need("dask")
    from distributed import Client
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as e:
        raise ConnectionError(
            f"cannot reach the Dask scheduler at {address!r} within {timeout} s ({e}); start "
            f"one with `dask scheduler` and workers with `dask worker ADDRESS`, or check the "
            f"address (--dask / FMNIST_C_DASK)") from None


def _call(index, threads, fn, task, *shared):
    """(index, fn(*task, *shared)) with at most `threads` OpenMP threads (None: no limit).
    `shared` stay separate arguments: joblib's Dask backend swaps an argument it scattered
    for its future only at the top level."""
    if threads is None:
        return index, fn(*task, *shared)
    from threadpoolctl import threadpool_limits
    with threadpool_limits(threads, user_api="openmp"):
        return index, fn(*task, *shared)


def run(fn, tasks, shared=(), *, jobs=1, dask=None, threads=None):
    """An iterator of (i, fn(*tasks[i], *shared)) for every task, each as soon as it is
    done, in any order. `shared` are the arguments every task takes (the data): with
    `dask`, a scheduler address or a Client, they are scattered to every worker once, not
    shipped with each task; with `jobs` > 1 local processes, joblib memory-maps them.
    `threads`: OpenMP threads per task (default: 1 on Dask, the machine's cores shared
    among `jobs` locally, no limit serially). With `jobs` == 1 and no `dask`, the tasks
    run here, one after another. Arguments are checked and the scheduler reached at the
    call. Interrupted (Ctrl-C, an error), the tasks not yet done are cancelled: local
    processes are stopped; a client made here from an address is closed, which releases
    its futures; a Client passed in stays open, and joblib only drops its futures (they
    are released once nothing holds them)."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a positive int, got {jobs!r}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                or threads < 1):
        raise ValueError(f"threads must be None or a positive int, got {threads!r}")
    if dask is not None and jobs != 1:
        raise ValueError("jobs is for local processes; on Dask the workers' threads decide")
    tasks, shared = list(tasks), tuple(shared)
    if dask is None and jobs == 1:
        return (_call(i, threads, fn, task, *shared) for i, task in enumerate(tasks))
    _need("dask" if dask is not None else "jobs")
    if dask is None:
        return _local(fn, tasks, shared, jobs, threads or max(1, (os.cpu_count() or 1) // jobs))
    client = connect(dask) if isinstance(dask, str) else dask
    return _on_dask(fn, tasks, shared, client, threads or 1, own=client is not dask)


def _local(fn, tasks, shared, jobs, threads):
    import joblib
    with joblib.parallel_config(backend="loky", n_jobs=jobs):
        yield from _parallel(joblib, fn, tasks, shared, threads)


def _on_dask(fn, tasks, shared, client, threads, own):
    import joblib
    try:
        # scattered to every worker now, so tasks name the data instead of carrying it
        with joblib.parallel_config(backend="dask", client=client, scatter=list(shared),
                                    n_jobs=-1):
            yield from _parallel(joblib, fn, tasks, shared, threads)
    finally:
        if own:  # our own client: closing it releases every future still pending
            client.close()


def _parallel(joblib, fn, tasks, shared, threads):
    # one task per batch: a lost worker costs one fit, and the order given is kept
    parallel = joblib.Parallel(batch_size=1, return_as="generator_unordered")
    yield from parallel(joblib.delayed(_call)(i, threads, fn, task, *shared)
                        for i, task in enumerate(tasks))
