"""ONNX export checked by onnxruntime: every exported model passes onnx.checker, and
onnxruntime gives our predicted classes exactly and our probabilities within 1e-5 (1e-4
for convolutional networks). Skips where onnx or onnxruntime is not installed (the
fmnist_c[onnx] extra, part of the test extra)."""
import itertools
import sys

import numpy as np
import pytest

import fmnist_c
from fmnist_c import (SVC, CNNClassifier, DecisionTreeClassifier, GradientBoostingClassifier,
                      MLPClassifier, RandomForestClassifier, SGDLogisticRegression, cli)
from fmnist_c.nn import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                         GlobalAveragePooling2D, MaxPool2D, ReLU, Sequential)
from fmnist_c.study import StudyForest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def run(proto, X):
    """(labels, probabilities) from onnxruntime, after onnx.checker."""
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output_label", "output_probability"]
    return session.run(None, {"input": np.asarray(X, np.float32)})


def assert_same(model, X, tol, input_shape=None):
    """onnxruntime's answers on X (fed with input_shape) are the model's; returns the
    largest probability difference."""
    X = np.asarray(X, np.float32)
    flat = X.reshape(len(X), -1)
    labels, proba = run(model.to_onnx(input_shape=input_shape),
                        flat if input_shape is None else X.reshape(len(X), *input_shape))
    ours = model.predict_proba(flat)
    assert proba.shape == ours.shape and proba.dtype == np.float32
    np.testing.assert_allclose(proba, ours, rtol=0, atol=tol)
    np.testing.assert_array_equal(labels, model.predict(flat))
    return float(np.abs(proba - ours).max())


def every_layer_cnn():
    """Each layer type, strides and paddings (odd "same" totals, so the extra row/column
    goes bottom/right), non-square windows, channels > 1 into Flatten and Dense."""
    return [Conv2D(6, (3, 5), strides=2, padding="same", activation="relu"), BatchNorm(),
            AvgPool2D(2, strides=1), Dropout(0.2), Conv2D(5, 2, padding="same"), ReLU(),
            MaxPool2D((2, 3), strides=2), Conv2D(4, 3, strides=2, padding="same"),
            BatchNorm(), Flatten(), Dense(12), BatchNorm(), ReLU(), Dropout(0.1)]


def gap_cnn():
    return [Conv2D(8, 4, strides=3), ReLU(), GlobalAveragePooling2D()]


def shuffle_batchnorm(model, seed=0):
    """Random gammas, betas and running statistics: a check that sees the inference-mode
    arithmetic, which a briefly trained net (statistics near 0 and 1) barely does."""
    rng = np.random.default_rng(seed)
    weights = iter(model.model_.get_weights())
    for layer, _, _ in model.model_.summary():
        arrays = [next(weights) for _ in range({Dense: 2, Conv2D: 2, BatchNorm: 4}.get(type(layer), 0))]
        if isinstance(layer, BatchNorm):
            for a, (lo, hi) in zip(arrays, [(0.5, 2), (-1, 1), (-1, 1), (0.2, 3)]):
                a[...] = rng.uniform(lo, hi, a.size)
    return model


MODELS = {
    "lr": lambda: SGDLogisticRegression(epochs=3, random_state=0),
    "tree": lambda: DecisionTreeClassifier(random_state=0),
    "tree-depth-5-entropy": lambda: DecisionTreeClassifier(max_depth=5, criterion="entropy",
                                                           random_state=0),
    "forest": lambda: RandomForestClassifier(n_estimators=12, random_state=0),
    "gbdt": lambda: GradientBoostingClassifier(n_estimators=15, random_state=0),
    "mlp": lambda: MLPClassifier(hidden_layer_sizes=(32, 16), dropout=0.2, epochs=2,
                                 random_state=0),
    "cnn-study": lambda: CNNClassifier(epochs=1, random_state=0),
    "cnn-improved": lambda: CNNClassifier(architecture="improved", epochs=1, random_state=0),
    "cnn-every-layer": lambda: CNNClassifier(layers=every_layer_cnn(), epochs=2,
                                             random_state=0),
    "cnn-global-average": lambda: CNNClassifier(layers=gap_cnn(), epochs=2, random_state=0),
}


@pytest.fixture(scope="module")
def sample():
    X, y = fmnist_c.load_sample()
    split = fmnist_c.study_split(X, y)
    return (split.X_train.reshape(-1, 784).astype(np.float32) / 255, split.y_train,
            split.X_test.reshape(-1, 784).astype(np.float32) / 255)


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime_gives_our_classes_and_probabilities(sample, name):
    X, y, X_test = sample
    n = 400 if name.startswith("cnn") else len(X)  # the export is under test, not accuracy
    model = MODELS[name]().fit(X[:n], y[:n])
    if name == "cnn-every-layer":
        shuffle_batchnorm(model)
    cnn = name.startswith("cnn")  # images in for the CNNs, flat rows for the others
    assert_same(model, X_test, 1e-4 if cnn else 1e-5, input_shape=(28, 28) if cnn else None)


def test_trees_split_at_the_threshold_as_we_do(sample):
    """Inputs exactly at each threshold and one float32 step either side: BRANCH_LEQ on the
    same float32 threshold must send each the way our x <= threshold does."""
    X, y, _ = sample
    model = RandomForestClassifier(n_estimators=8, max_depth=8, random_state=0).fit(X, y)
    nodes = model._nodes
    split = nodes["left"] >= 0
    feature, threshold = nodes["feature"][split], nodes["threshold"][split]
    rng = np.random.default_rng(0)
    probe = np.tile(X[:200], (3, 1))
    picks = rng.integers(0, len(feature), (len(probe), 200))
    step = np.repeat([-np.inf, 0, np.inf], 200)[:, None]
    values = threshold[picks].astype(np.float32)
    values = np.where(step == 0, values, np.nextafter(values, step.astype(np.float32)))
    np.put_along_axis(probe, feature[picks], values, axis=1)
    labels, proba = run(model.to_onnx(), probe)
    np.testing.assert_allclose(proba, model.predict_proba(probe), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(labels, model.predict(probe))


def test_forest_ties_break_as_ours(sample):
    """30 full-depth trees, pure leaves: votes tie often, exactly in both sums (whole
    votes, divided after), and ArgMax takes the first class of a tie, as np.argmax (with
    leaf weights of 1/30, inexact in float32, one of these 3,000 images went the other way)."""
    X, y, X_test = sample
    model = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    images = np.concatenate([X, X_test])
    top2 = np.sort(model.predict_proba(images), axis=1)[:, -2:]
    assert (top2[:, 0] == top2[:, 1]).sum() >= 10  # ties are there to be broken
    assert_same(model, images, 1e-6)


@pytest.mark.parametrize("make", [lambda: DecisionTreeClassifier(max_depth=3),
                                  lambda: RandomForestClassifier(n_estimators=3, max_depth=3),
                                  lambda: SGDLogisticRegression(epochs=2),
                                  lambda: MLPClassifier(hidden_layer_sizes=(4,), epochs=2),
                                  lambda: GradientBoostingClassifier(n_estimators=5)],
                         ids=["tree", "forest", "lr", "mlp", "gbdt"])
def test_string_labels_and_two_classes(sample, make):
    X, y, X_test = sample
    names = np.array(fmnist_c.CLASS_NAMES)[y]
    model = make().set_params(random_state=0).fit(X, names)
    labels, _ = run(model.to_onnx(), X_test)
    np.testing.assert_array_equal(labels.astype(str), model.predict(X_test))
    two = y < 2
    model = make().set_params(random_state=0).fit(X[two], y[two])
    assert_same(model, X_test, 1e-5)


def test_uint8_pixels_tree_takes_float_pixels(sample):
    """A forest fitted on uint8 pixels (thresholds k + 0.5) exported and fed float32
    pixel values 0..255."""
    X, y, X_test = sample
    pixels = np.round(X * 255).astype(np.uint8)
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(pixels, y)
    assert_same(model, np.round(X_test * 255), 1e-5)


def test_sequential_exports_with_class_indices(sample):
    X, y, X_test = sample
    net = Sequential([Conv2D(4, 3, activation="relu"), MaxPool2D(2), Flatten(), Dense(10)],
                     random_state=0).build(784)
    labels, proba = run(fmnist_c.onnx_export.to_onnx(net), X_test)
    np.testing.assert_allclose(proba, net.predict_proba(X_test), rtol=0, atol=1e-4)
    np.testing.assert_array_equal(labels, net.predict(X_test))


def test_export_refuses_unfitted_models_and_wrong_shapes(sample):
    X, y, _ = sample
    with pytest.raises(ValueError, match="not fitted"):
        SGDLogisticRegression().to_onnx()
    model = SGDLogisticRegression(epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="does not hold"):
        model.to_onnx(input_shape=(28, 27))
    with pytest.raises(TypeError, match="no ONNX export"):
        fmnist_c.onnx_export.to_onnx(object())


def test_without_onnx_the_error_says_what_to_install(sample, monkeypatch):
    X, y, _ = sample
    model = SGDLogisticRegression(epochs=1).fit(X, y)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"pip install \"fmnist_c\[onnx\]\""):
        model.to_onnx()


def test_without_onnxruntime_predict_says_what_to_install(sample, tmp_path, monkeypatch,
                                                          capsys):
    """An exported file is there, onnxruntime is not: load_onnx, predict_images and
    `fmnist-c predict` say what to install."""
    X, y, X_test = sample
    path = str(tmp_path / "lr.onnx")
    SGDLogisticRegression(epochs=1).fit(X, y).to_onnx(path)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    install = r"ONNX inference needs the onnxruntime package: pip install \"fmnist_c\[onnx\]\""
    with pytest.raises(ImportError, match=install):
        fmnist_c.onnx_export.load_onnx(path)
    with pytest.raises(ImportError, match=install):
        fmnist_c.predict_images(path, np.round(X_test[:1] * 255).astype(np.uint8).reshape(1, 28, 28))
    with pytest.raises(SystemExit):
        cli.main(["predict", path, str(tmp_path / "any.png")])
    assert 'pip install "fmnist_c[onnx]"' in capsys.readouterr().err


def test_cli_exports_and_predicts_with_the_onnx_file(sample, tmp_path, capsys):
    pytest.importorskip("PIL")
    from PIL import Image
    X, y, X_test = sample
    model = MLPClassifier(hidden_layer_sizes=(16,), epochs=2, random_state=0).fit(X, y)
    model.save(tmp_path / "mlp.npz")
    images = []
    for i in range(3):
        images.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(np.round(X_test[i] * 255).astype(np.uint8).reshape(28, 28)).save(images[-1])
    for shape in ([], ["--input-shape", "28,28"]):
        assert cli.main(["export", str(tmp_path / "mlp.npz"), str(tmp_path / "mlp.onnx"),
                         *shape]) == 0
        capsys.readouterr()
        assert cli.main(["predict", str(tmp_path / "mlp.onnx"), *images]) == 0
        from_onnx = capsys.readouterr().out
        assert cli.main(["predict", str(tmp_path / "mlp.npz"), *images]) == 0
        assert capsys.readouterr().out == from_onnx and from_onnx.count("\n") == 3
    with pytest.raises(SystemExit):
        cli.main(["export", str(tmp_path / "0.png"), str(tmp_path / "x.onnx")])
    with pytest.raises(SystemExit):
        cli.main(["predict", str(tmp_path / "0.png.onnx"), images[0]])


def test_study_forest_exports_its_trees_cut_at_the_chosen_depth(sample):
    X, y, X_test = sample
    model = StudyForest(n_estimators=5, depths=(4, 8, 12), random_state=0).fit(
        X[:1500], y[:1500], validation_data=(X[1500:], y[1500:]))
    uncut = model.forest_.predict_proba(X_test)
    for depth in (1, 3, 6, model.best_depth_):  # the chosen depth and other cuts
        model.best_depth_ = depth
        assert not np.allclose(model.predict_proba(X_test), uncut)  # the cut changes it
        assert_same(model, X_test, 1e-5)


def svc_from_sklearn(ref):
    """Our SVC holding a fitted scikit-learn SVC's model (libsvm's support vectors,
    coefficients, -rho and sigmoids), so its export can be checked against libsvm's own
    float64 predict and predict_proba."""
    model = SVC(C=ref.C, kernel=ref.kernel, degree=ref.degree, gamma=ref._gamma,
                coef0=ref.coef0, probability=ref.probability)
    model.classes_, model.n_features_in_ = ref.classes_, ref.n_features_in_
    model._gamma = ref._gamma
    n_pairs = len(ref._intercept_)
    model._set_model((ref.support_, ref.support_vectors_.astype(np.float32), ref.n_support_,
                      ref._dual_coef_), ref._intercept_, np.zeros(n_pairs), np.zeros(n_pairs),
                     np.zeros((n_pairs, 2)))
    if ref.probability:
        model.probA_, model.probB_ = ref.probA_, ref.probB_
    return model


def assert_svc_export(model, X, ref=None):
    """The SVC's export on X: our classes exactly, our scores (probabilities, else
    decision_function) within 1e-5 (both float64 inside: the graph's kernel of the float32
    values, ours of the bytes they stand for, 2^-25 apart, and the float32 output); with `ref`
    (a scikit-learn SVC holding the same model), libsvm's classes exactly and its float64
    probabilities within 1e-7, the float32 output's rounding. Returns the largest difference
    from ours."""
    labels, scores = run(model.to_onnx(), X)
    ours = model.predict_proba(X) if model.probability else model.decision_function(X)
    if ours.ndim == 1:
        ours = np.stack([-ours, ours], axis=1)
    np.testing.assert_array_equal(labels, model.predict(X))
    np.testing.assert_allclose(scores, ours, rtol=0, atol=1e-5)
    if ref is not None:
        X64 = X.astype(np.float64)
        np.testing.assert_array_equal(labels, ref.predict(X64))
        if ref.probability:
            np.testing.assert_allclose(scores, ref.predict_proba(X64), rtol=0, atol=1e-7)
    return float(np.abs(scores - ours).max())


@pytest.mark.parametrize("kernel", ["rbf", "poly", "linear"])
@pytest.mark.parametrize("probability", [True, False], ids=["proba", "decision"])
@pytest.mark.parametrize("n_classes", [10, 2])
def test_svc_export_is_libsvm_in_float64(sample, kernel, probability, n_classes):
    """scikit-learn's SVC (libsvm, float64) fitted on the sample and carried into ours:
    onnxruntime gives libsvm's classes and its probabilities within 1e-7 (the float32
    output's rounding: up to 6e-8 of a value below 1), so the graph's decision values,
    vote (a tie to the lowest class), sigmoids and coupling (iterations and stopping
    included) are libsvm's; and our predict's within 1e-5 (3e-5 to 2.3e-4 while ours
    computed its kernel in float32)."""
    sklearn_svm = pytest.importorskip("sklearn.svm")
    X, y, X_test = sample
    keep = y < n_classes
    ref = sklearn_svm.SVC(C=10, kernel=kernel, probability=probability, random_state=0).fit(
        X[keep][:1000].astype(np.float64), y[keep][:1000])
    model = svc_from_sklearn(ref)
    assert_svc_export(model, X_test, ref if probability else None)
    if not probability:  # libsvm's classes, its decision values within float32 rounding
        labels, scores = run(model.to_onnx(), X_test)
        np.testing.assert_array_equal(labels, ref.predict(X_test.astype(np.float64)))
        dec = ref.decision_function(X_test.astype(np.float64))
        if n_classes == 2:
            dec = np.stack([-dec, dec], axis=1)
        np.testing.assert_allclose(scores, dec, rtol=1e-6, atol=1e-6)


def test_svc_votes_and_ties_as_libsvm():
    """Three classes, linear kernel, the input 0: each pair's decision value is its
    intercept, set to -1, 0 or 1 in all 27 ways. A value of exactly 0 votes for the pair's
    second class and a tie of votes goes to the lowest class (libsvm's svm_predict), as our
    predict and scikit-learn's; decision_function's "ovr" shape counts 0 for the first."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.3, (20, 2)) for c in ((0, 0), (2, 0), (0, 2))])
    model = SVC(kernel="linear").fit(X.astype(np.float32), np.repeat([0, 1, 2], 20))
    zero = np.zeros((1, 2), np.float32)
    seen = set()
    for values in itertools.product([-1.0, 0.0, 1.0], repeat=3):
        values = np.array(values)
        model._intercept_ = values
        labels, scores = run(model.to_onnx(), zero)
        np.testing.assert_array_equal(labels, model.predict(zero))
        np.testing.assert_array_equal(scores, model.decision_function(zero).astype(np.float32))
        seen.add(int(labels[0]))
    assert seen == {0, 1, 2}


def test_deployed_svc_predicts_by_its_vote(sample, tmp_path):
    """load_onnx's predict is the file's output_label: an SVC without probabilities scores
    decision_function's "ovr" shape, whose argmax breaks a tie of votes by confidence where
    the vote (predict) takes the lowest class; on the sample they differ."""
    X, y, X_test = sample
    model = SVC(C=10).fit(X[:1000], y[:1000])
    model.to_onnx(tmp_path / "svc.onnx")
    deployed = fmnist_c.onnx_export.load_onnx(tmp_path / "svc.onnx")
    np.testing.assert_array_equal(deployed.predict(X_test), model.predict(X_test))
    assert (deployed.predict_proba(X_test).argmax(axis=1) != model.predict(X_test)).any()


@pytest.mark.full_data
def test_onnxruntime_on_the_study_test_images(full_split):
    """The 14,000 test images of the study split, through models quick to fit: trained on
    the first 10,000 training images (the study CNN on 3,000, one epoch), as the export,
    not the accuracy, is under test; fed as (n, 784) rows and as (n, 28, 28) images (the
    CNN as images only). The improved CNN is checked on the sample above (its inference
    on 14,000 images takes a minute on a busy machine, twice); the SVC below."""
    s = full_split
    X, y = s.X_train[:10000].reshape(-1, 784).astype(np.float32) / 255, s.y_train[:10000]
    X_test = s.X_test.astype(np.float32) / 255
    models = {
        "lr": SGDLogisticRegression(epochs=2, random_state=0).fit(X, y),
        "tree": DecisionTreeClassifier(max_depth=12, random_state=0).fit(X, y),
        "forest": RandomForestClassifier(n_estimators=10, max_depth=12, random_state=0).fit(X, y),
        "gbdt": GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, y),
        "mlp": MLPClassifier(epochs=1, random_state=0).fit(X, y),
        "cnn": CNNClassifier(epochs=1, random_state=0).fit(X[:3000], y[:3000]),
        # test-time shifts of one pixel, as cnn-best's members predict
        "cnn-shifts": CNNClassifier(epochs=1, tta_shift=1, random_state=0).fit(X[:3000], y[:3000]),
    }
    for name, model in models.items():
        cnn = name.startswith("cnn")
        for shape in [(28, 28)] if cnn else [None, (28, 28)]:
            assert_same(model, X_test, 1e-4 if cnn else 1e-5, input_shape=shape)


@pytest.mark.full_data
def test_svc_on_the_study_test_images(full_split):
    """The 14,000 study test images through our SVC (C=10, probability=True) fitted on the
    first 1,000 training images: onnxruntime gives our classes and our probabilities within
    1e-5 (3e-5 while our predict computed its kernel in float32). scikit-learn's SVC fitted on the same images and carried
    into ours gives libsvm's classes and float64 probabilities (within the float32 output's
    rounding) on the first 2,000 (libsvm's predict and predict_proba take 24 s for all)."""
    sklearn_svm = pytest.importorskip("sklearn.svm")
    s = full_split
    X, y = s.X_train[:1000].reshape(-1, 784).astype(np.float32) / 255, s.y_train[:1000]
    X_test = s.X_test.reshape(-1, 784).astype(np.float32) / 255
    ref = sklearn_svm.SVC(C=10, probability=True, random_state=0).fit(X.astype(np.float64), y)
    assert_svc_export(svc_from_sklearn(ref), X_test[:2000], ref)
    assert_svc_export(SVC(C=10, probability=True, random_state=0).fit(X, y), X_test)


@pytest.mark.full_data
def test_hogsvc_on_the_study_test_images(full_split):
    """The 14,000 study test images through hog-svm's pipeline as the study split chose it
    (the HOGs of the square roots in 4 x 4 and 7 x 7 cells, then the pixels at weight 0.5,
    C=10, gamma twice 'scale'), fitted on the first
    2,000 training images as bytes, as reproduce feeds them: onnxruntime, fed their float32
    values, gives our classes and decision values within 1e-5."""
    from fmnist_c.features import HOGSVC
    from fmnist_c.study import HOG_SVM_UNION
    s = full_split
    model = HOGSVC(hogs=(HOG_SVM_UNION,), gamma_factors=(2.0,)).fit(s.X_train[:2000],
                                                                   s.y_train[:2000])
    assert model.pixel_scale_ == 0.5 / 255
    assert_svc_export(model, s.X_test.reshape(-1, 784).astype(np.float32))


HOG_SETTINGS = {  # orientations, pixels per cell, cells per block, norm, square root
    "hog-svm-sqrt": dict(orientations=9, pixels_per_cell=4, cells_per_block=2, transform_sqrt=True),
    "hog-svm-raw": dict(orientations=9, pixels_per_cell=4, cells_per_block=2),
    # cells that do not tile 28 x 28 (5 x 3: 3 rows and 1 column left over); 45 and 90
    # degrees are boundaries, which gradients along them meet exactly
    "untiled-8-sqrt": dict(orientations=8, pixels_per_cell=(5, 3), cells_per_block=(2, 3),
                           transform_sqrt=True),
    "untiled-8-raw": dict(orientations=8, pixels_per_cell=(5, 3), cells_per_block=(2, 3)),
    "L1-7": dict(orientations=7, pixels_per_cell=(6, 5), cells_per_block=(1, 2), block_norm="L1"),
    "L1-sqrt-12": dict(orientations=12, pixels_per_cell=3, cells_per_block=3,
                       block_norm="L1-sqrt", transform_sqrt=True),
    "L2-4": dict(orientations=4, pixels_per_cell=(9, 2), cells_per_block=(2, 1), block_norm="L2"),
}


def hog_features(transformer, X):
    """onnxruntime's features of X from the HOG graph alone (onnx_export._hog), checked."""
    from fmnist_c.onnx_export import Graph, _hog
    g = Graph(onnx)
    out = _hog(transformer, g, g.flat("input", transformer.n_features_in_))
    info = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph(
        g.nodes, "hog", [info("input", onnx.TensorProto.FLOAT, ["N", transformer.n_features_in_])],
        [info(out, onnx.TensorProto.FLOAT, ["N", transformer.n_features_out_])], g.initializers)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X.reshape(len(X), -1).astype(np.float32)})[0]


@pytest.mark.parametrize("name", HOG_SETTINGS)
def test_hog_graph_gives_our_features(sample, name):
    """The graph's HOG of float32 images (pixels / 255 and 0..255) against
    fmnist_c.features.hog's: within one float32 ulp, as the graph does the C's float64
    arithmetic on the same float32 gradients and only sums cells and blocks in another
    order (a bin that differed would move a whole magnitude, far more). On the sample they
    are identical bit for bit."""
    from fmnist_c.features import HOG
    _, _, X_test = sample
    images = np.concatenate([X_test[:300], np.round(X_test[300:] * 255)]).reshape(-1, 28, 28)
    transformer = HOG(**HOG_SETTINGS[name]).fit(images[:1])
    ours = fmnist_c.features.hog(images, **HOG_SETTINGS[name])
    theirs = hog_features(transformer, images)
    assert theirs.shape == ours.shape and theirs.dtype == np.float32
    np.testing.assert_array_max_ulp(theirs, ours, maxulp=1)


@pytest.mark.parametrize("shape", [(2, 7), (7, 2), (1, 5)])
def test_hog_graph_on_images_too_narrow_for_central_differences(shape):
    """Fewer than 3 columns (rows): gx (gy) is 0 everywhere, as in the C."""
    from fmnist_c.features import HOG
    images = np.random.default_rng(0).random((20, *shape), dtype=np.float32)
    settings = dict(orientations=6, pixels_per_cell=1, cells_per_block=(1, 2), transform_sqrt=True)
    transformer = HOG(**settings).fit(images[:1])
    np.testing.assert_array_max_ulp(hog_features(transformer, images),
                                    fmnist_c.features.hog(images, **settings), maxulp=1)


@pytest.mark.parametrize("root, probability", [(True, True), (False, False)],
                         ids=["sqrt-proba", "raw-decision"])
def test_hogsvc_exports_through_the_cli(sample, tmp_path, root, probability):
    """A HOGSVC on raw pixels 0..255 (as hog-svm is fed), cells that do not tile the image,
    saved, exported by `fmnist-c export`: our classes, our probabilities or decision values
    within 1e-5 (the features are ours within a float32 ulp, the SVC is in float64)."""
    X, y, X_test = sample
    pixels, test = np.round(X[:400] * 255), np.round(X_test[:200] * 255)
    hog = dict(orientations=9, pixels_per_cell=(5, 3), cells_per_block=2, transform_sqrt=root)
    model = fmnist_c.features.HOGSVC(hogs=(hog,), probability=probability, random_state=0)
    assert_exported_by_the_cli(model.fit(pixels, y[:400]), test, tmp_path)
    assert_svc_export(model, test)  # to_onnx, rows of 784


def assert_exported_by_the_cli(model, test, tmp_path):
    """model saved and exported by `fmnist-c export` for 28 x 28 images: onnxruntime's
    classes of `test` are ours, its probabilities (decision values without) within 1e-5."""
    model.save(tmp_path / "model.npz")
    assert cli.main(["export", str(tmp_path / "model.npz"), str(tmp_path / "model.onnx"),
                     "--input-shape", "28,28"]) == 0
    labels, scores = run(onnx.load(str(tmp_path / "model.onnx")), test.reshape(-1, 28, 28))
    np.testing.assert_array_equal(labels, model.predict(test))
    ours = model.predict_proba(test) if model.probability else model.decision_function(test)
    np.testing.assert_allclose(scores, ours, rtol=0, atol=1e-5)


def test_hogsvc_with_pixels_appends_them_scaled(sample):
    """A HOGSVC whose chosen candidate appends the pixels (pixel_scale_ > 0, as hog-svm's
    registry candidates): the graph concatenates them, times the scale in float32, to the
    HOG's features; fed uint8 or float32 images, ours is the same model the graph is."""
    from fmnist_c.features import HOGSVC
    X, y, X_test = sample
    model = HOGSVC(hogs=({"pixels_per_cell": 4, "cells_per_block": 2, "transform_sqrt": True,
                          "pixel_weight": 0.5},)).fit(X[:400], y[:400])
    assert model.pixel_scale_ > 0
    assert_svc_export(model, X_test[:300])
    as_bytes = np.round(X_test[:300] * 255).astype(np.uint8)
    np.testing.assert_array_equal(model.decision_function(as_bytes),
                                  model.decision_function(as_bytes.astype(np.float32)))


@pytest.mark.parametrize("probability", [True, False], ids=["proba", "decision"])
def test_hogsvc_union_concatenates_its_hogs_then_the_pixels(sample, tmp_path, probability):
    """A union candidate (4 x 4 cells of the square roots; 8 orientations in untiled 5 x 3
    cells, L1, holding the pixel_weight): the graph concatenates each HOG's subgraph in the
    union's order, then the pixels times pixel_scale_, before the SVC. Raw pixels 0..255,
    saved, loaded and exported by `fmnist-c export` too: our classes, our probabilities or
    decision values within 1e-5."""
    from fmnist_c.features import HOGSVC
    X, y, X_test = sample
    pixels, test = np.round(X[:400] * 255), np.round(X_test[:200] * 255)
    union = ({"pixels_per_cell": 4, "cells_per_block": 2, "transform_sqrt": True},
             {"orientations": 8, "pixels_per_cell": (5, 3), "cells_per_block": 1,
              "block_norm": "L1", "pixel_weight": 0.5})
    model = HOGSVC(hogs=(union,), probability=probability, random_state=0).fit(pixels, y[:400])
    assert len(model.hogs_) == 2 and model.pixel_scale_ == 0.5 / 255
    assert model.svc_.n_features_in_ == 1296 + 5 * 9 * 8 + 784
    assert_svc_export(model, test)
    assert_exported_by_the_cli(model, test, tmp_path)


@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "cosine"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_knn_exports_with_float32_distances(metric, weights):
    """kNN on the uint8 pixels (fed to onnxruntime as float32 0..255): our classes and
    probabilities, except where float32 distances may swap the k-th and the (k+1)-th
    neighbour: only rows whose exact distances there are within 1e-4 of each other
    (relative) may differ. The tuned model exports its chosen one."""
    from fmnist_c import KNeighborsClassifier
    from fmnist_c.neighbors import TunedKNeighborsClassifier
    X, y = fmnist_c.load_sample()
    s = fmnist_c.study_split(X, y)
    Xtr, Xte = s.X_train.reshape(len(s.X_train), -1), s.X_test.reshape(len(s.X_test), -1)
    k = 6
    model = KNeighborsClassifier(k, weights=weights, metric=metric).fit(Xtr, s.y_train)
    labels, proba = run(model.to_onnx(), Xte)
    dist, _ = model.kneighbors(Xte, k + 1)
    tied = dist[:, k] - dist[:, k - 1] <= 1e-4 * dist[:, k]
    off = (np.abs(proba - model.predict_proba(Xte)).max(axis=1) > 1e-5) | \
        (labels != model.predict(Xte))
    assert not (off & ~tied).any(), np.flatnonzero(off & ~tied)
    assert off.sum() <= 0.01 * len(Xte)
    tuned = TunedKNeighborsClassifier(ks=(1, 3), metrics=(metric,), weights=(weights,)).fit(
        Xtr, s.y_train, validation_data=(s.X_val.reshape(len(s.X_val), -1), s.y_val))
    labels, _ = run(tuned.to_onnx(), Xte[:50])
    np.testing.assert_array_equal(labels, tuned.predict(Xte[:50]))


@pytest.mark.parametrize("make", [lambda: SGDLogisticRegression(epochs=2, random_state=0),
                                  lambda: DecisionTreeClassifier(max_depth=8, random_state=0),
                                  lambda: RandomForestClassifier(n_estimators=5, random_state=0)],
                         ids=["lr", "tree", "forest"])
def test_cli_exports_and_predicts_saved_linear_and_tree_models(sample, make, tmp_path):
    X, y, X_test = sample
    model = make().fit(X, y)
    model.save(tmp_path / "m.npz")
    assert cli.main(["export", str(tmp_path / "m.npz"), str(tmp_path / "m.onnx")]) == 0
    labels, proba = run(onnx.load(str(tmp_path / "m.onnx")), X_test)
    np.testing.assert_array_equal(labels, model.predict(X_test))
    np.testing.assert_allclose(proba, model.predict_proba(X_test), rtol=0, atol=1e-5)


def test_cli_exports_a_saved_knn(tmp_path, capsys):
    from fmnist_c import KNeighborsClassifier
    X, y = fmnist_c.load_sample()
    X = X.reshape(len(X), -1)
    model = KNeighborsClassifier(5, weights="distance", metric="manhattan").fit(X[:2000], y[:2000])
    model.save(tmp_path / "knn.npz")
    assert cli.main(["export", str(tmp_path / "knn.npz"), str(tmp_path / "knn.onnx")]) == 0
    labels, _ = run(onnx.load(str(tmp_path / "knn.onnx")), X[2000:2100])
    np.testing.assert_array_equal(labels, model.predict(X[2000:2100]))


def foreign_onnx(path, labels=None):
    """A classifier file made elsewhere (no fmnist_c metadata): softmax(X W) over 784 pixels
    and 3 columns, and with `labels` an output_label naming the columns' classes (skl2onnx's
    output names)."""
    from onnx import TensorProto, helper, numpy_helper
    W = np.random.default_rng(0).standard_normal((784, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["X", "W"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["output_probability"], axis=1)]
    inits = [numpy_helper.from_array(W, "W")]
    outputs = [helper.make_tensor_value_info("output_probability", TensorProto.FLOAT, [None, 3])]
    if labels is not None:
        nodes += [helper.make_node("ArgMax", ["logits"], ["at"], axis=1, keepdims=0),
                  helper.make_node("Gather", ["names", "at"], ["output_label"])]
        inits.append(numpy_helper.from_array(np.asarray(labels, np.int64), "names"))
        outputs.insert(0, helper.make_tensor_value_info("output_label", TensorProto.INT64, [None]))
    graph = helper.make_graph(nodes, "foreign", [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, [None, 784])], outputs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return W


def test_a_file_from_elsewhere_predicts_and_labels_its_images(sample, tmp_path):
    """Without fmnist_c's metadata: classes 0..k-1 from the scores (predict before any
    predict_proba), and predict_images takes a file whose labels are not its columns."""
    from fmnist_c.deploy import predict_images
    from fmnist_c.onnx_export import load_onnx
    X = sample[0][:20]
    W = foreign_onnx(tmp_path / "plain.onnx")
    expected = np.argmax(X.astype(np.float64) @ W, axis=1)
    np.testing.assert_array_equal(load_onnx(tmp_path / "plain.onnx").predict(X), expected)
    foreign_onnx(tmp_path / "named.onnx", labels=[3, 5, 7])
    images = np.rint(X * 255).astype(np.uint8).reshape(20, 28, 28)
    out = predict_images(str(tmp_path / "named.onnx"), list(images))
    assert [p.label for p in out] == [[3, 5, 7][k] for k in expected]
    assert all(p.probability == p.probabilities.max() for p in out)
