"""What the estimators trained by minibatch SGD share (SGDLogisticRegression, Sequential and
through it MLPClassifier and CNNClassifier): the learning-rate schedules, the held-out
validation split of early stopping, and the epoch loop (shuffle; chunks of minibatches per
C call; validation scores; best-epoch checkpoint; early stopping; progress bar). The C
calls themselves stay with each estimator, handed in as functions."""
import math
import threading
import time

import numpy as np

from ._base import progress, record_epoch

SCHEDULES = ("constant", "invscaling", "cosine", "step", "onecycle")
CHUNK_SECONDS = 0.15  # wall time of one adaptive C call: the longest Ctrl-C and the bar wait


_POLL_SECONDS = 0.05  # how often the waiting main thread wakes for Ctrl-C and the bar


def run_in_worker(work, control, bar, name, on_wake=None):
    """work() (a long kernel call that stops when control[0] is set and counts what it has
    done in control[1]) on a worker thread, so that Ctrl-C reaches the calling thread,
    which waits, moves `bar` to control[1] and calls on_wake() each time it wakes. On any
    exception, the caller's (Ctrl-C) or the worker's: the kernel is told to stop, waited
    for, and the exception raised here. Returns what work() returned; closes `bar`."""
    out = {}

    def target():
        try:
            out["result"] = work()
        except BaseException as e:  # handed to the caller's thread
            out["error"] = e

    worker = threading.Thread(target=target, name=name, daemon=True)
    shown = 0
    try:
        worker.start()
        while worker.is_alive():
            worker.join(_POLL_SECONDS)
            bar.update(int(control[1]) - shown)
            shown = int(control[1])
            if on_wake is not None:
                on_wake()
        if "error" in out:
            raise out["error"]
    except BaseException:
        control[0] = 1
        worker.join()
        raise
    finally:
        bar.close()
    return out["result"]


def learning_rates(schedule, learning_rate, first_step, n_steps, total_steps, *,
                   steps_per_epoch=1, power_t=0.5):
    """Learning rate of steps first_step .. first_step + n_steps - 1 (0-based) as float32:
    "constant"; "invscaling": learning_rate / (1 + step / steps_per_epoch) ** power_t
    (fractional epochs, as scikit-learn's SGD); "cosine" annealing from learning_rate to 0
    over total_steps; "step": x0.1 at 50% and again at 75% of total_steps; "onecycle"
    (torch's OneCycleLR defaults): cosine warm-up from learning_rate/25 to learning_rate over
    the first 30%, then cosine annealing to learning_rate/25e4."""
    if schedule == "constant":
        return np.full(n_steps, learning_rate, np.float32)
    step = first_step + np.arange(n_steps, dtype=np.float64)
    if schedule == "invscaling":
        return (learning_rate / (1.0 + step / steps_per_epoch) ** power_t).astype(np.float32)
    t = np.minimum(step / total_steps, 1.0)
    if schedule == "cosine":
        lr = learning_rate * 0.5 * (1.0 + np.cos(np.pi * t))
    elif schedule == "step":
        lr = learning_rate * 0.1 ** ((t >= 0.5).astype(int) + (t >= 0.75))
    else:
        def anneal(start, end, frac):
            return end + (start - end) * 0.5 * (1.0 + np.cos(np.pi * frac))
        lo, hi, warm = learning_rate / 25.0, learning_rate, 0.3
        lr = np.where(t < warm, anneal(lo, hi, t / warm),
                      anneal(hi, lo / 1e4, (t - warm) / (1.0 - warm)))
    return lr.astype(np.float32)


def hold_out(X, codes, sw, fraction, rng):
    """(X, codes, sw) without a random `fraction` of the rows, and (X_val, codes_val) made of
    them: early stopping's validation set when fit is given no validation_data."""
    perm = rng.permutation(X.shape[0])
    n_val = max(1, int(round(fraction * X.shape[0])))
    if n_val >= X.shape[0]:
        raise ValueError("too few samples to hold out a validation set")
    val = (X[perm[:n_val]], codes[perm[:n_val]])
    keep = np.sort(perm[n_val:])
    return X[keep], codes[keep], None if sw is None else sw[keep], val


def fit_epochs(model, train, n, batch_size, epochs, rng, *, schedule, learning_rate,
               power_t=0.5, absolute_schedule=False, shuffle=True, chunk_rows=None,
               score=None, keep_best=False, n_iter_no_change=None, tol=0.0, weight_sum=None,
               checkpoint=None, rollback=None, on_diverge=None, verbose=0):
    """Run `epochs` epochs of minibatch SGD over n rows; returns nothing.

    train(order_part, lr) runs the steps of one chunk of rows in C and returns their (sum
    of weighted losses, hits); score() gives (val_loss, val_accuracy) after each epoch (None:
    no validation). `model` holds the count of steps ``t_`` and of epochs ``n_iter_`` and the
    Keras-style ``history_``, all updated here. The schedule runs over this call's steps
    (from the model's steps so far when absolute_schedule). Chunks hold chunk_rows rows,
    or (None) grow and shrink so a C call lasts about CHUNK_SECONDS.

    An epoch improves when its val_accuracy beats the best so far by more than tol; with
    keep_best the weights of the best epoch come back at the end (checkpoint() -> state,
    rollback(state)), also after Ctrl-C or divergence, and set ``best_epoch_``;
    n_iter_no_change stops after that many epochs without improvement (None: never). A
    FloatingPointError (the C kernels' divergence) with no checkpoint to go back to calls
    on_diverge() before it propagates.
    """
    steps_per_epoch = math.ceil(n / batch_size)
    origin = 0 if absolute_schedule else model.t_
    total = model.t_ - origin + epochs * steps_per_epoch
    weight_sum = n if weight_sum is None else weight_sum
    rows = chunk_rows or batch_size
    best, best_acc, stale = None, -np.inf, 0
    done = model.n_iter_
    try:
        for epoch in range(epochs):
            order = rng.permutation(n) if shuffle else np.arange(n)
            bar = progress(steps_per_epoch, verbose, f"Epoch {done + epoch + 1}/{done + epochs}",
                           unit="batch")
            loss, hits, start = 0.0, 0, 0
            try:
                while start < n:
                    part = order[start:start + rows]
                    steps = math.ceil(len(part) / batch_size)
                    lr = learning_rates(schedule, learning_rate, model.t_ - origin, steps, total,
                                        steps_per_epoch=steps_per_epoch, power_t=power_t)
                    t0 = time.perf_counter()
                    chunk_loss, chunk_hits = train(part, lr)
                    dt = time.perf_counter() - t0
                    loss, hits, start = loss + chunk_loss, hits + chunk_hits, start + len(part)
                    model.t_ += steps
                    bar.update(steps)
                    if chunk_rows is None:
                        scale = min(4.0, max(0.25, CHUNK_SECONDS / max(dt, 1e-4)))
                        rows = max(batch_size, int(steps * scale) * batch_size)
                model.n_iter_ += 1
                scores = score() if score is not None else None
                bar.set_postfix(record_epoch(model.history_, loss / weight_sum, hits / n, scores))
                if scores is not None and scores[1] > best_acc + tol:
                    best_acc, stale = scores[1], 0
                    if keep_best:
                        best = (checkpoint(), model.n_iter_)
                elif scores is not None:
                    stale += 1
            finally:
                bar.close()
            if n_iter_no_change is not None and stale >= n_iter_no_change:
                break
    except FloatingPointError:  # diverged: the weights are NaN
        if best is None and on_diverge is not None:
            on_diverge()
        raise
    finally:
        if best is not None:
            rollback(best[0])
            model.best_epoch_ = best[1]
