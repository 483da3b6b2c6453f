"""Sequential: a stack of layer specs compiled into the C program, trained with softmax
cross-entropy, Keras-style."""
import json
import math

import numpy as np

from .. import _core
from .._base import (BaseEstimator, NotFittedError, check_finite_outputs, check_images,
                     check_labels, check_positive, check_sample_weight, n_threads, seed_from,
                     with_sklearn)
from .._training import fit_epochs
from .augment import _augment_args
from .io import _load, _save
from .layers import (_LAYERS, BatchNorm, Conv2D, GlobalAveragePooling2D, Layer, MaxPool2D,
                     Residual, layer_from_config)
from .optimizers import _OPTIMIZER_CLASSES, _optimizer

_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")
_SCHEDULES = ("constant", "cosine", "step", "onecycle")
_INITS = ("glorot_uniform", "he_uniform")
_COLUMN = _core.NN_COLUMNS  # csrc/nn/nn.h: enum fm_nn_column
_FCOLUMN = _core.NN_FCOLUMNS  # enum fm_nn_fcolumn
_PREDICT_BATCH = 1024
_WORKSPACE_FLOATS = 1 << 25  # bound on an inference batch's activations (128 MB)


def _program_row(code, shape, out, offset, window, skip):
    """One layer's row of the C program: each value in the column C names for it."""
    row = [0] * len(_COLUMN)
    named = zip(("type", "in_c", "in_h", "in_w", "out_c", "out_h", "out_w", "param", "kh", "kw",
                 "stride", "pad_h", "pad_w", "skip"), (code, *shape, *out, offset, *window, skip))
    for name, value in named:
        row[_COLUMN[name]] = value
    return row


def _settings_row(rate, eps):
    """One layer's float settings (dropout rate or batch-norm momentum, epsilon) in C's columns."""
    row = [0.0] * len(_FCOLUMN)
    row[_FCOLUMN["rate"]], row[_FCOLUMN["eps"]] = rate, eps
    return row


def _fraction(value, name):
    """A setting in [0, 1)."""
    value = check_positive(value, name, float, allow_zero=True)
    if not value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def _spatial_first(layer):
    """Whether a network starting with `layer` takes images."""
    if isinstance(layer, Residual):
        return _spatial_first(layer.layers[0])
    return isinstance(layer, (Conv2D, MaxPool2D, GlobalAveragePooling2D))


def _aligned_zeros(n):
    """n float32 zeros starting on a 64-byte cache line. The kernels split weight rows
    between threads in whole lines of the array; from an aligned start those are whole
    lines of memory too, so the threads' optimizer steps never write the same line."""
    block = np.zeros(n + 16, np.float32)
    start = (-block.ctypes.data % 64) // 4
    return block[start:start + n]


class Sequential(BaseEstimator):
    """A stack of layers trained with softmax cross-entropy, Keras-style.

    Parameters
    ----------
    layers : list of layer specs (Dense, Conv2D, MaxPool2D, AvgPool2D,
        GlobalAveragePooling2D, Flatten, BatchNorm, ReLU, Dropout, Residual)
        The last layer's units are the classes (softmax is part of the loss).
    loss : "sparse_categorical_crossentropy" (integer labels 0..k-1) or
        "categorical_crossentropy" (one-hot or soft target rows (n, k)). Both are the same
        C function (linear.h's fm_softmax_xent): one-hot rows give bit-identical gradients.
    optimizer : "sgd", "adam", "adamw" or an SGD/Adam/AdamW instance.
    lr_schedule : "constant", "cosine", "step" or "onecycle" over each fit call's steps
        (see learning_rates).
    init : "glorot_uniform" (Keras' default) or "he_uniform"; biases start at 0.
    input_shape : None (square grayscale images (1, s, s) when the first layer is spatial,
        else (n_features,)) or (features,) / (C, H, W); a sample's floats are stored (H, W, C).
    random_state : None, int, RandomState or Generator: initial weights, shuffling and
        dropout masks; an int makes training bit-identical, whatever n_jobs.
    n_jobs : threads for the C kernels (None or -1: all cores).
    label_smoothing : the training loss is the cross-entropy against targets (1 - e) t + e/k
        (t one-hot or given rows, k classes), as Keras' and torch's label_smoothing; 0: off.
        The training loss in history_ and gradient() use it; evaluate and val_loss do not.
    ema_momentum : 0 (off) or m in (0, 1): weight averaging. An exponential moving average
        of the parameters (avg = m avg + (1 - m) w after every step, from the weights fit
        starts with) becomes the weights at the end of each fit call, and batch norm's
        running statistics are then recomputed for them over fit's X (no augmentation,
        dropout off; torch.optim.swa_utils.update_bn). Epochs are scored (validation_data)
        on the raw weights, so it does not combine with restore_best_weights.

    Like Keras, ``fit`` continues from the current weights; the first call builds the
    network. Attributes after fit: ``params_`` (flat float32), ``history_`` (per-epoch loss,
    accuracy, val_loss, val_accuracy), ``t_`` (steps taken), ``n_iter_`` (epochs run),
    ``best_epoch_`` (when restoring the best validation epoch). get_params/set_params
    give the constructor's arguments (the optimizer as its instance), so
    ``sklearn.base.clone`` makes an unbuilt copy; a model unpickles with its arrays on
    64-byte boundaries, as build makes them.
    """

    def __init__(self, layers, loss="sparse_categorical_crossentropy", optimizer="sgd",
                 lr_schedule="constant", init="glorot_uniform", input_shape=None,
                 random_state=None, n_jobs=None, label_smoothing=0.0, ema_momentum=0.0):
        self.layers = layers if isinstance(layers, list) else list(layers)  # a list: as given
        self.loss = loss
        self.label_smoothing = _fraction(label_smoothing, "label_smoothing")
        self.ema_momentum = _fraction(ema_momentum, "ema_momentum")
        self.optimizer = _optimizer(optimizer)
        self.lr_schedule = lr_schedule
        self.init = init
        self.input_shape = input_shape
        self.random_state = random_state
        self.n_jobs = n_jobs
        for layer in self.layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"layers must be layer specs ({', '.join(_LAYERS)}), got {layer!r}")
        if not self.layers:
            raise ValueError("a Sequential model needs at least one layer")
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
        if lr_schedule not in _SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {_SCHEDULES}, got {lr_schedule!r}")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")

    # ---- building ---------------------------------------------------------------------
    @property
    def built(self):
        return hasattr(self, "params_")

    def __setstate__(self, state):
        """Unpickled arrays start wherever NumPy puts them (16 or 32 bytes in); the kernels'
        threads want params_ and its companions on cache lines, as build allocates them."""
        self.__dict__.update(state)
        for name in ("params_", "grads_", "optimizer_state_"):
            if name in state:
                aligned = _aligned_zeros(state[name].size)
                aligned[...] = state[name]
                setattr(self, name, aligned)

    def build(self, n_features):
        """Compile the program for inputs of n_features and draw the initial weights."""
        n_params = self._compile(n_features)
        seed = seed_from(self.random_state)
        self._seed = seed
        self._rng = np.random.default_rng([seed, 1])
        init_rng = np.random.default_rng([seed, 0])
        self.params_ = _aligned_zeros(n_params)
        for layer, shape, offset, size in self._built:
            values = layer._initial(init_rng, shape, self.init)
            if values is not None:
                self.params_[offset:offset + size] = values
        self._reset_training()
        return self

    def _compile(self, n_features):
        """Set the program for inputs of n_features; returns the parameter count (nothing
        of that size is allocated here)."""
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
        elif _spatial_first(self.layers[0]) and math.isqrt(n_features) ** 2 == n_features:
            side = math.isqrt(n_features)  # square grayscale images, e.g. 784 = 28 x 28
            shape = (1, side, side)
        else:
            shape = (n_features,)
        if len(shape) == 1:
            shape = (shape[0], 1, 1)
        if len(shape) != 3 or int(np.prod(shape)) != n_features:
            raise ValueError(f"input_shape {self.input_shape} does not hold {n_features} features")
        rows, settings, built, offset, shapes = [], [], [], 0, []
        self.input_shape_ = shape
        for layer in (p for spec in self.layers for p in spec._expand()):
            layer = layer._bind(shapes)
            out, size = layer.output_shape(shape), layer.param_count(shape)
            rows.append(_program_row(layer.code, shape, out, offset, layer._window(shape),
                                     layer._skip(len(rows))))
            shapes.append(shape)
            settings.append(_settings_row(*layer._settings()))
            built.append((layer, shape, offset, size))
            offset, shape = offset + size, out
        self._program = np.array(rows, np.int64)
        self._settings = np.array(settings, np.float32)
        self._built = built
        self.n_features_in_ = n_features
        self.n_outputs_ = int(np.prod(shape))
        return offset

    def _reset_training(self):
        self.grads_ = _aligned_zeros(self.params_.size)
        per = 1 if self.optimizer.kind == "sgd" else 2
        self.optimizer_state_ = _aligned_zeros(per * self.params_.size)
        self.t_ = 0
        self.n_iter_ = 0
        self.history_ = {"loss": [], "accuracy": []}

    def count_params(self):
        return int(self.params_.size) if self.built else None

    def get_weights(self):
        """Every layer's parameter arrays in order, as views into params_: Dense [W (units,
        inputs), b], Conv2D [W (filters, kh, kw, channels), b], BatchNorm [gamma, beta,
        running mean, running variance]."""
        return self._views(self.params_)

    def _views(self, flat):
        """get_weights' views of any flat array laid out as params_ (e.g. a gradient)."""
        return [v for layer, shape, offset, size in self._built
                for v in layer._views(flat[offset:offset + size], shape)]

    def summary(self):
        """(layer, output shape (C, H, W), parameter count) of every layer of the program."""
        return [(layer, layer.output_shape(shape), size) for layer, shape, _, size in self._built]

    def set_weights(self, weights):
        """Copy [W1, b1, ...] (shapes as get_weights) into params_."""
        mine = self.get_weights()
        if len(weights) != len(mine):
            raise ValueError(f"expected {len(mine)} arrays, got {len(weights)}")
        for dst, src in zip(mine, weights):
            src = np.asarray(src, np.float32)
            if src.shape != dst.shape:
                raise ValueError(f"weight of shape {src.shape} where {dst.shape} is expected")
            dst[...] = src

    # ---- data -------------------------------------------------------------------------
    def _check_X(self, X, name="X"):
        if not self.built:
            raise with_sklearn(NotFittedError)("This Sequential model is not built yet; call "
                                               "fit first")
        return self._check_width(check_images(X, name=name), name)

    def _check_width(self, X, name="X"):
        """X (checked by check_images) with the built model's feature count."""
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"{name} has {X.shape[1]} features, but the model takes "
                             f"{self.n_features_in_}")
        return X

    def _check_targets(self, y, n, name="y"):
        k = self.n_outputs_
        if self.loss == "categorical_crossentropy":
            t = np.asarray(y, dtype=np.float32)
            if t.shape != (n, k):
                raise ValueError(f"{name} must be one-hot or soft target rows of shape "
                                 f"({n}, {k}) for categorical_crossentropy, got {t.shape}")
            if not np.isfinite(t).all() or (t < 0).any():
                raise ValueError(f"{name} target rows must be finite and non-negative")
            return np.ascontiguousarray(t)
        y = check_labels(y, n, name=name)
        if not np.issubdtype(y.dtype, np.integer) and y.dtype != bool \
                and not np.issubdtype(y.dtype, np.floating):
            raise TypeError(f"{name} must be integer labels 0..{k - 1} for "
                            f"sparse_categorical_crossentropy, got dtype {y.dtype}")
        y = y.astype(np.int64)
        if y.min() < 0 or y.max() >= k:
            raise ValueError(f"{name} labels must lie in [0, {k}), got {y.min()}..{y.max()}")
        return y

    # ---- training ---------------------------------------------------------------------
    def fit(self, X, y, epochs=1, batch_size=32, validation_data=None, verbose=1, shuffle=True,
            restore_best_weights=False, patience=None, sample_weight=None, augment=None):
        """Train for `epochs` more epochs; returns self (history in ``history_``).

        validation_data : (X_val, y_val) scored after each epoch.
        restore_best_weights : keep the weights of the epoch with the best val_accuracy
            (the study's checkpoint); also applied when Ctrl-C stops training.
        patience : stop after this many epochs without a better val_accuracy (None: never).
        augment : None or a dict of training-time image augmentation, done in C on each
            batch as it is gathered, seeded by random_state: shift (random translation by up
            to this many pixels, zero filled: padding plus random crop), flip (mirror
            left-right with probability 1/2), erase (probability of zeroing one random
            rectangle of 2-33% of the image, as torchvision's RandomErasing).
        """
        epochs = check_positive(epochs, "epochs")
        batch_size = check_positive(batch_size, "batch_size")
        if patience is not None:
            patience = check_positive(patience, "patience")
        if (restore_best_weights or patience) and validation_data is None:
            raise ValueError("restore_best_weights and patience need validation_data")
        self.optimizer._c_args()
        aug_args = _augment_args(augment)
        X = check_images(X)
        if not self.built:
            self.build(X.shape[1])
        X = self._check_width(X)  # checked once: the check reads every pixel
        y = self._check_targets(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        val = None
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("validation_data must be (X_val, y_val)")
            Xv = self._check_X(validation_data[0], "validation X")
            val = (Xv, self._check_targets(validation_data[1], Xv.shape[0], "validation y"))
        self._fit_checked(X, y, sw, val, epochs, batch_size, verbose=verbose, shuffle=shuffle,
                          keep_best=bool(restore_best_weights), n_iter_no_change=patience,
                          augment=aug_args)
        return self

    def _fit_checked(self, X, y, sw, val, epochs, batch_size, *, verbose, augment,
                     shuffle=True, keep_best=False, n_iter_no_change=None, tol=0.0):
        """fit on checked data (what fit and the classifiers' fit validated once): X float32
        (n, n_features_in_) C-contiguous, y int64 labels or float32 target rows, sw float32
        or None, val None or (X_val, y_val) alike, augment as _augment_args returns it.
        keep_best, n_iter_no_change and tol as _training.fit_epochs takes them."""
        opt_args = self.optimizer._c_args()
        if augment["shift"] or augment["flip"] or augment["erase"]:
            _, h, w = self.input_shape_
            if h == 1 or w == 1:
                raise ValueError("augment needs image inputs; this network's input is flat")
            if augment["shift"] >= min(h, w):
                raise ValueError(f"augment shift must be smaller than the image side, got "
                                 f"{augment['shift']}")
        if keep_best and self.ema_momentum:
            raise ValueError("ema_momentum and restore_best_weights do not combine: epochs are "
                             "scored on the raw weights, the average replaces them at the end")
        y = self._smoothed(y)
        threads = n_threads(self.n_jobs)
        ema = None
        if self.ema_momentum:
            ema = _aligned_zeros(self.params_.size)
            ema[...] = self.params_
        # one workspace for every C call of this fit: a fresh one per call would page-fault
        # hundreds of megabytes each time for wide convolutional networks
        size = _core.nn_workspace_size(self.params_, self._program, self._settings, batch_size)
        workspace = _aligned_zeros(size - 16)
        c_args = {**opt_args, **augment}

        def train(part, lr):
            return _core.nn_train(self.params_, self.grads_, self.optimizer_state_,
                                  self._program, self._settings, X, y, part, lr, batch_size,
                                  step=self.t_, seed=self._seed, sample_weight=sw,
                                  nthreads=threads, workspace=workspace, ema=ema,
                                  ema_decay=self.ema_momentum, **c_args)

        def rollback(best):
            self.params_[...] = best

        def unbuild():  # diverged with no epoch to go back to: predict refuses, the next
            del self.params_  # fit starts afresh

        fit_epochs(self, train, X.shape[0], batch_size, epochs, self._rng,
                   schedule=self.lr_schedule, learning_rate=float(self.optimizer.learning_rate),
                   shuffle=shuffle, score=None if val is None else lambda: self._evaluate(*val),
                   keep_best=keep_best, n_iter_no_change=n_iter_no_change, tol=tol,
                   weight_sum=None if sw is None else float(sw.sum()),
                   checkpoint=self.params_.copy, rollback=rollback, on_diverge=unbuild,
                   verbose=verbose)
        if ema is not None:
            self.params_[...] = ema
            if any(isinstance(layer, BatchNorm) for layer, _, _, _ in self._built):
                _core.nn_refresh_batchnorm(self.params_, self._program, self._settings, X,
                                           batch_size, nthreads=threads)

    def _smoothed(self, y):
        """Checked labels or target rows as the training loss sees them: target rows
        (1 - e) t + e / k when label_smoothing e > 0, else y as it is."""
        e, k = self.label_smoothing, self.n_outputs_
        if not e:
            return y
        t = np.eye(k, dtype=np.float32)[y] if y.ndim == 1 else y
        return np.ascontiguousarray(t * np.float32(1 - e) + np.float32(e / k), np.float32)

    # ---- inference --------------------------------------------------------------------
    def _predict_batch(self):
        """Rows per inference batch: up to _PREDICT_BATCH, fewer for wide convolutional
        networks, so the workspace stays under _WORKSPACE_FLOATS."""
        out_shapes = self._program[:, [_COLUMN["out_c"], _COLUMN["out_h"], _COLUMN["out_w"]]]
        per_row = 2 * int(np.prod(out_shapes, axis=1).sum())
        return int(min(_PREDICT_BATCH, max(1, _WORKSPACE_FLOATS // per_row)))

    def predict_proba(self, X):
        """Softmax probabilities, shape (n_samples, n_outputs)."""
        return self._forward(self._check_X(X), proba=True)

    def decision_function(self, X):
        """Logits (the last layer's outputs before softmax), shape (n_samples, n_outputs)."""
        return self._forward(self._check_X(X), proba=False)

    def _forward(self, X, proba):
        """Probabilities or logits of checked X."""
        return check_finite_outputs(_core.nn_predict(
            self.params_, self._program, self._settings, X, batch_size=self._predict_batch(),
            proba=proba, nthreads=n_threads(self.n_jobs)))

    def predict(self, X):
        """The most probable class index of each sample."""
        return np.argmax(self.decision_function(X), axis=1)

    def evaluate(self, X, y, sample_weight=None):
        """(mean loss, accuracy) in inference mode, as Keras' evaluate."""
        X = self._check_X(X)
        y = self._check_targets(y, X.shape[0])
        return self._evaluate(X, y, check_sample_weight(sample_weight, X.shape[0]))

    def _evaluate(self, X, y, sw=None):
        """evaluate on checked arrays (fit's validation data is checked once, not each epoch)"""
        loss, hits = _core.nn_evaluate(self.params_, self._program, self._settings, X, y, sw,
                                       batch_size=self._predict_batch(), nthreads=n_threads(self.n_jobs))
        return loss / (X.shape[0] if sw is None else float(sw.sum())), hits / X.shape[0]

    def gradient(self, X, y, sample_weight=None, training=False, step=0):
        """(mean training loss (label_smoothing applied), flat parameter gradient, input
        gradient) of all rows as one batch, without changing the weights (dropout active
        when `training`, drawn as at `step`)."""
        X = self._check_X(X)
        y = self._check_targets(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        y = self._smoothed(y)
        grads = np.zeros_like(self.params_)
        loss, _, dx = _core.nn_gradient(self.params_, grads, self._program, self._settings, X, y, sw,
                                        training=training, step=step, seed=self._seed,
                                        want_dx=True, nthreads=n_threads(self.n_jobs))
        return loss / X.shape[0], grads, dx

    # ---- persistence ------------------------------------------------------------------
    def get_config(self):
        return {"layers": [{"class": type(l).__name__, **l.get_config()} for l in self.layers],
                "loss": self.loss,
                "optimizer": {"class": type(self.optimizer).__name__,
                              **self.optimizer.get_config()},
                "lr_schedule": self.lr_schedule, "init": self.init,
                "label_smoothing": self.label_smoothing, "ema_momentum": self.ema_momentum,
                "input_shape": None if self.input_shape is None else list(self.input_shape),
                "random_state": self.random_state if isinstance(self.random_state, int) else None}

    @classmethod
    def from_config(cls, config):
        layers = [layer_from_config(c) for c in config["layers"]]
        o = dict(config["optimizer"])
        optimizer = {c.__name__: c for c in _OPTIMIZER_CLASSES.values()}[o.pop("class")](**o)
        shape = config["input_shape"]
        return cls(layers, loss=config["loss"], optimizer=optimizer,
                   lr_schedule=config["lr_schedule"], init=config["init"],
                   input_shape=None if shape is None else tuple(shape),
                   random_state=config["random_state"],
                   # older files have neither setting
                   label_smoothing=config.get("label_smoothing", 0.0),
                   ema_momentum=config.get("ema_momentum", 0.0))

    def _arrays(self):
        if not self.built:
            raise ValueError("only a built (fitted) model can be saved")
        return {"n_features": np.int64(self.n_features_in_), "params": self.params_,
                "optimizer_state": self.optimizer_state_, "t": np.int64(self.t_),
                "n_iter": np.int64(self.n_iter_), "seed": np.uint64(self._seed),
                "shuffle_state": np.array(json.dumps(self._rng.bit_generator.state)),
                "history": np.array(json.dumps(self.history_)),
                "best_epoch": np.int64(getattr(self, "best_epoch_", 0))}

    def _restore(self, arrays):
        n_features = check_positive(int(arrays["n_features"]), "n_features")
        # before build allocates for the saved architecture, which a corrupt file can inflate
        if arrays["params"].shape != (self._compile(n_features),):
            raise ValueError("the saved parameters do not fit the saved architecture")
        self.build(n_features)
        if arrays["optimizer_state"].shape != self.optimizer_state_.shape:
            raise ValueError("the saved optimizer state does not fit the saved architecture")
        for name in ("params", "optimizer_state"):
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"the saved {name} hold NaN or infinity")
        self.params_[...] = arrays["params"]
        self.optimizer_state_[...] = arrays["optimizer_state"]
        self.t_, self.n_iter_ = int(arrays["t"]), int(arrays["n_iter"])
        self._seed = int(arrays["seed"])
        self._rng.bit_generator.state = json.loads(str(arrays["shuffle_state"]))
        self.history_ = json.loads(str(arrays["history"]))
        if int(arrays.get("best_epoch", 0)) > 0:  # files before 0.1.0's CNN lack it
            self.best_epoch_ = int(arrays["best_epoch"])
        return self

    def save(self, path):
        """Write the architecture, weights, optimizer state and history to an .npz file."""
        _save(path, "Sequential", self.get_config(), self._arrays())

    @classmethod
    def load(cls, path):
        """Read a model written by Sequential.save."""
        return _load(path, "Sequential", cls._from_file)

    @classmethod
    def _from_file(cls, config, arrays):
        return cls.from_config(config)._restore(arrays)
