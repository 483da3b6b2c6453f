"""ONNX export: a fitted model as a standard ONNX graph (ai.onnx opset 17, ai.onnx.ml 3)
that onnxruntime runs to the same classes and probabilities, and onnxruntime behind the
same predict_proba/predict for deployed .onnx files.

Not a run-time dependency: export needs the onnx package, running needs onnxruntime
(``pip install "fmnist_c[onnx]"``). Each model family has one small function here and
one line in _EXPORTERS; a new family adds its own.

Every graph has one input, ``input``: float32 (n, n_features_in_) by default, e.g.
(n, 784), or images (n, 28, 28) with ``input_shape=(28, 28)`` (any shape holding
n_features_in_ values per sample); values as the model's predict takes them (e.g. pixels
/ 255). One file takes one rank: onnx's checker requires graph inputs to have a shape, and
onnxruntime checks the rank. Two outputs, as
skl2onnx's classifiers with ``zipmap=False``: ``output_label`` (n,), the classes_ entry of
the most probable class (int64, or string for string labels), and
``output_probability`` (n, n_classes) float32.
"""
import json
import math

import numpy as np

from . import __version__
from .boosting import GradientBoostingClassifier
from .ensemble import RandomForestClassifier
from .features import HOGSVC, _check_settings
from .linear import SGDLogisticRegression
from .neighbors import KNeighborsClassifier, TunedKNeighborsClassifier
from .nn import CNNClassifier, CNNEnsembleClassifier, MLPClassifier, Sequential
from .nn.layers import _Join
from .study import StudyForest
from .svm import SVC
from .tree import DecisionTreeClassifier

__all__ = ["OPSET", "ML_OPSET", "OnnxClassifier", "load_onnx", "to_onnx"]

OPSET = 17
ML_OPSET = 3  # the tree ensembles as onnxruntime runs them
INPUT, LABEL, PROBA = "input", "output_label", "output_probability"
_BATCH = 1000  # rows per onnxruntime run in OnnxClassifier


def _import(name):
    try:
        return __import__(name)
    except ImportError:
        raise ImportError(f"ONNX {'export' if name == 'onnx' else 'inference'} needs the "
                          f"{name} package: pip install \"fmnist_c[onnx]\"") from None


class Graph:
    """Nodes and initializers of one graph being built, with fresh value names."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.initializers, self._count = onnx, [], [], 0

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint="c"):
        """A constant (initializer) holding `array` as it is (dtype kept)."""
        name = self._name(hint)
        array = np.asarray(array)
        if array.dtype.kind in "UO":
            tensor = self.onnx.helper.make_tensor(name, self.onnx.TensorProto.STRING,
                                                  array.shape, [s.encode() for s in array.flat])
        else:
            tensor = self.onnx.numpy_helper.from_array(np.array(array, order="C"), name)
        self.initializers.append(tensor)
        return name

    def op(self, op_type, *inputs, outputs=1, domain="", **attrs):
        """Append a node; returns its output name (a list of names when outputs > 1)."""
        names = [self._name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names,
                                                     domain=domain or None, **attrs))
        return names[0] if outputs == 1 else names

    def i64(self, values):
        """an int64 constant (shapes, axes, indices)"""
        return self.const(np.asarray(values, np.int64))

    def flat(self, x, n_features):
        return self.op("Reshape", x, self.const(np.array([-1, n_features], np.int64), "shape"))


def _svc(model, g, x):
    """The SVC in standard ops, in float64 from the float32 input on: the pairs' decision
    values (libsvm's dec = sum coef K(sv, x) + intercept, one MatMul against every support
    vector and one against the (n_SV, n_pairs) coefficients), then as our predict the
    one-vs-one vote (dec > 0 votes for the pair's first class, else the second: libsvm's
    rule, a value of exactly 0 included) and ArgMax, whose first maximum is the lowest
    class of a tie, as libsvm's. With probability=True the scores are libsvm's: the pairs'
    Platt sigmoids, clipped to [1e-7, 1 - 1e-7], coupled by _couple; else decision_function
    (its "ovr" shape for more than two classes, as predict_proba does not exist).
    (ai.onnx.ml's SVMClassifier would do this in one node, but in float32 throughout,
    its probabilities 2.8e-4 from libsvm's double precision.)"""
    k = len(model.classes_)
    f64 = lambda v: g.const(np.asarray(v, np.float64))  # noqa: E731
    xd = g.op("Cast", x, to=g.onnx.TensorProto.DOUBLE)
    sv = model.support_vectors_
    dot = g.op("MatMul", xd, g.op("Cast", g.const(np.ascontiguousarray(sv.T), "sv_t"),
                                  to=g.onnx.TensorProto.DOUBLE))
    if model.kernel == "rbf":  # exp(-gamma (|x|^2 + |v|^2 - 2 x.v))
        xx = g.op("ReduceSum", g.op("Mul", xd, xd), g.const(np.array([1], np.int64)), keepdims=1)
        vv = f64((sv.astype(np.float64) ** 2).sum(axis=1)[None])
        d2 = g.op("Sub", g.op("Add", xx, vv), g.op("Mul", f64(2.0), dot))
        kernel = g.op("Exp", g.op("Mul", f64(-model._gamma), d2))
    elif model.kernel == "poly":
        kernel = g.op("Pow", g.op("Add", g.op("Mul", f64(model._gamma), dot), f64(model.coef0)),
                      f64(float(model.degree)))
    else:
        kernel = dot
    pairs = [(a, b) for a in range(k) for b in range(a + 1, k)]
    start = np.concatenate([[0], np.cumsum(model.n_support_)])
    coef = np.zeros((len(sv), len(pairs)))
    for p, (a, b) in enumerate(pairs):  # class a's SVs hold pair (a, b) in row b - 1, b's in a
        coef[start[a]:start[a + 1], p] = model._dual_coef_[b - 1, start[a]:start[a + 1]]
        coef[start[b]:start[b + 1], p] = model._dual_coef_[a, start[b]:start[b + 1]]
    dec = g.op("Add", g.op("MatMul", kernel, g.const(coef, "pair_coef")),
               f64(model._intercept_[None]))
    first, second = np.zeros((len(pairs), k)), np.zeros((len(pairs), k))
    first[np.arange(len(pairs)), [a for a, _ in pairs]] = 1
    second[np.arange(len(pairs)), [b for _, b in pairs]] = 1

    def votes(test):  # (n, k): pair p's first class where test(dec, 0), else its second
        wins = g.op("Cast", g.op(test, dec, f64(0.0)), to=g.onnx.TensorProto.DOUBLE)
        return g.op("Add", g.op("MatMul", wins, f64(first - second)), f64(second.sum(axis=0)[None]))
    label = g.op("ArgMax", votes("Greater"), axis=1, keepdims=0)
    if model.probability:
        f = g.op("Add", g.op("Mul", dec, f64(model.probA_[None])), f64(model.probB_[None]))
        r = g.op("Clip", g.op("Sigmoid", g.op("Neg", f)), f64(1e-7), f64(1 - 1e-7))
        scores = _couple(g, r, pairs, k)
    elif k == 2:  # decision_function is -dec: (-decision_function, decision_function)
        scores = g.op("Concat", dec, g.op("Neg", dec), axis=1)
    else:  # decision_function's "ovr": votes (dec >= 0 for the first class) + squashed
        conf = g.op("MatMul", dec, f64(first - second))  # confidences
        squash = g.op("Div", conf, g.op("Mul", f64(3.0), g.op("Add", g.op("Abs", conf), f64(1.0))))
        scores = g.op("Add", votes("GreaterOrEqual"), squash)
    return g.op("Cast", scores, to=g.onnx.TensorProto.FLOAT), label


def _couple(g, r, pairs, k):
    """libsvm's multiclass_probability (as _svm_proba.couple, operation for operation in
    float64) on the pairs' probabilities r (n, n_pairs): Q from r, then a Loop of at most
    max(100, k) sweeps; a sample whose error max_t |(Q p)_t - p^T Q p| is below 0.005 / k
    keeps its p from then on, and the Loop ends when every sample has."""
    onnx, f64 = g.onnx, (lambda v: g.const(np.asarray(v, np.float64)))  # noqa: E731
    D = onnx.TensorProto.DOUBLE
    upper, lower = np.zeros((len(pairs), k * k)), np.zeros((len(pairs), k * k))
    for p, (a, b) in enumerate(pairs):
        upper[p, a * k + b] = lower[p, b * k + a] = 1
    # R[t, j] = r_tj: r_ab = r_p, r_ba = 1 - r_p, 0 on the diagonal
    R = g.op("Reshape", g.op("Add", g.op("MatMul", r, f64(upper)),
                             g.op("MatMul", g.op("Sub", f64(1.0), r), f64(lower))),
             g.const(np.array([-1, k, k], np.int64)))
    RT = g.op("Transpose", R, perm=[0, 2, 1])
    axis1, axis2 = g.const(np.array([1], np.int64)), g.const(np.array([2], np.int64))
    qdiag = g.op("ReduceSum", g.op("Mul", RT, RT), axis2, keepdims=0)
    # Q[t, j] = -r_jt r_tj off the diagonal, Q[t, t] = sum_j r_jt^2
    Q = g.op("Add", g.op("Neg", g.op("Mul", RT, R)),
             g.op("Mul", g.op("Unsqueeze", qdiag, axis2), f64(np.eye(k))))
    body = Graph(onnx)  # names unique across both graphs, constants in the outer one
    body._name, body.initializers = g._name, g.initializers
    step, cond_in, prob_in = body._name("iter"), body._name("cond"), body._name("prob")
    Qp = body.op("Squeeze", body.op("MatMul", Q, body.op("Unsqueeze", prob_in, axis2)), axis2)
    pQp = body.op("ReduceSum", body.op("Mul", prob_in, Qp), axis1, keepdims=1)
    error = body.op("ReduceMax", body.op("Abs", body.op("Sub", Qp, pQp)), axes=[1], keepdims=1)
    active = body.op("GreaterOrEqual", error, f64(0.005 / k))
    p = prob_in
    for t in range(k):
        col = g.const(np.array([t], np.int64))
        Qtt, Qpt = body.op("Gather", qdiag, col, axis=1), body.op("Gather", Qp, col, axis=1)
        diff = body.op("Div", body.op("Add", body.op("Neg", Qpt), pQp), Qtt)
        p = body.op("Add", p, body.op("Mul", diff, f64(np.eye(k)[t][None])))
        onep = body.op("Add", f64(1.0), diff)
        pQp = body.op("Div", body.op("Add", pQp, body.op("Mul", diff, body.op(
            "Add", body.op("Mul", diff, Qtt), body.op("Mul", f64(2.0), Qpt)))),
            body.op("Mul", onep, onep))
        Qrow = body.op("Squeeze", body.op("Gather", Q, col, axis=1), axis1)
        Qp = body.op("Div", body.op("Add", Qp, body.op("Mul", diff, Qrow)), onep)
        p = body.op("Div", p, onep)
    prob_out = body.op("Where", active, p, prob_in)
    cond_out = body.op("Cast", body.op("ReduceMax", body.op("Cast", active, to=D), keepdims=0),
                       to=onnx.TensorProto.BOOL)
    info = onnx.helper.make_tensor_value_info
    loop = onnx.helper.make_graph(
        body.nodes, "couple_sweep",
        [info(step, onnx.TensorProto.INT64, []), info(cond_in, onnx.TensorProto.BOOL, []),
         info(prob_in, D, ["N", k])],
        [info(cond_out, onnx.TensorProto.BOOL, []), info(prob_out, D, ["N", k])])
    start = g.op("Add", g.op("MatMul", r, f64(np.zeros((len(pairs), k)))), f64(1.0 / k))  # (n, k)
    return g.op("Loop", g.const(np.array(max(100, k), np.int64)), g.const(np.array(True)), start,
                body=loop)


def _hog(hog, g, x):
    """A fitted HOG transformer's features of the images x (n, h * w) float32: (n,
    n_features) float32, csrc/features/hog.c's arithmetic on float images step for step.
    The square root and the central differences (0 on the first and last column for gx,
    row for gy) in float32, as the C's float path rounds them; from there float64. A
    gradient's bin is the number of boundaries b_k (k >= 1) its direction, folded into
    [0, 180) degrees, lies at or past: (x, y) = +-(gx, gy) with y > 0 (or y = 0, x >= 0)
    is past b_k when y cos b_k - x sin b_k >= 0, the C's test with its constants (b_k the
    float32 k * (180 / n), cos and sin by the C library). A direction within 1e-9 of a
    boundary sends the C to atan2 instead, which ONNX lacks; the sign gives the same bin
    there (on every pixel of the study split's 14,000 and the official 10,000 test images,
    sqrt or not, 4 to 18 orientations: none differs), exactly on 45, 90 or 135 degrees
    (x = 0 or |x| = |y|) included, where atan2 rounds to b_k (past it) and the products
    round to a sign >= 0. (Our HOG of uint8 images takes the square root in float64, whose
    differences land on boundaries that float32's miss: that is not this path.) The bin as
    a one-hot (a MatMul of the tests against +-1 differences) times the magnitude, summed
    over each whole cell (pixels past the last whole cell dropped) and averaged, the blocks
    gathered in the C's order (blocks down, across, cells in the block, orientations) and
    normalised as it does. Sums may run in another order than the C's: features within one
    float32 ulp (identical on those 24,000 images)."""
    onnx, D = g.onnx, g.onnx.TensorProto.DOUBLE
    (ph, pw), (bh, bw) = _check_settings(**hog._settings())
    n, (h, w) = int(hog.orientations), hog.image_shape_
    cr, cc = h // ph, w // pw
    br, bc = cr - bh + 1, cc - bw + 1
    f64 = lambda v: g.const(np.asarray(v, np.float64))  # noqa: E731
    i64 = g.i64
    img = g.op("Reshape", x, i64([-1, h, w]))
    if hog.transform_sqrt:
        img = g.op("Sqrt", img)

    def central(axis, size):  # img[+1] - img[-1] along axis, 0 at both ends, in the cells
        if size < 3:  # no inner pixel
            diff = g.op("Mul", img, g.const(np.float32(0)))
        else:
            ahead, behind = (g.op("Slice", img, i64([start]), i64([start + size - 2]), i64([axis]))
                             for start in (2, 0))
            pads = np.zeros(6, np.int64)
            pads[[axis, axis + 3]] = 1
            diff = g.op("Pad", g.op("Sub", ahead, behind), g.const(pads))
        inside = g.op("Slice", diff, i64([0, 0]), i64([cr * ph, cc * pw]), i64([1, 2]))
        return g.op("Cast", inside, to=D)  # (n, cr * ph, cc * pw) float64
    gx, gy = central(2, w), central(1, h)
    zero = f64(0.0)
    flip = g.op("Or", g.op("Less", gy, zero), g.op("And", g.op("Equal", gy, zero),
                                                   g.op("Less", gx, zero)))
    fx, fy = (g.op("Unsqueeze", g.op("Where", flip, g.op("Neg", v), v), i64([-1]))
              for v in (gx, gy))
    width = np.float32(180.0 / n)
    deg = [float(width * np.float32(k)) for k in range(n + 1)]
    tested = range(1, n + 1 if deg[n] < 180.0 else n)  # the C's last boundary when < 180
    cos = [math.cos(deg[k] * (math.pi / 180.0)) for k in tested]
    sin = [math.sin(deg[k] * (math.pi / 180.0)) for k in tested]
    past = g.op("Cast", g.op("GreaterOrEqual", g.op("Sub", g.op("Mul", fy, f64(cos)),
                                                    g.op("Mul", fx, f64(sin))), zero), to=D)
    # one-hot of the bin: bin j <=> past b_j (b_0: always) and not past b_(j+1) (b_n: never
    # when untested); past the tested b_n: no bin, as in the C
    step = np.zeros((len(tested), n))
    for row, k in enumerate(tested):
        step[row, k - 1] -= 1
        if k < n:
            step[row, k] += 1
    onehot = g.op("Add", g.op("MatMul", past, f64(step)), f64(np.eye(n)[0]))
    magnitude = g.op("Sqrt", g.op("Add", g.op("Mul", gx, gx), g.op("Mul", gy, gy)))
    votes = g.op("Reshape", g.op("Mul", onehot, g.op("Unsqueeze", magnitude, i64([-1]))),
                 i64([-1, cr, ph, cc, pw, n]))
    cells = g.op("Div", g.op("ReduceSum", votes, i64([2, 4]), keepdims=0), f64(float(ph * pw)))
    index = np.array([[(r + i) * cc + c + j for i in range(bh) for j in range(bw)]
                      for r in range(br) for c in range(bc)], np.int64)
    blocks = g.op("Gather", g.op("Reshape", cells, i64([-1, cr * cc, n])),
                  g.const(index, "blocks"), axis=1)  # (n, blocks, cells in a block, n)
    blocks = g.op("Reshape", blocks, i64([-1, br * bc, bh * bw * n]))
    eps, axis2 = 1e-5, i64([2])

    def l2(v):
        s = g.op("ReduceSum", g.op("Mul", v, v), axis2, keepdims=1)
        return g.op("Div", v, g.op("Sqrt", g.op("Add", s, f64(eps * eps))))
    if hog.block_norm in ("L1", "L1-sqrt"):
        s = g.op("ReduceSum", g.op("Abs", blocks), axis2, keepdims=1)
        blocks = g.op("Div", blocks, g.op("Add", s, f64(eps)))
        if hog.block_norm == "L1-sqrt":
            blocks = g.op("Sqrt", blocks)
    else:
        blocks = l2(blocks)
        if hog.block_norm == "L2-Hys":
            blocks = l2(g.op("Min", blocks, f64(0.2)))
    return g.flat(g.op("Cast", blocks, to=onnx.TensorProto.FLOAT), hog.n_features_out_)


def _hog_svc(model, g, x):
    """HOGSVC: each of its HOGs' features (_hog; a union's in its order), then, with
    pixel_scale_ > 0, the pixels times it in float32 (features._hog_svc_features), all
    concatenated, then its SVC (_svc)."""
    features = [_hog(hog, g, x) for hog in model.hogs_]
    if model.pixel_scale_:
        features.append(g.op("Mul", g.flat(x, model.n_features_in_),
                             g.const(np.array(model.pixel_scale_, np.float32))))
    return _svc(model.svc_, g, g.op("Concat", *features, axis=1) if len(features) > 1
                else features[0])


def _knn(model, g, x):
    """k-nearest neighbours: the distances to every training row in float32 (a MatMul for
    Euclidean and cosine; for Manhattan a Scan over the queries, each |x - t| summed over
    the training rows and its k smallest kept, so memory stays one query's (n_train,
    n_features) at a time), TopK of the k smallest, the neighbours' one-hot classes (times
    their sample weights) gathered and summed with uniform or 1/distance weights
    (neighbours at distance 0 alone), normalised. Our neighbours are exact; float32 here
    can swap two rows whose distances are within its rounding of each other."""
    model = getattr(model, "model_", model)  # TunedKNeighborsClassifier: its chosen model
    T = model._fit_X.astype(np.float32)
    k = model.n_neighbors
    f32 = lambda v: g.const(np.asarray(v, np.float32))  # noqa: E731
    axis1, kk = g.const(np.array([1], np.int64)), g.const(np.array([k], np.int64))
    if model.metric == "manhattan":
        onnx, F = g.onnx, g.onnx.TensorProto.FLOAT
        body = Graph(onnx)  # names unique across both graphs, constants in the outer one
        body._name, body.initializers = g._name, g.initializers
        row = body._name("query")
        dist = body.op("ReduceSum", body.op("Abs", body.op("Sub", row, g.const(T, "train"))),
                       axis1, keepdims=0)
        top = body.op("TopK", dist, kk, outputs=2, largest=0, sorted=1)
        scan = onnx.helper.make_graph(
            body.nodes, "manhattan_query", [onnx.helper.make_tensor_value_info(row, F, [T.shape[1]])],
            [onnx.helper.make_tensor_value_info(top[0], F, [k]),
             onnx.helper.make_tensor_value_info(top[1], onnx.TensorProto.INT64, [k])])
        vals, idx = g.op("Scan", x, outputs=2, num_scan_inputs=1, body=scan)
    else:
        if model.metric == "euclidean":
            xx = g.op("ReduceSum", g.op("Mul", x, x), axis1, keepdims=1)
            dot = g.op("MatMul", x, g.const(T.T.copy(), "train_t"))
            d2 = g.op("Sub", g.op("Add", xx, f32((T.astype(np.float64) ** 2).sum(1)[None])),
                      g.op("Mul", f32(2.0), dot))
            dist = g.op("Sqrt", g.op("Relu", d2))
        else:  # cosine: 1 - x.t / (|x||t|), 1 for a zero row
            norms = np.sqrt((T.astype(np.float64) ** 2).sum(1))
            unit = (T / np.where(norms > 0, norms, 1)[:, None]).astype(np.float32)
            xn = g.op("Sqrt", g.op("ReduceSum", g.op("Mul", x, x), axis1, keepdims=1))
            inv = g.op("Where", g.op("Greater", xn, f32(0.0)), g.op("Reciprocal", xn), f32(0.0))
            sim = g.op("Mul", g.op("MatMul", x, g.const(unit.T.copy(), "train_unit_t")), inv)
            dist = g.op("Sub", f32(1.0), sim)
        vals, idx = g.op("TopK", dist, kk, outputs=2, largest=0, sorted=1)
    onehot = np.eye(len(model.classes_), dtype=np.float32)[model._y]
    if model._sample_weight is not None:
        onehot *= model._sample_weight[:, None]
    votes = g.op("Gather", g.const(onehot, "votes"), idx, axis=0)  # (n, k, n_classes)
    if model.weights == "uniform":
        w = g.op("Add", g.op("Mul", vals, f32(0.0)), f32(1.0))
    else:
        exact = g.op("Cast", g.op("Equal", vals, f32(0.0)), to=1)
        any_exact = g.op("ReduceMax", exact, axes=[1], keepdims=1)
        w = g.op("Where", g.op("Greater", any_exact, f32(0.0)), exact, g.op("Reciprocal", vals))
    summed = g.op("ReduceSum", g.op("Mul", votes, g.op("Unsqueeze", w, g.const(
        np.array([2], np.int64)))), axis1, keepdims=0)
    return g.op("Div", summed, g.op("ReduceSum", summed, axis1, keepdims=1))


def _find_exporter(model):
    for cls in type(model).__mro__:
        if cls in _EXPORTERS:
            return _EXPORTERS[cls]
    raise TypeError(f"no ONNX export for {type(model).__name__}; exported: "
                    f"{', '.join(sorted(c.__name__ for c in _EXPORTERS))}")


def to_onnx(model, path=None, input_shape=None):
    """The fitted `model` as an onnx.ModelProto, checked by onnx.checker; written to
    `path` too when given. input_shape: one sample's shape in the graph's input (None:
    (n_features_in_,); (28, 28) takes images (n, 28, 28)). See the module docstring."""
    onnx = _import("onnx")
    export = _find_exporter(model)
    n_features = getattr(model, "n_features_in_", None)
    if n_features is None:
        raise ValueError(f"this {type(model).__name__} is not fitted; fit it before export")
    sample = [n_features] if input_shape is None else [int(d) for d in input_shape]
    if int(np.prod(sample)) != n_features or min(sample) < 1:
        raise ValueError(f"input_shape {input_shape} does not hold the model's "
                         f"{n_features} features")
    classes = np.asarray(model.classes_) if hasattr(model, "classes_") else \
        np.arange(model.n_outputs_)
    # labels as skl2onnx gives them: int64 or strings (and float64 for float labels)
    labels, label_type = {"U": (str, "STRING"), "O": (str, "STRING"),
                          "f": (np.float64, "DOUBLE")}.get(classes.dtype.kind, (np.int64, "INT64"))
    labels = classes.astype(labels)
    g = Graph(onnx)
    proba = export(model, g, g.flat(INPUT, n_features))
    proba, best = proba if isinstance(proba, tuple) else (proba, None)  # a model's own label
    g.nodes.append(onnx.helper.make_node("Identity", [proba], [PROBA]))
    if best is None:
        best = g.op("ArgMax", PROBA, axis=1, keepdims=0)  # the first of equals, as np.argmax
    g.nodes.append(onnx.helper.make_node("Gather", [g.const(labels, "classes"), best], [LABEL]))
    T = onnx.TensorProto
    graph = onnx.helper.make_graph(
        g.nodes, type(model).__name__,
        [onnx.helper.make_tensor_value_info(INPUT, T.FLOAT, ["N", *sample])],
        [onnx.helper.make_tensor_value_info(LABEL, getattr(T, label_type), ["N"]),
         onnx.helper.make_tensor_value_info(PROBA, T.FLOAT, ["N", len(classes)])],
        g.initializers)
    opsets = [onnx.helper.make_opsetid("", OPSET)]
    if any(node.domain == "ai.onnx.ml" for node in g.nodes):
        opsets.append(onnx.helper.make_opsetid("ai.onnx.ml", ML_OPSET))
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="fmnist_c",
                                   producer_version=__version__,
                                   doc_string=f"fmnist_c {type(model).__name__}")
    proto.ir_version = 8  # the IR of opset 17: runtimes of that era load the file
    scores = "predict_proba" if hasattr(model, "predict_proba") else "decision_function"
    onnx.helper.set_model_props(proto, {"n_features_in": str(n_features),
                                        "classes": json.dumps(labels.tolist()),
                                        "output_probability": scores})
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save(proto, path)
    return proto


# ---- families ----------------------------------------------------------------------------
def _linear(model, g, x):
    """softmax(x coef^T + intercept)."""
    logits = g.op("Gemm", x, g.const(model.coef_.astype(np.float32), "coef"),
                  g.const(model.intercept_.astype(np.float32), "intercept"), transB=1)
    return g.op("Softmax", logits, axis=1)


def _tree_nodes(model, max_depth=None):
    """A flat forest's nodes as the ai.onnx.ml tree ensembles list them: (the nodes_*
    attributes, tree ids, tree-local node ids, leaf mask). With max_depth, every tree is
    cut there as predict_proba(X, max_depth) cuts it: a node at that depth (root 0) is a
    leaf with the class fractions it holds; the nodes below it are never reached."""
    nodes, offsets = model._nodes, model._offsets
    sizes = np.diff(offsets)
    tree_ids = np.repeat(np.arange(len(offsets) - 1), sizes)
    node_ids = np.arange(offsets[-1]) - np.repeat(offsets[:-1], sizes)
    left, right = nodes["left"], nodes["right"]
    leaf = left < 0
    if max_depth is not None:
        depth = np.zeros(len(left), np.int64)
        base = np.repeat(offsets[:-1], sizes)
        for i in np.flatnonzero(~leaf):  # preorder: a parent comes before its children
            depth[base[i] + left[i]] = depth[base[i] + right[i]] = depth[i] + 1
        leaf = leaf | (depth >= max_depth)
    attrs = dict(
        nodes_treeids=tree_ids.tolist(), nodes_nodeids=node_ids.tolist(),
        nodes_featureids=np.where(leaf, 0, nodes["feature"]).tolist(),
        nodes_values=np.where(leaf, 0, nodes["threshold"]).astype(np.float32).tolist(),
        nodes_modes=np.where(leaf, "LEAF", "BRANCH_LEQ").tolist(),
        nodes_truenodeids=np.where(leaf, 0, left).tolist(),
        nodes_falsenodeids=np.where(leaf, 0, right).tolist())
    return attrs, tree_ids, node_ids, leaf


def _trees(model, g, x, max_depth=None):
    """ai.onnx.ml TreeEnsembleClassifier: the mean over trees of the class fractions of
    the leaf reached. Our split sends x left when x[feature] <= threshold, both float32:
    BRANCH_LEQ on the same float32 threshold is the same test bit for bit (onnxruntime
    compares float inputs with float thresholds). Leaves carry their fractions as they
    are, summed by the ensemble and divided by the number of trees after: pure leaves
    (most of a deep forest's) hold 1, so their votes add up exactly and a tie between
    classes stays a tie that ArgMax breaks as ours does (weights of 1/n_trees, inexact in
    float32, broke 4 of 14,000 such ties the other way for a 100-tree forest). Only the
    non-zero fractions are listed: a pure leaf carries one."""
    attrs, tree_ids, node_ids, leaf = _tree_nodes(model, max_depth)
    n_trees, k = len(model._offsets) - 1, len(model.classes_)
    weights = model._nodes["value"].astype(np.float32)
    keep = leaf[:, None] & ((weights != 0) | (k == 2))  # onnxruntime's binary case wants both
    at, cls = np.nonzero(keep)
    votes, _ = g.op(
        "TreeEnsembleClassifier", x, outputs=2, domain="ai.onnx.ml", **attrs,
        class_treeids=tree_ids[at].tolist(), class_nodeids=node_ids[at].tolist(),
        class_ids=cls.tolist(), class_weights=weights[at, cls].tolist(),
        classlabels_int64s=list(range(k)), post_transform="NONE")[::-1]
    return votes if n_trees == 1 else g.op("Div", votes, g.const(np.float32(n_trees), "n_trees"))


def _study_forest(model, g, x):
    """The study's forest: its trees cut at the depth it chose on the validation set."""
    return _trees(model.forest_, g, x, model.best_depth_)


def _boosted(model, g, x):
    """ai.onnx.ml TreeEnsembleRegressor summing every tree's leaf value into its class's
    raw score (tree t is class t % n_classes), from the base scores, then Softmax: our
    predict_proba, with the sums in onnxruntime's float32 rather than our float64. (The
    classifier op would do it in one, but onnxruntime reads two classes as a binary
    model and negates one score.)"""
    attrs, tree_ids, node_ids, leaf = _tree_nodes(model)
    k = len(model.classes_)
    at = np.flatnonzero(leaf)
    raw = g.op(
        "TreeEnsembleRegressor", x, domain="ai.onnx.ml", **attrs,
        target_treeids=tree_ids[at].tolist(), target_nodeids=node_ids[at].tolist(),
        target_ids=(tree_ids[at] % k).tolist(),
        target_weights=model._nodes["value"][at].astype(np.float32).tolist(), n_targets=k,
        base_values=model._base.astype(np.float32).tolist(), aggregate_function="SUM",
        post_transform="NONE")
    return g.op("Softmax", raw, axis=1)


def _net_classifier(model, g, x):
    """the network; with test-time shifts, as predict_proba: the mean of the shifted
    copies' probabilities, the copies stacked into one batch through one network"""
    shifts = model._test_shifts()
    if not shifts:
        return _sequential(model.model_, g, x)
    proba = _sequential(model.model_, g, _shifted(g, x, model.model_.input_shape_, shifts))
    per_shift = g.op("Reshape", proba, g.i64([len(shifts), -1, len(model.classes_)]))
    return g.op("ReduceMean", per_shift, axes=[0], keepdims=0)  # opset 17: axes attribute


def _shifted(g, x, shape, shifts):
    """rows x (n, C * H * W) of (H, W, C) images moved by each (dy, dx) of shifts as
    nn.augment.shift_images moves them (zeros where the image moved away), stacked: (n *
    len(shifts), C * H * W), shift by shift"""
    c, h, w = shape
    k = max(max(abs(dy), abs(dx)) for dy, dx in shifts)
    padded = g.op("Pad", g.op("Reshape", x, g.i64([-1, h, w, c])), g.i64([0, k, k, 0, 0, k, k, 0]))
    copies = [g.op("Slice", padded, g.i64([k - dy, k - dx]), g.i64([k - dy + h, k - dx + w]),
                   g.i64([1, 2])) for dy, dx in shifts]
    return g.flat(g.op("Concat", *copies, axis=0), c * h * w)


def _net_ensemble(model, g, x):
    """the mean of the members' probabilities, as predict_proba"""
    return g.op("Mean", *(_net_classifier(m, g, x) for m in model.estimators_))


def _sequential(net, g, x):
    """The network's layers in NCHW (onnxruntime's convolution layout). Our activations
    are channels last (H, W, C) per sample, so the input is read as NHWC and transposed
    once; Flatten and Dense transpose back, so they see values in our (Keras') order."""
    from . import nn
    c, h, w = net.input_shape_
    spatial = h * w > 1
    if spatial:
        x = g.op("Transpose", g.op("Reshape", x, g.const(np.array([-1, h, w, c], np.int64),
                                                         "shape")), perm=[0, 3, 1, 2])
    weights = iter(net.get_weights())
    shape = net.input_shape_
    seen = []  # each layer's input: (value, spatial); residual joins add one of them
    for layer, out_shape, _ in net.summary():
        seen.append((x, spatial))
        if isinstance(layer, _Join):
            x = _join(g, layer, x, spatial, *seen[-1 - layer.depth], out_shape, weights)
            shape = out_shape
            continue
        if isinstance(layer, (nn.Dense, nn.Flatten)) and spatial:
            x = g.op("Flatten", g.op("Transpose", x, perm=[0, 2, 3, 1]), axis=1)
            spatial = False
        if isinstance(layer, nn.Dense):
            W, b = next(weights), next(weights)
            x = g.op("Gemm", x, g.const(W, "W"), g.const(b, "b"), transB=1)
        elif isinstance(layer, nn.Conv2D):
            W, b = next(weights), next(weights)
            x = g.op("Conv", x, g.const(np.ascontiguousarray(W.transpose(0, 3, 1, 2)), "W"),
                     g.const(b, "b"), kernel_shape=list(layer.kernel_size),
                     strides=[layer.strides] * 2, pads=_conv_pads(layer, shape, out_shape))
        elif isinstance(layer, nn.GlobalAveragePooling2D):
            x = g.op("GlobalAveragePool", x)
        elif isinstance(layer, nn.MaxPool2D):  # AvgPool2D too: no padding, floor
            x = g.op("AveragePool" if isinstance(layer, nn.AvgPool2D) else "MaxPool", x,
                     kernel_shape=list(layer.pool_size), strides=[layer._stride()] * 2)
        elif isinstance(layer, nn.BatchNorm):  # inference: the running statistics
            gamma, beta, mean, var = (g.const(next(weights), n)
                                      for n in ("gamma", "beta", "mean", "var"))
            x = g.op("BatchNormalization", x, gamma, beta, mean, var, epsilon=layer.epsilon)
        elif isinstance(layer, nn.ReLU):
            x = g.op("Relu", x)
        elif not isinstance(layer, (nn.Dropout, nn.Flatten)):  # Dropout: identity
            raise TypeError(f"no ONNX export for layer {layer!r}")
        shape = out_shape
    if spatial:
        x = g.op("Flatten", g.op("Transpose", x, perm=[0, 2, 3, 1]), axis=1)
    return g.op("Softmax", x, axis=1)


def _join(g, layer, x, spatial, short, short_spatial, shape, weights):
    """x + the shortcut, projected when the join has weights. A flat shortcut may still be
    NCHW (n, C, 1, 1) where x is (n, C) (after a Dense): then it is flattened too."""
    if short_spatial and not spatial:
        short = g.op("Flatten", short, axis=1)
    if layer._stride(shape) is not None:
        W, b = next(weights), next(weights)
        if spatial:
            short = g.op("Conv", short, g.const(np.ascontiguousarray(W.transpose(0, 3, 1, 2)), "W"),
                         g.const(b, "b"), kernel_shape=[1, 1], strides=[layer._stride(shape)] * 2)
        else:
            short = g.op("Gemm", short, g.const(W.reshape(len(W), -1), "W"), g.const(b, "b"),
                         transB=1)
    return g.op("Add", x, short)


def _conv_pads(layer, shape, out_shape):
    """[top, left, bottom, right]: "same" pads as Keras (the odd one at the bottom/right)."""
    if layer.padding == "valid":
        return [0, 0, 0, 0]
    pads = []
    for size, out, k in zip(shape[1:], out_shape[1:], layer.kernel_size):
        total = max((out - 1) * layer.strides + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]


# fn(model, graph, x) -> the probabilities' value name, x being the input as
# (n, n_features_in_); subclasses find their class's entry (the MRO is searched)
_EXPORTERS = {
    SGDLogisticRegression: _linear,
    DecisionTreeClassifier: _trees,
    RandomForestClassifier: _trees,
    StudyForest: _study_forest,
    GradientBoostingClassifier: _boosted,
    SVC: _svc,
    HOGSVC: _hog_svc,
    KNeighborsClassifier: _knn,
    TunedKNeighborsClassifier: _knn,
    MLPClassifier: _net_classifier,
    CNNClassifier: _net_classifier,
    CNNEnsembleClassifier: _net_ensemble,
    Sequential: _sequential,
}


# ---- running an exported model -----------------------------------------------------------
class OnnxClassifier:
    """An .onnx classifier run by onnxruntime behind predict_proba/predict, so deployment
    code (predict_images, ``fmnist-c predict``) takes an exported file like a model.
    n_features_in_ and classes_ come from the file's metadata (set by to_onnx); a file
    from elsewhere needs a fixed last input dimension and gets classes 0..k-1.
    output_probability says what predict_proba returns: "predict_proba", or
    "decision_function" for a model without probabilities (an SVC without
    probability=True)."""

    def __init__(self, path):
        ort = _import("onnxruntime")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for unreadable files
            raise ValueError(f"{path!s}: onnxruntime cannot load it ({e})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        dims = inp.shape[1:] if inp.shape else None
        self._sample_shape = dims if dims and all(isinstance(d, int) for d in dims) else None
        outputs = [o.name for o in self.session.get_outputs()]
        self.proba_name = PROBA if PROBA in outputs else outputs[-1]
        self.label_name = LABEL if LABEL in outputs else None
        self.n_features_in_ = int(meta["n_features_in"]) if "n_features_in" in meta else (
            None if self._sample_shape is None else int(np.prod(self._sample_shape)))
        self.classes_ = np.array(json.loads(meta["classes"])) if "classes" in meta else None
        # "decision_function" for an SVC without probabilities: its scores are no probabilities
        self.output_probability = meta.get("output_probability", "predict_proba")

    def _run(self, name, X):
        """output `name` on X, run in batches of _BATCH rows: a graph's intermediate values
        grow with the rows (an SVC's are a few (rows, n_SV) float64 matrices, 1.5 GB each
        for 10,000 images against 18,803 support vectors)"""
        X = np.asarray(X, np.float32)
        if self._sample_shape is not None:  # (n, 784) in, (n, 28, 28) to a file taking that
            X = X.reshape(len(X), *self._sample_shape)
        return np.concatenate([self.session.run([name], {self.input_name: X[i:i + _BATCH]})[0]
                               for i in range(0, max(len(X), 1), _BATCH)])

    def predict_proba(self, X):
        proba = self._run(self.proba_name, X)
        if self.classes_ is None:
            self.classes_ = np.arange(proba.shape[1])
        return proba

    def predict(self, X):
        """The file's output_label (an SVC's one-vs-one vote, which the argmax of its scores
        is not), else the class of the highest score."""
        if self.label_name is not None:
            return self._run(self.label_name, X)
        proba = self.predict_proba(X)  # first: it sets classes_ for a file without them
        return self.classes_[np.argmax(proba, axis=1)]


def load_onnx(path):
    """An OnnxClassifier for the .onnx file at `path` (needs onnxruntime)."""
    return OnnxClassifier(path)
