"""Fuzz the IDX/gzip reader and the model loader with atheris (coverage-guided, libFuzzer).

    mkdir -p /tmp/corpus && cp -r tests/corpus/idx tests/corpus/model /tmp/corpus/
    python tools/fuzz.py idx -max_total_time=240 -timeout=10 /tmp/corpus/idx
    python tools/fuzz.py model -max_total_time=300 -timeout=10 /tmp/corpus/model

(libFuzzer adds what it finds to the first corpus directory, hence the copy.) Every input
must give data (an array; a model that then predicts) or a ValueError; any other
exception, a crash or a hang (-timeout) is a finding. tests/test_corpus.py replays
tests/corpus in the test suite, and so under the ASan build in .ci/run.

idx inputs are file contents for fmnist_c.data.read_idx. model inputs starting with "PK"
are .npz file contents for fmnist_c.nn.load_model; any other input drives structured
edits of a valid saved model (config values, arrays deleted or replaced), which get past
the zip CRCs to the loader's own checks. The .npz bytes of an edited input that fails
are written to ./fuzz-findings/, ready to join tests/corpus/model/.
"""
import hashlib
import io
import json
import os
import sys

import numpy as np

from fmnist_c import (SVC, CNNClassifier, CNNEnsembleClassifier, DecisionTreeClassifier,
                      GradientBoostingClassifier, KNeighborsClassifier, MLPClassifier,
                      RandomForestClassifier, SGDLogisticRegression)
from fmnist_c.data import read_idx
from fmnist_c.features import HOGSVC
from fmnist_c.nn import Conv2D, Dense, Dropout, Flatten, Sequential, load_model


def check_idx(path):
    """read_idx(path) as the contract says: an array or ValueError."""
    try:
        arr = read_idx(path)
    except ValueError:
        return None
    assert isinstance(arr, np.ndarray) and arr.dtype.isnative, arr
    return arr


def check_model(source):
    """load_model on .npz bytes (read from a file object) or a path, as the contract says:
    ValueError, or a model that predicts finite probabilities."""
    try:
        model = load_model(io.BytesIO(source) if isinstance(source, bytes) else source)
    except ValueError:
        return None
    X = np.ones((2, model.n_features_in_), np.float32)
    assert np.isfinite(model.predict_proba(X)).all(), "a loaded model predicts NaN"
    assert model.predict(X).shape == (2,)
    return model


def saved_models():
    """.npz bytes of a small MLPClassifier, a small Sequential (with dropout, AdamW), a
    small GradientBoostingClassifier (with validation history), a KNeighborsClassifier
    (uint8 rows, sample weights), an SVC (probabilities, class weights), an
    SGDLogisticRegression (validation history), a DecisionTreeClassifier, a
    RandomForestClassifier (out-of-bag score), a CNNEnsembleClassifier of two small
    networks (test-time shifts), a HOGSVC (4 x 4 images, probabilities) and a HOGSVC of a
    union (two HOGs and the pixels, probabilities). Appended in this order: a corpus input
    picks its base by position."""
    rng = np.random.default_rng(0)
    X, y = rng.random((12, 5), dtype=np.float32), np.arange(12) % 3
    out = []
    mlp = MLPClassifier(hidden_layer_sizes=(4,), epochs=1, batch_size=4, random_state=0)
    seq = Sequential([Dense(4, activation="relu"), Dropout(0.2), Dense(3)], optimizer="adamw",
                     random_state=0)
    gbdt = GradientBoostingClassifier(n_estimators=2, num_leaves=3, min_child_samples=2,
                                      random_state=0)
    knn = KNeighborsClassifier(3, weights="distance", metric="manhattan")
    svc = SVC(probability=True, class_weight={0: 2.0}, random_state=0)
    lr = SGDLogisticRegression(epochs=2, batch_size=4, random_state=0)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0)
    forest = RandomForestClassifier(n_estimators=3, oob_score=True, random_state=0)
    ensemble = CNNEnsembleClassifier(CNNClassifier(layers=[Conv2D(2, 3), Flatten()], epochs=1,
                                                   batch_size=4, tta_shift=1),
                                     n_members=2, random_state=0)
    hogsvc = HOGSVC(hogs=({"pixels_per_cell": 2, "cells_per_block": 1},), probability=True,
                    random_state=0)
    union = HOGSVC(hogs=(({"pixels_per_cell": 2, "cells_per_block": 1},
                          {"orientations": 4, "pixels_per_cell": 1, "cells_per_block": 2,
                           "pixel_weight": 0.5}),), probability=True, random_state=0)
    for model in (mlp.fit(X, y), seq.fit(X, y, verbose=0),
                  gbdt.fit(X, y, validation_data=(X, y)),
                  knn.fit((X * 255).astype(np.uint8), y, sample_weight=np.arange(1.0, 13.0)),
                  svc.fit(X, y), lr.fit(X, y, validation_data=(X, y)), tree.fit(X, y),
                  forest.fit(X, y), ensemble.fit(np.tile(X, (1, 2))[:, :9], y),
                  hogsvc.fit(rng.random((12, 4, 4), dtype=np.float32), y),
                  union.fit(rng.random((12, 4, 4), dtype=np.float32), y)):
        buf = io.BytesIO()
        model.save(buf)
        out.append(buf.getvalue())
    return out


def json_value(fdp):
    kind = fdp.ConsumeIntInRange(0, 7)
    return [lambda: fdp.ConsumeInt(8), lambda: fdp.ConsumeRegularFloat(),
            lambda: fdp.PickValueInList([float("nan"), float("inf"), -1, 0, 2**63, 1e300]),
            lambda: fdp.ConsumeUnicode(8), lambda: None, lambda: [], lambda: {},
            lambda: fdp.ConsumeBool()][kind]()


def edit_json(node, fdp):
    """Replace one value somewhere inside a decoded JSON document (in place)."""
    while isinstance(node, (dict, list)) and node:
        keys = sorted(node) if isinstance(node, dict) else list(range(len(node)))
        key = fdp.PickValueInList(keys)
        child = node[key]
        if not isinstance(child, (dict, list)) or not child or fdp.ConsumeIntInRange(0, 3) == 0:
            node[key] = json_value(fdp)
            return
        node = child


def random_array(fdp):
    dtype = fdp.PickValueInList(["<i8", "<f4", "<f8", "u1", "?", "<U5", "<u8"])
    shape = tuple(fdp.ConsumeIntInRange(0, 4) for _ in range(fdp.ConsumeIntInRange(0, 2)))
    count = int(np.prod(shape))
    if dtype == "<U5":  # random bytes are not all valid code points
        return np.array([fdp.ConsumeUnicode(5) for _ in range(count)]).reshape(shape)
    n = count * np.dtype(dtype).itemsize
    return np.frombuffer(fdp.ConsumeBytes(n).ljust(n, b"\0"), dtype=dtype).reshape(shape)


def edited_model(data, bases):
    """.npz bytes of a saved model edited as `data` decides."""
    import atheris
    fdp = atheris.FuzzedDataProvider(data)
    with np.load(io.BytesIO(fdp.PickValueInList(bases))) as f:
        arrays = {k: f[k] for k in f.files}
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        what = fdp.ConsumeIntInRange(0, 3)
        key = fdp.PickValueInList(sorted(arrays)) if arrays else "config"
        if what <= 1 and arrays.get("config", np.zeros(0)).dtype.kind == "U":
            try:
                config = json.loads(str(arrays["config"]))
            except ValueError:  # an earlier edit replaced it
                continue
            edit_json(config, fdp)
            arrays["config"] = np.array(json.dumps(config))
        elif what == 2:
            arrays.pop(key, None)
        else:
            arrays[key] = random_array(fdp)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def main(argv):
    import atheris
    target = argv[1:2]
    if target == ["idx"]:
        fd = os.memfd_create("fuzz-idx")  # a file in memory that leaves nothing behind
        path = f"/proc/self/fd/{fd}"

        def test_one(data):
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
            check_idx(path)
    elif target == ["model"]:
        bases = saved_models()

        def test_one(data):
            raw = data if data[:2] == b"PK" else edited_model(data, bases)
            try:
                check_model(raw)
            except BaseException:
                if raw is not data:
                    os.makedirs("fuzz-findings", exist_ok=True)
                    name = hashlib.sha1(raw).hexdigest()[:16]
                    with open(os.path.join("fuzz-findings", name), "wb") as f:
                        f.write(raw)
                raise
    else:
        sys.exit(__doc__)
    atheris.instrument_all()
    atheris.Setup([argv[0]] + argv[2:], test_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
