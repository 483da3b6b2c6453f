"""SGDLogisticRegression: multinomial logistic regression trained by minibatch SGD in C."""
import numpy as np

from . import _core
from ._base import (BaseEstimator, ClassifierMixin, FileMixin, check_finite_outputs,
                    check_images, check_labels, check_not_validation_data, check_positive, check_sample_weight,
                    class_weights, n_threads, seed_from)
from ._training import fit_epochs, hold_out

_SCHEDULES = ("constant", "invscaling", "cosine")
# rows handed to C per call: a chunk takes ~0.1 s at most, so Ctrl-C is felt at once
_CHUNK_ROWS = 16384


class SGDLogisticRegression(FileMixin, ClassifierMixin, BaseEstimator):
    """Multinomial (softmax) logistic regression trained by minibatch SGD.

    Forward pass, softmax cross-entropy gradient and the momentum update run in C (the
    GEMM shared with the neural networks), with the GIL released. Inputs are taken as
    given: scale pixels to [0, 1] yourself (``X / 255``); raw 0-255 pixels need a learning
    rate about 255**2 times smaller.

    Parameters
    ----------
    learning_rate : float
        Initial step size.
    lr_schedule : {"cosine", "constant", "invscaling"}
        "cosine" anneals to 0 over all steps of ``fit``; "invscaling" is
        ``learning_rate / (1 + epoch) ** power_t`` with fractional epochs; ``partial_fit``
        uses "invscaling" as it is, and "constant" for "cosine" (it has no known end).
    power_t : float
        Exponent of "invscaling".
    momentum : float
        Momentum in [0, 1).
    nesterov : bool
        Nesterov momentum.
    alpha : float
        L2 penalty on ``coef_`` (not on the intercept); the gradient gains ``alpha * coef_``.
    batch_size : int
        Samples per SGD step.
    epochs : int
        Passes over the training data (the most when early stopping).
    shuffle : bool
        Shuffle the rows every epoch.
    class_weight : None, "balanced" or dict
        Per-class weights multiplying each sample's loss, as in scikit-learn.
    early_stopping : bool
        Stop when the validation accuracy has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the best epoch's weights. The validation
        set is ``validation_data`` given to fit, else a random ``validation_fraction`` of X.
    validation_fraction, n_iter_no_change, tol : early-stopping settings.
    random_state : None, int, RandomState or Generator
        Seeds shuffling and the early-stopping split; an int makes fits bit-identical.
    verbose : int
        0 silent, 1 a tqdm progress bar over epochs.
    n_jobs : None or int
        Threads for the C kernels (None or -1: all cores).

    Fitted attributes: ``coef_`` (n_classes, n_features), ``intercept_`` (n_classes,),
    ``classes_``, ``n_features_in_``, ``n_iter_`` (epochs run), ``t_`` (SGD steps taken),
    ``history_`` (dict of per-epoch lists: loss, accuracy, and val_loss, val_accuracy when
    there is validation data). Training loss and accuracy are averaged over each epoch's
    batches before their updates, as Keras reports them.
    """

    def __init__(self, learning_rate=0.1, lr_schedule="cosine", power_t=0.5, momentum=0.9,
                 nesterov=True, alpha=0.0, batch_size=256, epochs=10, shuffle=True,
                 class_weight=None, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=5, tol=1e-4, random_state=None, verbose=0, n_jobs=None):
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.power_t = power_t
        self.momentum = momentum
        self.nesterov = nesterov
        self.alpha = alpha
        self.batch_size = batch_size
        self.epochs = epochs
        self.shuffle = shuffle
        self.class_weight = class_weight
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    # ---- validation -------------------------------------------------------------------
    def _check_hyper_params(self):
        check_positive(self.learning_rate, "learning_rate", float)
        check_positive(self.batch_size, "batch_size")
        check_positive(self.epochs, "epochs")
        check_positive(self.alpha, "alpha", float, allow_zero=True)
        check_positive(self.power_t, "power_t", float, allow_zero=True)
        check_positive(self.n_iter_no_change, "n_iter_no_change")
        check_positive(self.tol, "tol", float, allow_zero=True)
        if not 0 <= check_positive(self.momentum, "momentum", float, allow_zero=True) < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not 0 < check_positive(self.validation_fraction, "validation_fraction", float) < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got {self.validation_fraction!r}")
        if self.lr_schedule not in _SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {_SCHEDULES}, got {self.lr_schedule!r}")
        n_threads(self.n_jobs)

    def _validation_set(self, validation_data):
        Xv, yv = validation_data
        Xv = self._check_width(check_images(Xv, name="validation X"), "validation X")
        yv = check_labels(yv, Xv.shape[0], name="validation y")
        return Xv, self._codes_for(yv, "validation y")

    # ---- training ---------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Fit on (X, y) from zero weights; returns self.

        validation_data : optional (X_val, y_val), scored after every epoch into
        ``history_`` (and used by early stopping).
        """
        self._check_hyper_params()
        check_not_validation_data(sample_weight)
        X = check_images(X)
        y = check_labels(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        self._clear()
        codes = self._encode_labels(y)
        self.n_features_in_ = X.shape[1]
        rng = np.random.default_rng(seed_from(self.random_state))
        val = None
        if validation_data is not None:
            val = self._validation_set(validation_data)
        elif self.early_stopping:
            X, codes, sw, val = hold_out(X, codes, sw, self.validation_fraction, rng)
        self._init_weights()
        cw = class_weights(self.class_weight, codes, self.classes_)
        sw = cw if sw is None else (sw if cw is None else sw * cw)
        self._train(X, codes, sw, val, self.epochs, rng, schedule=self.lr_schedule)
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch of SGD on (X, y), continuing from the current weights.

        The first call needs ``classes`` (all labels that will ever appear)."""
        self._check_hyper_params()
        X = check_images(X)
        y = check_labels(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be given on the first call to partial_fit")
            self._encode_labels(np.asarray(classes))
            self.n_features_in_ = X.shape[1]
            self._init_weights()
        else:
            self._check_width(X)
        codes = self._codes_for(y)
        cw = class_weights(self.class_weight, codes, self.classes_)
        sw = cw if sw is None else (sw if cw is None else sw * cw)
        if not hasattr(self, "_rng"):
            self._rng = np.random.default_rng(seed_from(self.random_state))
        schedule = "constant" if self.lr_schedule == "cosine" else self.lr_schedule
        self._train(X, codes, sw, None, 1, self._rng, schedule=schedule)
        return self

    def _clear(self):
        for attr in ("coef_", "intercept_", "classes_", "t_", "best_epoch_"):
            self.__dict__.pop(attr, None)

    def _init_weights(self):
        k, d = len(self.classes_), self.n_features_in_
        self.coef_ = np.zeros((k, d), np.float32)
        self.intercept_ = np.zeros(k, np.float32)
        self._velocity = (np.zeros((k, d), np.float32), np.zeros(k, np.float32))
        self.t_ = 0
        self.n_iter_ = 0
        self.history_ = {"loss": [], "accuracy": []}

    def _train(self, X, codes, sw, val, epochs, rng, schedule):
        bs, threads = int(self.batch_size), n_threads(self.n_jobs)

        def train(part, lr):
            return _core.linear_sgd_epoch(
                self.coef_, self.intercept_, *self._velocity, X, codes, sw, part, lr, bs,
                float(self.momentum), bool(self.nesterov), float(self.alpha), threads)

        def rollback(best):
            self.coef_[...], self.intercept_[...] = best

        try:
            fit_epochs(self, train, X.shape[0], bs, epochs, rng, schedule=schedule,
                       learning_rate=self.learning_rate, power_t=self.power_t,
                       absolute_schedule=True, shuffle=self.shuffle,
                       chunk_rows=max(bs, _CHUNK_ROWS // bs * bs),
                       score=None if val is None else lambda: self._evaluate_codes(*val),
                       keep_best=bool(self.early_stopping),
                       n_iter_no_change=self.n_iter_no_change if self.early_stopping else None,
                       tol=self.tol, weight_sum=None if sw is None else float(sw.sum()),
                       checkpoint=lambda: (self.coef_.copy(), self.intercept_.copy()),
                       rollback=rollback, verbose=self.verbose)
        except FloatingPointError:  # diverged: leave no NaN model behind
            self._clear()
            raise

    def _evaluate_codes(self, X, codes):
        p = _core.linear_forward(X, self.coef_, self.intercept_, proba=True,
                                 nthreads=n_threads(self.n_jobs))
        loss = float(-np.mean(np.log(np.maximum(p[np.arange(len(codes)), codes], 1e-12))))
        return loss, float(np.mean(np.argmax(p, axis=1) == codes))

    # ---- files ------------------------------------------------------------------------
    def _file_contents(self):
        """settings, classes, weights, momentum buffers, step count and history
        (FileMixin's save); partial_fit after load shuffles afresh from random_state"""
        config = {"params": self._file_params(), "t": self.t_, "n_iter": self.n_iter_,
                  "history": self.history_, "best_epoch": getattr(self, "best_epoch_", None)}
        return config, {"classes": self._file_classes(), "coef": self.coef_,
                        "intercept": self.intercept_, "velocity_coef": self._velocity[0],
                        "velocity_intercept": self._velocity[1]}

    @classmethod
    def _from_file(cls, config, arrays):
        self = cls(**cls._params_from_file(config["params"]))
        self._check_hyper_params()
        classes, coef, intercept = arrays["classes"], arrays["coef"], arrays["intercept"]
        velocity = (arrays["velocity_coef"], arrays["velocity_intercept"])
        k = len(classes)
        if not (classes.ndim == 1 and k >= 2 and coef.ndim == 2 and coef.shape[0] == k
                and coef.shape[1] >= 1 and intercept.shape == (k,)
                and velocity[0].shape == coef.shape and velocity[1].shape == (k,)
                and all(a.dtype == np.float32 and np.isfinite(a).all()
                        for a in (coef, intercept, *velocity))):
            raise ValueError("the SGDLogisticRegression model file's arrays do not fit together")
        self.classes_, self.n_features_in_ = classes, coef.shape[1]
        self.coef_, self.intercept_ = coef.copy(), intercept.copy()  # writable: partial_fit
        self._velocity = (velocity[0].copy(), velocity[1].copy())
        self.t_, self.n_iter_ = int(config["t"]), int(config["n_iter"])
        self.history_ = {str(key): [float(v) for v in values]
                         for key, values in dict(config["history"]).items()}
        if config["best_epoch"] is not None:
            self.best_epoch_ = int(config["best_epoch"])
        return self

    # ---- prediction -------------------------------------------------------------------
    def decision_function(self, X):
        """Logits X coef_^T + intercept_, shape (n_samples, n_classes); for two classes,
        as in scikit-learn, the positive class's margin over the other, shape (n_samples,)."""
        X = self._check_X(X)
        return self._binary_margin(check_finite_outputs(_core.linear_forward(
            X, self.coef_, self.intercept_, nthreads=n_threads(self.n_jobs))))

    def predict_proba(self, X):
        """Class probabilities (softmax of the logits), shape (n_samples, n_classes)."""
        X = self._check_X(X)
        return check_finite_outputs(_core.linear_forward(X, self.coef_, self.intercept_, proba=True,
                                                         nthreads=n_threads(self.n_jobs)))
