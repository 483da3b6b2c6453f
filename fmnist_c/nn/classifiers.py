"""MLPClassifier and CNNClassifier: scikit-learn-style estimators over Sequential, with
the study's and our improved presets."""
import warnings

import numpy as np

from .._base import (BaseEstimator, ClassifierMixin, FileMixin, check_images, check_labels,
                     check_not_validation_data, check_positive, check_sample_weight, n_threads,
                     seed_from)
from .._training import hold_out
from .augment import _augment_args, shift_images
from .io import _from_json, _to_json
from .layers import (BatchNorm, Conv2D, Dense, Dropout, Flatten, GlobalAveragePooling2D, Layer,
                     MaxPool2D, ReLU, Residual)
from .optimizers import _OPTIMIZER_CLASSES, _OPTIMIZERS, SGD
from .sequential import Sequential


_UNSET = "deprecated"  # the default of a renamed hyper-parameter: not given


class _NetClassifier(FileMixin, ClassifierMixin, BaseEstimator):
    """What MLPClassifier and CNNClassifier share: the optimizer from flat settings, fit with
    the estimator contract, inference, save/load. Subclasses give _layers(n_classes),
    PRESETS and, for augmentation, _augment()."""

    PRESETS = {}

    @classmethod
    def preset(cls, name, **overrides):
        """A classifier with a named preset's settings (see the class's PRESETS)."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    def _augment(self):
        return None

    def _renamed(self):
        """(alpha, early_stopping, n_iter_no_change, from_patience) with the names of 0.1
        (weight_decay, patience) honoured and a FutureWarning for each, for one release."""
        alpha, early, n_iter = self.alpha, self.early_stopping, self.n_iter_no_change
        if not (isinstance(self.weight_decay, str) and self.weight_decay == _UNSET):
            warnings.warn("weight_decay was renamed alpha in fmnist_c 0.2 (the name scikit-learn "
                          "and SGDLogisticRegression use); weight_decay will be removed in 0.3",
                          FutureWarning, stacklevel=3)
            alpha = check_positive(self.weight_decay, "weight_decay", float, allow_zero=True)
        patience = not (isinstance(self.patience, str) and self.patience == _UNSET)
        if patience:
            warnings.warn("patience=k is early_stopping=True, n_iter_no_change=k since fmnist_c "
                          "0.2; patience will be removed in 0.3", FutureWarning, stacklevel=3)
            if self.patience is not None:
                early, n_iter = True, check_positive(self.patience, "patience")
        return alpha, early, n_iter, patience

    def _make_model(self, n_classes, alpha):
        layers = self._layers(n_classes)
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZERS)}, got {self.optimizer!r}")
        check_positive(alpha, "alpha", float, allow_zero=True)
        opt = SGD(self.learning_rate, self.momentum, self.nesterov, alpha)
        opt._c_args()  # a bad momentum is an error even where the optimizer ignores it
        if self.optimizer != "sgd":
            opt = _OPTIMIZER_CLASSES[self.optimizer](learning_rate=self.learning_rate,
                                                     weight_decay=alpha)
            opt._c_args()
        return Sequential(layers, loss=self.loss, optimizer=opt, lr_schedule=self.lr_schedule,
                          init=self.init, random_state=self.random_state, n_jobs=self.n_jobs,
                          label_smoothing=self.label_smoothing, ema_momentum=self.ema_momentum)

    def _targets(self, codes):
        if self.loss == "categorical_crossentropy":
            return np.eye(len(self.classes_), dtype=np.float32)[codes]
        return codes

    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Fit from freshly initialised weights; returns self.

        validation_data : optional (X_val, y_val), scored after every epoch into
        ``history_``; restore_best_weights and early stopping use it. Without it, early
        stopping holds out a random validation_fraction of X.
        """
        epochs = check_positive(self.epochs, "epochs")
        batch_size = check_positive(self.batch_size, "batch_size")
        n_threads(self.n_jobs)
        alpha, early_stopping, n_iter_no_change, from_patience = self._renamed()
        check_positive(n_iter_no_change, "n_iter_no_change")
        tol = check_positive(self.tol, "tol", float, allow_zero=True)
        if not 0 < check_positive(self.validation_fraction, "validation_fraction", float) < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), got "
                             f"{self.validation_fraction!r}")
        augment = _augment_args(self._augment())
        check_not_validation_data(sample_weight)
        X = check_images(X)
        y = check_labels(y, X.shape[0])
        sw = check_sample_weight(sample_weight, X.shape[0])
        self._clear()
        codes = self._encode_labels(y)
        model = self._make_model(len(self.classes_), alpha)
        self.n_features_in_ = X.shape[1]
        val = None
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = self._check_width(check_images(Xv, name="validation X"), "validation X")
            val = (Xv, self._targets(self._codes_for(check_labels(yv, Xv.shape[0],
                                                                  "validation y"), "validation y")))
        elif early_stopping and not from_patience:  # (patience acted on validation_data only)
            rng = np.random.default_rng([seed_from(self.random_state), 2])
            X, codes, sw, (Xv, cv) = hold_out(X, codes, sw, self.validation_fraction, rng)
            val = (Xv, self._targets(cv))
        self.model_ = model.build(X.shape[1])
        self._test_shifts()  # checked before training, not after it
        try:
            model._fit_checked(X, self._targets(codes), sw, val, epochs, batch_size,
                               verbose=self.verbose, augment=augment,
                               keep_best=bool(self.restore_best_weights) and val is not None,
                               n_iter_no_change=n_iter_no_change if early_stopping and
                               val is not None else None, tol=tol)
        except FloatingPointError:  # diverged: leave no NaN model behind
            self._clear()
            raise
        finally:
            if hasattr(self, "model_"):  # also after Ctrl-C: the model stays usable
                self._sync()
        return self

    def _clear(self):
        for attr in ("classes_", "model_", "best_epoch_"):
            self.__dict__.pop(attr, None)

    def _sync(self):
        self.history_ = self.model_.history_
        self.n_iter_ = self.model_.n_iter_
        if hasattr(self.model_, "best_epoch_"):
            self.best_epoch_ = self.model_.best_epoch_

    def _test_shifts(self):
        """The (dy, dx) shifts test-time augmentation averages over (none: [])."""
        return []

    def _net_forward(self, X, proba):
        """Probabilities or logits of checked X; with test-time shifts, the mean of the
        shifted copies' probabilities (their log as logits)."""
        shifts = self._test_shifts()
        if not shifts:
            return self.model_._forward(X, proba=proba)
        shape = self.model_.input_shape_
        p = sum(self.model_._forward(shift_images(X, shape, dy, dx), proba=True)
                for dy, dx in shifts) / np.float32(len(shifts))
        return p if proba else finite_log(p)

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes)."""
        X = self._check_X(X)
        return self._net_forward(X, proba=True)

    def decision_function(self, X):
        """Logits (the output layer before softmax), shape (n_samples, n_classes); for two
        classes, as in scikit-learn, the positive class's margin over the other, (n_samples,)."""
        X = self._check_X(X)
        return self._binary_margin(self._net_forward(X, proba=False))

    def evaluate(self, X, y):
        """(mean cross-entropy, accuracy) on (X, y)."""
        X = self._check_X(X)
        codes = self._codes_for(check_labels(y, X.shape[0]))
        return self.model_._evaluate(X, self._targets(codes))

    def count_params(self):
        """Parameters of the fitted network (batch norm's running statistics included)."""
        self._check_fitted()
        return self.model_.count_params()

    def _file_contents(self):
        """settings, classes and the network (FileMixin's save)"""
        return ({"params": self._json_params(), "model": self.model_.get_config()},
                {**self.model_._arrays(), "classes": self._file_classes()})

    def _json_params(self):
        """the settings as a file holds them (also an ensemble's template, unfitted)"""
        return {k: _to_json(v) for k, v in self._file_params().items()}

    @classmethod
    def _from_json_params(cls, json_params):
        """an unfitted classifier with the settings _json_params wrote"""
        params = cls._params_from_file({k: _from_json(v) for k, v in json_params.items()})
        if "alpha" not in params:  # a file of fmnist_c 0.1: its names, in today's words
            params["alpha"] = params.pop("weight_decay", 0.0)
            patience = params.pop("patience", None)
            if patience is not None:
                params.update(early_stopping=True, n_iter_no_change=patience)
        return cls(**params)

    @classmethod
    def _from_file(cls, config, arrays):
        self = cls._from_json_params(config["params"])
        self.classes_ = arrays["classes"]
        self.model_ = Sequential.from_config(config["model"])._restore(arrays)
        if self.classes_.shape != (self.model_.n_outputs_,):
            raise ValueError(f"the model file has {self.classes_.size} classes for "
                             f"{self.model_.n_outputs_} outputs")
        self.n_features_in_ = self.model_.n_features_in_
        self._sync()
        return self


PRESETS = {
    # the study's ANN (A) (docs/architecture.md, The study protocol): sparse CE, SGD 0.01
    # momentum 0.9, batch 64, 20 epochs, best epoch
    "study-a": dict(),
    # (B): one-hot CE, SGD 0.01 without momentum, batch 64, 100 epochs, last epoch
    "study-b": dict(loss="categorical_crossentropy", momentum=0.0, epochs=100,
                    restore_best_weights=False),
    # our stronger MLP: 784-512-512-10, dropout 0.3, AdamW, cosine schedule, best epoch;
    # study split test accuracy 0.9093 (seed 0) and 0.9082 (seed 1), ~90 s on 2 cores
    "improved": dict(hidden_layer_sizes=(512, 512), optimizer="adamw", learning_rate=1e-3,
                     alpha=0.01, dropout=0.3, lr_schedule="cosine", batch_size=128,
                     epochs=40, init="he_uniform"),
}


class MLPClassifier(_NetClassifier):
    """Multi-layer perceptron classifier: Dense+ReLU hidden layers, softmax output, trained
    in C. The defaults are the original study's ANN (run A): 784-256-256-10,
    sparse categorical cross-entropy, SGD lr 0.01 momentum 0.9, batch 64, 20 epochs,
    keeping the epoch with the best validation accuracy. ``MLPClassifier.preset(name)``
    gives "study-a", "study-b" (one-hot CE, no momentum, 100 epochs, last epoch) and
    "improved". Inputs are taken as given: scale pixels yourself (X / 255).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
    loss : "sparse_categorical_crossentropy" or "categorical_crossentropy" (labels are
        one-hot encoded; identical gradients, so identical training).
    optimizer : "sgd", "adam" or "adamw"
    learning_rate, momentum, nesterov : optimizer settings (momentum, nesterov: SGD only).
    alpha : weight decay: L2 added to the gradient (alpha * w) for sgd/adam, decoupled
        (w *= 1 - lr * alpha each step) for adamw; 0: none. SGDLogisticRegression's name.
    lr_schedule : "constant", "cosine", "step" or "onecycle".
    batch_size, epochs : minibatch size and number of epochs.
    dropout : rate of a Dropout after each hidden layer (0: none).
    init : "glorot_uniform" or "he_uniform".
    restore_best_weights : keep the epoch with the best validation accuracy (needs
        validation data; without it the last epoch is kept).
    early_stopping : stop when the validation accuracy has not improved by more than
        ``tol`` for ``n_iter_no_change`` epochs. The validation set is fit's
        validation_data, else a random ``validation_fraction`` of X held out.
    validation_fraction, n_iter_no_change, tol : early-stopping settings, as in
        SGDLogisticRegression and scikit-learn (tol 0: any better epoch counts, as the
        study's checkpoint).
    label_smoothing, ema_momentum : label smoothing of the training loss and weight
        averaging (0: off), as Sequential's; ema_momentum needs restore_best_weights=False.
    random_state : None, int, RandomState or Generator; an int gives bit-identical fits on
        any number of threads.
    verbose : 0 silent, 1 a progress bar per epoch.
    n_jobs : threads for the C kernels (None or -1: all cores).
    weight_decay, patience : the names of fmnist_c 0.1, deprecated (FutureWarning) and
        removed in 0.3: weight_decay is alpha, patience=k is early_stopping=True,
        n_iter_no_change=k (acting only when fit is given validation_data, as it did).

    Fitted attributes: ``classes_``, ``n_features_in_``, ``model_`` (the Sequential),
    ``history_``, ``n_iter_``, ``best_epoch_`` (when the best epoch was restored).
    """

    def __init__(self, hidden_layer_sizes=(256, 256), loss="sparse_categorical_crossentropy",
                 optimizer="sgd", learning_rate=0.01, momentum=0.9, nesterov=False, alpha=0.0,
                 lr_schedule="constant", batch_size=64, epochs=20, dropout=0.0,
                 init="glorot_uniform", restore_best_weights=True, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=10, tol=0.0, label_smoothing=0.0,
                 ema_momentum=0.0, random_state=None, verbose=0, n_jobs=None,
                 weight_decay=_UNSET, patience=_UNSET):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.label_smoothing = label_smoothing
        self.ema_momentum = ema_momentum
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.alpha = alpha
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.dropout = dropout
        self.init = init
        self.restore_best_weights = restore_best_weights
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.weight_decay = weight_decay
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    PRESETS = PRESETS

    def _layers(self, n_classes):
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, (int, np.integer)):
            sizes = (sizes,)
        if isinstance(sizes, str) or not np.iterable(sizes):
            raise TypeError(f"hidden_layer_sizes must be a tuple of ints, got {sizes!r}")
        layers = []
        for units in sizes:
            layers.append(Dense(check_positive(units, "hidden_layer_sizes"), activation="relu"))
            if self.dropout:
                layers.append(Dropout(self.dropout))
        return layers + [Dense(n_classes)]


# ---- CNNClassifier -----------------------------------------------------------------------
def study_cnn(n_classes=10):
    """docs/architecture.md's CNN: conv16-pool-conv16-pool-conv100-dense120-dense10 (126,310
    parameters for 28x28 inputs and 10 classes)."""
    return [Conv2D(16, 3, activation="relu"), MaxPool2D(2),
            Conv2D(16, 3, activation="relu"), MaxPool2D(2),
            Conv2D(100, 3, activation="relu"), Flatten(),
            Dense(120, activation="relu"), Dense(n_classes)]


def finite_log(proba):
    """log of averaged probabilities, finite: one that underflowed to 0 counts as its
    dtype's smallest normal number"""
    return np.log(np.maximum(proba, np.finfo(proba.dtype).tiny))


def improved_cnn(n_classes=10):
    """Our stronger network: 3x3 "same" convolutions with batch norm, one at 28x28 (32
    filters) and two at 14x14 (64), max pooling and dropout after each stage, and a dense
    head with batch norm and dropout. A second 32-filter convolution at 28x28 would add
    60% to the multiply-adds; the budget is 20 minutes of training on two cores."""
    def conv(filters):
        return [Conv2D(filters, 3, padding="same"), BatchNorm(), ReLU()]
    return [*conv(32), MaxPool2D(2), Dropout(0.1),
            *conv(64), *conv(64), MaxPool2D(2), Dropout(0.2), Flatten(),
            Dense(256), BatchNorm(), ReLU(), Dropout(0.3), Dense(n_classes)]


def resnet_cnn(n_classes=10):
    """A small ResNet, our candidate for issue 18 (95% on the official test set in 30
    minutes on two cores): a 32-filter "same" convolution at 28x28 with batch norm, max
    pooling to 14x14, two basic blocks of 64 filters there (the first projects 32 -> 64),
    one of 128 with stride 2 to 7x7, global average pooling and the classes. Channel counts
    are multiples of 16 (whole AVX-512 vectors) and every 3x3 stride-1 convolution but the
    first has >= 32 input channels, so Winograd runs it. About 37M multiply-adds per image
    forward, 3.2 times the improved network's."""
    def block(filters, strides=1):
        return [Residual([Conv2D(filters, 3, strides=strides, padding="same"), BatchNorm(), ReLU(),
                          Conv2D(filters, 3, padding="same"), BatchNorm()]), ReLU()]
    return [Conv2D(32, 3, padding="same"), BatchNorm(), ReLU(), MaxPool2D(2),
            *block(64), *block(64), *block(128, strides=2), GlobalAveragePooling2D(),
            Dense(n_classes)]


_ARCHITECTURES = {"study": study_cnn, "improved": improved_cnn, "resnet": resnet_cnn}

CNN_PRESETS = {
    # docs/architecture.md: Adam 1e-3, batch 128, 50 epochs, the best validation epoch
    "study": dict(),
    # shifts only: mirrored images cost accuracy here (shoes all point one way; README's
    # ablation), and 25 epochs fit in the 20-minute budget on 2 cores (20 epochs gave
    # 0.938-0.943 on the study split, depending on float rounding; 25 gave 0.9429)
    "improved": dict(architecture="improved", optimizer="adamw", learning_rate=2e-3,
                     alpha=0.05, lr_schedule="onecycle", epochs=25, augment_shift=2,
                     init="he_uniform"),
}


class CNNClassifier(_NetClassifier):
    """Convolutional network classifier trained in C. The defaults are the original
    study's CNN (``architecture="study"``, see study_cnn: 126,310 parameters): Adam lr 1e-3,
    batch 128, 50 epochs, keeping the epoch with the best validation accuracy.
    ``CNNClassifier.preset("improved")`` is our stronger network (improved_cnn) with AdamW,
    a one-cycle schedule and augmentation. Inputs are images (n, 28, 28), (n, 28, 28, 1),
    (n, 1, 28, 28) or (n, 784), taken as given: scale pixels yourself (X / 255).

    Parameters
    ----------
    layers : None or a list of layer specs (Conv2D, MaxPool2D, AvgPool2D,
        GlobalAveragePooling2D, Flatten, BatchNorm, Dense, ReLU, Dropout, Residual) ending in any layer:
        a final Dense(n_classes) is appended. None: `architecture`'s network.
    architecture : "study", "improved" or "resnet" (see resnet_cnn; used when layers is None).
    loss, optimizer, learning_rate, momentum, nesterov, alpha, lr_schedule, batch_size,
        epochs, init, restore_best_weights, early_stopping, validation_fraction,
        n_iter_no_change, tol, label_smoothing, ema_momentum, random_state, verbose, n_jobs,
        weight_decay, patience : as MLPClassifier.
    tta_shift : test-time augmentation: predict_proba (and predict, score) average the
        probabilities of each image and its four copies shifted by this many pixels up,
        down, left and right (zero filled), five forward passes; decision_function gives
        the log of that mean; evaluate and the epochs' validation scores do not use it,
        nor does ONNX export (it refuses). 0: off.
    augment_shift : random translations by up to this many pixels while training (0: off).
    augment_flip : random left-right mirroring while training.
    augment_erase : probability of random erasing of one rectangle while training.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``model_`` (the Sequential; layout
    channels last, so get_weights() gives Conv2D weights as (filters, kh, kw, channels)),
    ``history_``, ``n_iter_``, ``best_epoch_``.

    It follows the estimator contract of the others (get_params/set_params, clone,
    ``fit(X, y, sample_weight=None, *, validation_data=None)``), but scikit-learn's
    estimator checks (tests/test_estimator_checks.py) are not run on it: they feed
    arbitrary (n, d) tables, while a convolutional network takes images, square by
    default (a 2-feature table is no image for a 3 x 3 convolution to slide over).
    """

    PRESETS = CNN_PRESETS

    def __init__(self, layers=None, architecture="study", loss="sparse_categorical_crossentropy",
                 optimizer="adam", learning_rate=1e-3, momentum=0.9, nesterov=False, alpha=0.0,
                 lr_schedule="constant", batch_size=128, epochs=50, augment_shift=0,
                 augment_flip=False, augment_erase=0.0, init="glorot_uniform",
                 restore_best_weights=True, early_stopping=False, validation_fraction=0.1,
                 n_iter_no_change=10, tol=0.0, label_smoothing=0.0, ema_momentum=0.0,
                 tta_shift=0, random_state=None, verbose=0, n_jobs=None,
                 weight_decay=_UNSET, patience=_UNSET):
        self.layers = layers
        self.label_smoothing = label_smoothing
        self.ema_momentum = ema_momentum
        self.tta_shift = tta_shift
        self.architecture = architecture
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.alpha = alpha
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.epochs = epochs
        self.augment_shift = augment_shift
        self.augment_flip = augment_flip
        self.augment_erase = augment_erase
        self.init = init
        self.restore_best_weights = restore_best_weights
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.weight_decay = weight_decay
        self.patience = patience
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    def _layers(self, n_classes):
        if self.layers is None:
            if self.architecture not in _ARCHITECTURES:
                raise ValueError(f"architecture must be one of {sorted(_ARCHITECTURES)}, got "
                                 f"{self.architecture!r}")
            return _ARCHITECTURES[self.architecture](n_classes)
        layers = list(self.layers)
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"layers must be layer specs, got {layer!r}")
        return layers + [Dense(n_classes)]

    def _augment(self):
        return {"shift": self.augment_shift, "flip": self.augment_flip,
                "erase": self.augment_erase}

    def _test_shifts(self):
        k = check_positive(self.tta_shift, "tta_shift", allow_zero=True)
        if k and k >= min(self.model_.input_shape_[1:]):
            raise ValueError(f"tta_shift must be smaller than the image side, got {k}")
        return [(0, 0), (-k, 0), (k, 0), (0, -k), (0, k)] if k else []
