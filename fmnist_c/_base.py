"""The estimator base every fmnist_c model shares: scikit-learn conventions without
scikit-learn (get_params/set_params, fit returns self, fitted attributes end in "_"),
input validation with clear errors, and the training helpers the estimators have in common."""
import inspect
import sys
import warnings

import numpy as np

from . import _core


class _SklearnTwin:
    """An exception or warning class with a namesake in sklearn.exceptions. Raised through
    with_sklearn, it is also an instance of that namesake whenever scikit-learn is loaded,
    so code catching either class catches it; nothing is imported (when scikit-learn is not
    in sys.modules, nobody can be catching its classes)."""

    def __reduce__(self):  # the subclass made by with_sklearn pickles as its base
        return _twin_instance, (_home(type(self)), self.args)


class NotFittedError(_SklearnTwin, ValueError, AttributeError):
    """Raised when predict (or any fitted-only method) is called before fit; a ValueError
    and an AttributeError, and scikit-learn's NotFittedError when scikit-learn is loaded."""


class DataConversionWarning(_SklearnTwin, UserWarning):
    """Input had to be converted the way it should have been given (a column of labels
    for 1-D labels); scikit-learn's DataConversionWarning when scikit-learn is loaded."""


class InputTypeError(TypeError, ValueError):
    """Data of a type no estimator takes (None, complex numbers, a sparse matrix): a
    TypeError, and a ValueError as scikit-learn expects of invalid data."""


_TWINS = {}


def _home(cls):
    """The class of this module that cls is (or, made by with_sklearn, subclasses)."""
    return next(c for c in cls.__mro__ if globals().get(c.__name__) is c)


def with_sklearn(cls):
    """cls, or when scikit-learn is loaded a subclass of cls and of its sklearn.exceptions
    namesake (made once)."""
    theirs = getattr(sys.modules.get("sklearn.exceptions"), cls.__name__, None)
    if theirs is None:
        return cls
    if cls not in _TWINS:
        _TWINS[cls] = type(cls.__name__, (cls, theirs),
                           {"__module__": cls.__module__, "__doc__": cls.__doc__})
    return _TWINS[cls]


def _twin_instance(cls, args):
    return with_sklearn(cls)(*args)


def not_fitted(what):
    """The NotFittedError to raise when `what` is used before fit."""
    return with_sklearn(NotFittedError)(f"This {what} instance is not fitted yet; call fit "
                                        f"first")


def drop_channel(X):
    """(n, h, w) from single-channel images (n, h, w, 1) or (n, 1, h, w); others as given."""
    if X.ndim == 4 and X.shape[3] == 1:
        return X[..., 0]
    if X.ndim == 4 and X.shape[1] == 1:
        return X[:, 0]
    return X


def check_images(X, name="X", dtype=np.float32):
    """Return X as a C-contiguous (n_samples, n_features) array of `dtype`.

    Images may be given as (n, 28, 28), (n, 28, 28, 1), (n, 1, 28, 28) or already flat
    as (n, 784); any memory layout is accepted. Values are taken as given (no rescaling).
    """
    if X is None:
        raise InputTypeError(f"{name} is None; expected an array of images or features")
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise InputTypeError(f"{name} is a sparse matrix; fmnist_c takes dense arrays only "
                             f"(use {name}.toarray())")
    X = np.asarray(X)
    if X.dtype == object:  # numbers held as Python objects convert; anything else is an error
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must hold real numbers ({e})") from None
    if np.issubdtype(X.dtype, np.complexfloating):
        raise InputTypeError(f"{name} must hold real numbers: Complex data not supported "
                             f"(dtype {X.dtype})")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise TypeError(f"{name} must hold real numbers, got dtype {X.dtype}")
    X = drop_channel(X)
    if X.ndim == 3:  # (not -1: zero images have no width to infer)
        X = X.reshape(X.shape[0], X.shape[1] * X.shape[2])
    if X.ndim != 2:
        hint = (". Reshape your data: X.reshape(1, -1) for a single sample, X.reshape(-1, 1) "
                "for a single feature") if X.ndim == 1 else ""
        raise ValueError(
            f"{name} must be (n_samples, n_features) or images (n, 28, 28), (n, 28, 28, 1) "
            f"or (n, 1, 28, 28); got shape {X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has 0 samples; at least 1 is required")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has 0 features: 0 feature(s) (shape={X.shape}) while a "
                         f"minimum of 1 is required.")
    # float64 beyond float32's range becomes inf, and a sum may overflow: caught below
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(X, dtype=dtype)
        # a float sum is finite only if every term is (NaN and inf propagate): one pass with
        # no temporary, where isfinite(out).all() writes a boolean per value; the exact test
        # runs only when the sum is not finite (also when finite values overflow it)
        bad = np.issubdtype(X.dtype, np.floating) and not np.isfinite(out.sum()) \
            and not np.isfinite(out).all()
    if bad:
        if not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinity")
        raise ValueError(f"{name} has values beyond the range of {out.dtype}")
    return out


def check_labels(y, n_samples, name="y"):
    """Return y as a 1-D array of class labels of length n_samples."""
    if y is None:
        raise InputTypeError(f"{name} is None; this estimator requires y to be passed, but the "
                             f"target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(f"A column-vector {name} was passed when a 1d array was expected; use "
                      f"{name}.ravel() (labels of shape (n_samples,))",
                      with_sklearn(DataConversionWarning), stacklevel=3)
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but {name} has {y.shape[0]} labels")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or infinity")
        if (y != np.round(y)).any():
            raise ValueError(f"{name} has non-integer values (a continuous target); "
                             f"classification needs class labels")
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool
              or y.dtype.kind in "US" or y.dtype == object):
        raise TypeError(f"{name} must hold class labels, got dtype {y.dtype}")
    return y


def check_sample_weight(sample_weight, n_samples):
    """Return float32 sample weights (non-negative, finite, not all zero) or None."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"sample_weight must hold real numbers ({e})") from None
    if w.ndim != 1 or w.shape[0] != n_samples:
        raise ValueError(f"sample_weight must be 1-D of length {n_samples}, got shape {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight must be finite and non-negative")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero")
    return w.astype(np.float32)


def check_not_validation_data(sample_weight):
    """A clear error for fit(X, y, (X_val, y_val)): validation_data is keyword-only."""
    if isinstance(sample_weight, tuple) and len(sample_weight) == 2:
        raise TypeError("validation_data is keyword-only: fit(X, y, validation_data=(X_val, "
                        "y_val)); the third argument of fit is sample_weight")


def check_finite_outputs(out):
    """out, a model's float32 logits or probabilities, unless they overflowed: inputs are
    finite (check_images), but values near float32's limit can still make sums of their
    products infinite, and the softmax NaN."""
    if not np.isfinite(out).all():
        raise ValueError("X's values are too large for this model: its outputs overflowed "
                         "float32; scale X as it was for training (e.g. pixels / 255)")
    return out


def check_positive(value, name, kind=int, allow_zero=False):
    """Check a hyper-parameter is a positive int or float (or >= 0)."""
    ok_type = (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
               if kind is int else isinstance(value, (int, float, np.integer, np.floating))
               and not isinstance(value, bool))
    if not ok_type:
        raise TypeError(f"{name} must be {'an int' if kind is int else 'a number'}, got {value!r}")
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return kind(value)


def seed_from(random_state):
    """A 64-bit seed from None (fresh entropy), an int, or a NumPy RandomState/Generator."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return int(random_state) & 0xFFFFFFFFFFFFFFFF
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**63, dtype=np.int64))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63))
    raise TypeError(f"random_state must be None, an int or a NumPy RandomState/Generator, "
                    f"got {random_state!r}")


def n_threads(n_jobs):
    """OpenMP thread count for n_jobs (0 is invalid, as in scikit-learn). None or -1: all
    the calling thread may use, omp_get_max_threads() read here, so that a
    threadpoolctl.threadpool_limits (or omp_set_num_threads) in the caller also binds the
    kernels that run on a worker thread (tree and forest fits); 0 without OpenMP."""
    if n_jobs is None or n_jobs == -1:
        return _core.openmp_threads()
    if not isinstance(n_jobs, (int, np.integer)) or isinstance(n_jobs, bool) or n_jobs == 0 \
            or n_jobs < -1:
        raise ValueError(f"n_jobs must be None, -1 or a positive int, got {n_jobs!r}")
    return int(n_jobs)


class BaseEstimator:
    """get_params/set_params by inspecting __init__, so sklearn.base.clone, Pipeline and
    cross_val_score work when scikit-learn happens to be installed; a readable repr."""

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return sorted(p.name for p in sig.parameters.values() if p.name != "self"
                      and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not _same(v, sig.parameters[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    def _check_fitted(self):
        if not hasattr(self, "classes_"):
            raise not_fitted(type(self).__name__)

    def __sklearn_tags__(self):
        """scikit-learn's tags (read by its checks and meta-estimators, so scikit-learn is
        imported here only): dense 2-D float input without NaN, y required."""
        from sklearn.utils import InputTags, Tags, TargetTags
        return Tags(estimator_type=None, target_tags=TargetTags(required=True),
                    input_tags=InputTags(two_d_array=True, sparse=False, allow_nan=False))


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except (ValueError, TypeError):
        return a is b


class ClassifierMixin:
    """predict/score from predict_proba; classes_ and label encoding."""

    _estimator_type = "classifier"

    def __sklearn_tags__(self):
        from sklearn.utils import ClassifierTags
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.classifier_tags = ClassifierTags()
        return tags

    def _encode_labels(self, y):
        """Set classes_ from y and return y as int64 codes 0..n_classes-1."""
        try:
            self.classes_, codes = np.unique(y, return_inverse=True)
        except TypeError as e:  # an object array mixing labels that do not compare
            raise TypeError(f"y has labels that cannot be sorted together ({e})") from None
        if len(self.classes_) < 2:
            raise ValueError(f"y has a single class ({self.classes_[0]!r}); a classifier needs "
                             f"more than one class")
        return codes.astype(np.int64)

    def _codes_for(self, y, name="y"):
        """Map labels of an already fitted model to codes; unknown labels are an error."""
        codes = np.searchsorted(self.classes_, y)
        codes = np.clip(codes, 0, len(self.classes_) - 1)
        bad = self.classes_[codes] != y
        if bad.any():
            raise ValueError(f"{name} has labels not seen in fit: {np.unique(y[bad])[:5].tolist()}")
        return codes.astype(np.int64)

    def _check_X(self, X, dtype=np.float32):
        self._check_fitted()
        return self._check_width(check_images(X, dtype=dtype))

    def _check_width(self, X, name="X"):
        """X (checked by check_images) with the fitted feature count."""
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"{name} has {X.shape[1]} features, but {type(self).__name__} is "
                             f"expecting {self.n_features_in_} features as input")
        return X

    def _binary_margin(self, logits):
        """decision_function from (n, n_classes) logits: for two classes the positive class's
        margin, shape (n,), as scikit-learn's binary classifiers give it."""
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict(self, X):
        """Class labels: the most probable class of each sample."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on (X, y)."""
        from .metrics import accuracy_score
        return accuracy_score(y, self.predict(X), sample_weight=sample_weight)

    def to_onnx(self, path=None, input_shape=None):
        """This fitted model as an ONNX graph (onnx.ModelProto, checked), written to `path`
        when given; onnxruntime gives predict's classes and predict_proba's probabilities.
        The input is float32 (n, n_features_in_), or (n, *input_shape) when given (e.g.
        (28, 28)). Needs the onnx package (pip install "fmnist_c[onnx]"); see
        fmnist_c.onnx_export."""
        from .onnx_export import to_onnx
        return to_onnx(self, path, input_shape)


class FileMixin:
    """save(path) and load(path): the fitted model in an .npz file with no pickle inside
    (the format is fmnist_c.nn.io's; fmnist_c.nn.load_model reads any kind). A class
    gives _file_contents() -> (config: JSON-able dict, arrays: dict of arrays), called on
    a fitted model, and the classmethod _from_file(config, arrays), which rebuilds the
    model and raises ValueError when the arrays do not fit together (whatever a corrupt
    file holds: tools/fuzz.py feeds it mangled files)."""

    def save(self, path):
        """Write the fitted model to an .npz file (no pickle inside); this class's load or
        fmnist_c.nn.load_model reads it back."""
        from .nn.io import _save
        self._check_fitted()
        _save(path, type(self).__name__, *self._file_contents())

    @classmethod
    def load(cls, path):
        """Read a model written by this class's save."""
        from .nn.io import _load
        return _load(path, cls.__name__, cls._from_file)

    def _file_params(self):
        """get_params() as JSON holds them: NumPy scalars as Python ones, a random_state
        that is neither None nor an int as None, a class_weight dict as [label, weight]
        pairs (JSON keys are strings); _params_from_file undoes it."""
        params = {k: _plain(v) for k, v in self.get_params().items()}
        if not isinstance(params.get("random_state"), (int, type(None))):
            params["random_state"] = None
        if isinstance(params.get("class_weight"), dict):
            params["class_weight"] = [[_plain(k), float(v)]
                                      for k, v in params["class_weight"].items()]
        return params

    @staticmethod
    def _params_from_file(params):
        params = dict(params)
        if isinstance(params.get("class_weight"), (list, tuple)):  # tuples: nn.io's _from_json
            params["class_weight"] = {k: v for k, v in params["class_weight"]}
        return params

    def _file_classes(self):
        """classes_ as a file holds them (object labels as strings)."""
        classes = np.asarray(self.classes_)
        return classes.astype(str) if classes.dtype == object else classes


def _plain(value):
    """a value as JSON can hold it (NumPy scalars become Python ones)"""
    return value.item() if isinstance(value, np.generic) else value


def class_weights(class_weight, codes, classes):
    """Per-sample weights (float32) for class_weight None, "balanced" or {label: weight}."""
    if class_weight is None:
        return None
    counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")
        per_class = len(codes) / (len(classes) * np.maximum(counts, 1))
    elif isinstance(class_weight, dict):
        per_class = np.ones(len(classes))
        for label, weight in class_weight.items():
            hit = np.flatnonzero(classes == label)
            if hit.size == 0:
                raise ValueError(f"class_weight has label {label!r}, which is not in y")
            if not np.isfinite(weight) or weight < 0:
                raise ValueError(f"class_weight[{label!r}] must be finite and >= 0")
            per_class[hit[0]] = weight
    else:
        raise TypeError(f"class_weight must be None, 'balanced' or a dict, got {class_weight!r}")
    return per_class[codes].astype(np.float32)


def progress(total, verbose, desc, unit="epoch"):
    """A tqdm bar over epochs (or other units) when verbose, else a do-nothing stand-in."""
    if verbose:
        from tqdm.auto import tqdm
        return tqdm(total=total, desc=desc, unit=unit, leave=True)
    return _NoBar()


def record_epoch(history, loss, accuracy, val=None):
    """Append one epoch's loss and accuracy (and (val_loss, val_accuracy) when given) to a
    Keras-style history dict; returns the matching progress-bar postfix."""
    history["loss"].append(loss)
    history["accuracy"].append(accuracy)
    postfix = {"loss": f"{loss:.4f}", "acc": f"{accuracy:.4f}"}
    if val is not None:
        history.setdefault("val_loss", []).append(val[0])
        history.setdefault("val_accuracy", []).append(val[1])
        postfix.update(val_loss=f"{val[0]:.4f}", val_acc=f"{val[1]:.4f}")
    return postfix


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix(self, *args, **kwargs):
        pass

    def close(self):
        pass

