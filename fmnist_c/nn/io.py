"""Saving and loading models as .npz files (no pickle inside): the file format, and the
JSON form of hyper-parameters."""
import json

import numpy as np

from .layers import _LAYERS, Layer, layer_from_config

_FORMAT = "fmnist_c.nn"


def _save(path, kind, config, arrays):
    np.savez(path, format=np.array(_FORMAT), version=np.int64(1), kind=np.array(kind),
             config=np.array(json.dumps(config)), **arrays)


def _load(path, kind, build):
    """build(config, arrays) for an fmnist_c model file of `kind` (None: any kind); ValueError
    for anything else, whatever a corrupt file holds (tools/fuzz.py checks this)."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as e:  # anything the zip and .npy parsers raise for a malformed file:
        # BadZipFile, EOFError, NotImplementedError and RuntimeError (odd or encrypted
        # members), tokenize.TokenError (a mangled .npy header), MemoryError (a header
        # claiming terabytes), ...
        raise ValueError(f"{path!s} is not an fmnist_c model file ({e})") from None
    if str(arrays.get("format", "")) != _FORMAT:
        raise ValueError(f"{path!s} is not an fmnist_c model file (no '{_FORMAT}' marker)")
    try:
        if int(arrays["version"]) != 1:
            raise ValueError(f"{path!s} has model format version {int(arrays['version'])}; "
                             f"this fmnist_c reads version 1")
        if str(arrays["kind"]) not in ((kind,) if kind else tuple(_model_kinds())):
            raise ValueError(f"{path!s} holds a {arrays['kind']}, not a {kind or 'known model'}")
        return build(json.loads(str(arrays["config"])), arrays)
    except (KeyError, TypeError, AttributeError, IndexError, OverflowError, RecursionError) as e:
        raise ValueError(f"{path!s} is a corrupt fmnist_c model file "
                         f"({type(e).__name__}: {e})") from None


def _model_kinds():
    """The classes a file's kind names (imported here: their modules import this one)."""
    from ..boosting import GradientBoostingClassifier
    from ..ensemble import RandomForestClassifier
    from ..linear import SGDLogisticRegression
    from ..features import HOGSVC
    from ..neighbors import KNeighborsClassifier
    from ..svm import SVC
    from ..tree import DecisionTreeClassifier
    from .classifiers import CNNClassifier, MLPClassifier
    from .ensemble import CNNEnsembleClassifier
    from .sequential import Sequential
    return {cls.__name__: cls for cls in (
        Sequential, MLPClassifier, CNNClassifier, GradientBoostingClassifier, SVC,
        KNeighborsClassifier, SGDLogisticRegression, DecisionTreeClassifier,
        RandomForestClassifier, CNNEnsembleClassifier, HOGSVC)}


def load_model(path):
    """Load any model saved by fmnist_c (Sequential, MLPClassifier, CNNClassifier,
    CNNEnsembleClassifier,
    GradientBoostingClassifier, SVC, KNeighborsClassifier, SGDLogisticRegression,
    DecisionTreeClassifier, RandomForestClassifier, features.HOGSVC), from a path or a
    file."""
    return _load(path, None, lambda config, arrays:
                 _model_kinds()[str(arrays["kind"])]._from_file(config, arrays))


def _to_json(value):
    """A hyper-parameter as JSON: tuples as lists, layer specs as {"class": ..., config}."""
    if isinstance(value, Layer):
        return {"class": type(value).__name__, **value.get_config()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


def _from_json(value):
    """_to_json's inverse (lists of numbers come back as tuples)."""
    if isinstance(value, dict) and value.get("class") in _LAYERS:
        return layer_from_config(value)
    if isinstance(value, list):
        items = [_from_json(v) for v in value]
        return items if any(isinstance(v, Layer) for v in items) else tuple(items)
    return value
