"""Image features computed in C (csrc/features/): histograms of oriented gradients, as
``hog(images, ...)`` and as the transformer ``HOG`` for a scikit-learn Pipeline."""
import math

import numpy as np

from . import _core
from ._base import (BaseEstimator, ClassifierMixin, FileMixin, check_finite_outputs,
                    check_images, check_labels, check_not_validation_data, check_positive,
                    n_threads, not_fitted, seed_from)
from .svm import SVC

_NORMS = _core.hog_norms()
_MOST = 1 << 15  # orientations and image sides the kernel takes
_MOST_PIXELS = 1 << 22  # a HOGSVC file's image times its HOGs (each is set up on one)


def _pair(value, name):
    """(rows, cols) from a positive int or a pair of them."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        rows, cols = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}") \
            from None
    for v in (rows, cols):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return int(rows), int(cols)


def _check_settings(orientations, pixels_per_cell, cells_per_block, block_norm, transform_sqrt):
    if isinstance(orientations, bool) or not isinstance(orientations, (int, np.integer)) \
            or not 1 <= orientations <= _MOST:
        raise ValueError(f"orientations must be a positive int at most {_MOST}, got "
                         f"{orientations!r}")
    if block_norm not in _NORMS:
        raise ValueError(f"block_norm must be one of {sorted(_NORMS)}, got {block_norm!r}")
    if not isinstance(transform_sqrt, (bool, np.bool_)):
        raise TypeError(f"transform_sqrt must be True or False, got {transform_sqrt!r}")
    return (_pair(pixels_per_cell, "pixels_per_cell"), _pair(cells_per_block, "cells_per_block"))


def _n_features(h, w, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
                block_norm="L2-Hys", transform_sqrt=False):
    """How many features hog gives an h x w image with these settings (checked), without
    computing them: whole cells, every block position of whole cells, as scikit-image."""
    cell, block = _check_settings(orientations, pixels_per_cell, cells_per_block, block_norm,
                                  transform_sqrt)
    rows, cols = (max(0, n // c - b + 1) for n, c, b in zip((h, w), cell, block))
    return rows * cols * block[0] * block[1] * orientations


def _image_shape(image_shape, width, ndim_shape):
    """(h, w) of images given as flat rows of `width` values: image_shape (one entry may be
    -1, as in reshape), else the shape of 3-D input (`ndim_shape`), else a square."""
    if image_shape is None:
        if ndim_shape is not None:
            return ndim_shape
        side = math.isqrt(width)
        if side * side != width:
            raise ValueError(f"rows of {width} values are not square images; give "
                             f"image_shape=(height, width) or images (n, height, width)")
        return side, side
    try:
        h, w = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise ValueError(f"image_shape must be None or (height, width), got {image_shape!r}") \
            from None
    if h == -1 and w > 0 and width % w == 0:
        h = width // w
    elif w == -1 and h > 0 and width % h == 0:
        w = width // h
    if h < 1 or w < 1 or h * w != width or (ndim_shape is not None and (h, w) != ndim_shape):
        raise ValueError(f"image_shape {tuple(image_shape)} does not fit images of "
                         f"{ndim_shape or width} values")
    return h, w


def _as_array(X):
    """X as an array, once; None and sparse matrices as given, for check_images' errors."""
    return X if X is None or hasattr(X, "toarray") else np.asarray(X)


def _images(X, image_shape, name="X"):
    """(n, h, w) images: uint8 kept (worked in float64), anything else as float32."""
    X = _as_array(X)
    u8 = getattr(X, "dtype", None) == np.uint8
    flat = check_images(X, name, dtype=np.uint8 if u8 else np.float32)
    shape = X.shape
    if len(shape) == 4:  # one channel, last or first (check_images took no other)
        shape = shape[:3] if shape[3] == 1 else (shape[0],) + shape[2:]
    h, w = _image_shape(image_shape, flat.shape[1], tuple(shape[1:]) if len(shape) == 3 else None)
    return flat.reshape(flat.shape[0], h, w)


def hog(images, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
        block_norm="L2-Hys", transform_sqrt=False, *, image_shape=None, n_jobs=None):
    """Histograms of oriented gradients of each image: (n, n_features) float32.

    The features of scikit-image's ``skimage.feature.hog(image, orientations,
    pixels_per_cell, cells_per_block, block_norm, transform_sqrt=transform_sqrt)`` for each
    image, computed in C over ``n_jobs`` threads: central differences, each pixel's gradient
    magnitude added to the bin of its unsigned orientation (no interpolation), cells
    averaged, each block of cells normalised ("L1", "L1-sqrt", "L2", "L2-Hys": L2, clipped
    at 0.2, L2 again) and the blocks concatenated. The cell sums are float64 (scikit-image
    sums them in float32); the result is float32 and the same on any number of threads.

    images : (n, h, w), (n, h, w, 1), (n, 1, h, w), or rows of h * w values (square images
        unless ``image_shape=(h, w)`` says otherwise; one entry may be -1). uint8 pixels are
        worked in float64, like scikit-image does; any other dtype as float32.
    pixels_per_cell, cells_per_block : int or (rows, cols).
    """
    cell, block = _check_settings(orientations, pixels_per_cell, cells_per_block, block_norm,
                                  transform_sqrt)
    X = _images(images, image_shape, "images")
    return _core.hog(X, int(orientations), cell[0], cell[1], block[0], block[1],
                     _NORMS[block_norm], bool(transform_sqrt), n_threads(n_jobs))


class HOG(BaseEstimator):
    """Transformer of images into histograms of oriented gradients (see ``hog``), for a
    scikit-learn Pipeline: ``make_pipeline(HOG(pixels_per_cell=4, cells_per_block=2),
    SVC(C=10))``. fit only checks the settings and notes the input's shape
    (``n_features_in_``, ``image_shape_``); nothing is learned from the data."""

    def __init__(self, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3),
                 block_norm="L2-Hys", transform_sqrt=False, image_shape=None, n_jobs=None):
        self.orientations = orientations
        self.pixels_per_cell = pixels_per_cell
        self.cells_per_block = cells_per_block
        self.block_norm = block_norm
        self.transform_sqrt = transform_sqrt
        self.image_shape = image_shape
        self.n_jobs = n_jobs

    def _settings(self):
        return dict(orientations=self.orientations, pixels_per_cell=self.pixels_per_cell,
                    cells_per_block=self.cells_per_block, block_norm=self.block_norm,
                    transform_sqrt=self.transform_sqrt)

    def fit(self, X, y=None):
        _check_settings(**self._settings())
        n_threads(self.n_jobs)
        images = _images(X, self.image_shape)
        self.image_shape_ = images.shape[1:]
        self.n_features_in_ = images.shape[1] * images.shape[2]
        self.n_features_out_ = self.transform(images[:1]).shape[1]
        return self

    def transform(self, X):
        if not hasattr(self, "image_shape_"):
            raise not_fitted(type(self).__name__)
        X = _as_array(X)
        if X is None or hasattr(X, "toarray"):
            check_images(X)  # its TypeError
        flat = X.ndim == 2 and X.shape[1] == self.n_features_in_
        images = _images(X, self.image_shape_ if flat else None) if flat or X.ndim != 2 \
            else check_images(X)
        if images.shape[1:] != self.image_shape_:
            raise ValueError(f"X has {np.prod(images.shape[1:])} features, but HOG is "
                             f"expecting {self.n_features_in_} features as input (images "
                             f"{self.image_shape_})")
        return hog(images, **self._settings(), n_jobs=self.n_jobs)

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    def __sklearn_is_fitted__(self):
        return hasattr(self, "image_shape_")

    def __sklearn_tags__(self):
        from sklearn.utils import TransformerTags
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        return tags


_HOG_KEYS = frozenset(HOG().get_params()) - {"n_jobs"}  # what a HOGSVC candidate's dict sets


def _hog_settings(settings):
    """one HOG's settings: a union member's dict without its pixel_weight"""
    return {k: v for k, v in settings.items() if k != "pixel_weight"}


def _union(candidate, where):
    """A HOGSVC candidate as the list of its HOGs' settings (a dict: one HOG; a tuple or
    list of dicts: a union), checked: dicts of HOG's settings only, valid ones, and at most
    one pixel_weight (0, or a number > 0). `where` names it in errors ("hogs[1]")."""
    members = [candidate] if isinstance(candidate, dict) else candidate
    if not isinstance(members, (list, tuple)) or not all(isinstance(m, dict) for m in members):
        raise ValueError(f"{where} must be a dict of HOG settings or a tuple of them (a union "
                         f"of HOGs), got {candidate!r}")
    if not members:
        raise ValueError(f"{where} is an empty union: a union is a tuple of one or more dicts "
                         f"of HOG settings")
    weighted = sum("pixel_weight" in m for m in members)
    if weighted > 1:
        raise ValueError(f"{where} has {weighted} pixel_weights: the pixels follow all of "
                         f"a union's HOGs once, so give pixel_weight in one of its dicts")
    for m in members:
        unknown = sorted(map(str, set(m) - _HOG_KEYS - {"pixel_weight"}))
        if unknown:
            raise ValueError(f"{where} has unknown HOG settings {unknown}; a dict takes "
                             f"{sorted(_HOG_KEYS)} and pixel_weight")
        try:
            _check_settings(**HOG(**_hog_settings(m))._settings())
            if m.get("pixel_weight", 0) != 0:
                check_positive(m["pixel_weight"], "pixel_weight", float)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}: {e}") from None
    return list(members)


def _pixel_weight(members):
    """the pixel_weight of a union's members (_union: one at most), 0 without"""
    return next((float(m["pixel_weight"]) for m in members if "pixel_weight" in m), 0.0)


def _hog_svc_features(hogs, images, pixel_scale):
    """HOGSVC's features of float32 images: each fitted HOG's in turn, then (pixel_scale >
    0) the pixels times it, in float32 (as the ONNX graph computes them)"""
    features = [hog.transform(images) for hog in hogs]
    if pixel_scale:
        features.append(images.reshape(len(images), -1) * np.float32(pixel_scale))
    return np.hstack(features) if len(features) > 1 else features[0]


# virtual support vectors' one-pixel moves (rows, columns): down, up, right, left, then the
# diagonals; HOGSVC's virtual_shifts takes the first 4 or all 8
_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1))


def _shifted(images, shape, n_shifts):
    """The (n, h * w) images moved one pixel by each of the first n_shifts of _SHIFTS, the
    edge they leave filled with 0 (the background): (n_shifts * n, h * w), move by move."""
    h, w = shape
    im = images.reshape(len(images), h, w)
    out = np.zeros((n_shifts, *im.shape), images.dtype)
    for k, (dy, dx) in enumerate(_SHIFTS[:n_shifts]):
        out[k, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            im[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out.reshape(n_shifts * len(images), h * w)


class HOGSVC(FileMixin, ClassifierMixin, BaseEstimator):
    """Histograms of oriented gradients into an RBF support vector machine (``HOG`` then
    ``fmnist_c.SVC``), with the HOG settings, C and gamma chosen on fit's validation_data.

    ``hogs`` lists the candidate features. A candidate is a dict of ``HOG`` settings (one
    HOG), or a tuple of such dicts: a union of HOGs, whose features are concatenated in the
    tuple's order, as scikit-learn's ``FeatureUnion`` does with its list of transformers
    (``({"pixels_per_cell": 4, "cells_per_block": 2}, {"pixels_per_cell": 7})``: fine
    cells and coarse ones side by side). A tuple rather than a dict holding more dicts
    keeps every HOG's settings in the same flat form and leaves today's dict candidates as
    they are; the outer sequence is the grid, as in ``Cs``. One dict of a candidate may
    also hold ``"pixel_weight": w``: the pixels themselves then follow all of its HOG
    features, scaled to [0, 1] by the training images' largest absolute value and
    multiplied by w (``pixel_scale_`` is the factor: w / that value; 0 without pixels, or
    when every training pixel is 0). Shapes the HOG's cells blur, the pixels keep (issue
    17's validation runs at 10,000 training images: +0.9 points for pixel_weight 0.5; an
    exploration there, with a second HOG of 7 x 7 cells between, +0.36 over HOG + pixels).

    Every combination of candidate, ``Cs`` and ``gamma_factors`` (multiples of
    gamma="scale": 1 / (n_features var(features))) is fitted on ``subset`` training images
    (drawn with random_state) and scored on the validation set; the best (the first among
    equals) is refitted on every training image. The features are not rescaled: each block
    is normalised already, and gamma="scale" adapts to their variance. The images are
    taken as float32 (uint8 too: HOG's uint8 path works in float64, where a few gradients
    fall on the other side of a bin boundary than in float32; so the model is the same for
    either dtype and for its ONNX graph). ``grid_scores_`` lists [candidate index, C,
    gamma, validation accuracy]; the chosen settings are ``best_params_`` (a dict
    candidate's settings, or ``"hogs": [its dicts]`` for a union, with C and gamma), the
    fitted steps ``hogs_`` (the chosen candidate's fitted ``HOG`` transformers, one for a
    dict) and ``svc_``. With ``probability=True`` the SVC's sigmoids give predict_proba
    (fitted on validation_data's decision values when fit gets it, else by SVC's 5-fold
    cross-validation).

    ``virtual_shifts`` (0, 4 or 8) adds virtual support vectors (Decoste and Schoelkopf,
    2002): after the refit on every training image, the support vectors' images are moved
    one pixel down, up, right and left (8: and diagonally), the edge left behind set to 0
    (so 0 must be the images' background, as in Fashion-MNIST), and the SVC is fitted
    again, with the same C and gamma, on the support vectors and those copies (the copies
    keep their originals' labels and sample weights). The HOG's cells tolerate small moves
    only in part; the copies teach the kernel the rest. The grid is chosen without them.
    The second fit has (1 + virtual_shifts) x the support vectors as rows, and more support
    vectors than the first (prediction time grows with them: the official split's ledger row
    has 74,179 instead of 20,950). ``svc_`` is then the second SVC, its ``support_`` indices
    into that set (the support vectors, then each move's copies in turn); ``n_virtual_`` counts the
    copies (0 without). With ``probability=True`` only the second SVC is calibrated, and
    without validation_data its cross-validation keeps an image and its moves in one fold
    (SVC.fit's ``groups``)."""

    def __init__(self, hogs=({"orientations": 9, "pixels_per_cell": 4, "cells_per_block": 2,
                              "transform_sqrt": True},),
                 Cs=(10.0,), gamma_factors=(1.0,), subset=10000, virtual_shifts=0,
                 cache_size=1000, probability=False, random_state=None, verbose=0,
                 n_jobs=None):
        self.hogs = hogs
        self.Cs = Cs
        self.gamma_factors = gamma_factors
        self.subset = subset
        self.virtual_shifts = virtual_shifts
        self.cache_size = cache_size
        self.probability = probability
        self.random_state = random_state
        self.verbose = verbose
        self.n_jobs = n_jobs

    def _check_hyper_params(self):
        """Checks every hyper-parameter; returns the candidates as lists of HOG settings."""
        if not isinstance(self.hogs, (list, tuple)) or not self.hogs:
            raise ValueError(f"hogs must be a non-empty sequence of candidates (dicts of HOG "
                             f"settings, or tuples of them), got {self.hogs!r}")
        candidates = [_union(c, f"hogs[{j}]") for j, c in enumerate(self.hogs)]
        for name in ("Cs", "gamma_factors"):
            values = getattr(self, name)
            if isinstance(values, (str, dict)) or not np.iterable(values) or not len(values):
                raise ValueError(f"{name} must be a non-empty sequence of numbers > 0, got "
                                 f"{values!r}")
            for v in values:
                check_positive(v, name, float)
        check_positive(self.subset, "subset")
        if isinstance(self.virtual_shifts, (bool, np.bool_)) or \
                not isinstance(self.virtual_shifts, (int, np.integer)) or \
                self.virtual_shifts not in (0, 4, 8):
            raise ValueError(f"virtual_shifts must be the int 0, 4 or 8 (one-pixel moves of the "
                             f"support vectors), got {self.virtual_shifts!r}")
        if not isinstance(self.probability, (bool, np.bool_)):
            raise TypeError(f"probability must be True or False, got {self.probability!r}")
        n_threads(self.n_jobs)
        return candidates

    def fit(self, X, y, sample_weight=None, *, validation_data=None):
        """Choose on validation_data (X_val, y_val) and fit; returns self. Without it, the
        grid must hold one setting (nothing to choose)."""
        candidates = self._check_hyper_params()
        check_not_validation_data(sample_weight)
        hogs = [[HOG(**{"n_jobs": self.n_jobs, **_hog_settings(m)}) for m in members]
                for members in candidates]
        images = _as_array(X)
        width = check_images(images).shape[1]
        y = check_labels(y, len(images))
        images = np.asarray(images, np.float32)
        if validation_data is not None:
            Xv, yv = validation_data
            Xv = _as_array(Xv)
            val_width = check_images(Xv, "validation X").shape[1]
            if val_width != width:
                raise ValueError(f"validation X has {val_width} features, but X has {width}")
            check_labels(yv, len(Xv), "validation y")
            validation_data = (np.asarray(Xv, np.float32), yv)
        grid = [(i, float(C), float(f)) for i in range(len(hogs)) for C in self.Cs
                for f in self.gamma_factors]
        if validation_data is None and len(grid) > 1:
            raise ValueError(f"HOGSVC chooses among {len(grid)} settings on validation_data; "
                             f"pass fit(X, y, validation_data=(X_val, y_val))")
        rng = np.random.default_rng(seed_from(self.random_state))
        part = np.sort(rng.permutation(len(images))[:int(self.subset)])
        largest = float(np.abs(images).max()) if images.size else 0.0
        scales = [_pixel_weight(members) / largest if largest else 0.0
                  for members in candidates]
        for w in scales:
            if not np.isfinite(np.float32(w)):
                raise ValueError(f"pixel_weight / the training images' largest value is {w!r}, "
                                 f"beyond float32: give a smaller pixel_weight")
        for j, steps in enumerate(hogs):  # each HOG against the images, before any SVC runs
            try:
                shapes = {h.fit(images[part]).image_shape_ for h in steps}
            except ValueError as e:  # e.g. an image_shape that does not fit, cells too big
                raise ValueError(f"hogs[{j}]: {e}") from None
            if len(shapes) > 1:
                raise ValueError(f"hogs[{j}]'s HOGs read the images in different shapes "
                                 f"{sorted(shapes)}: a union's HOGs take one image_shape")
            if self.virtual_shifts and min(*shapes) < 2:
                raise ValueError(f"hogs[{j}]: virtual_shifts moves images one pixel each way: "
                                 f"images of {shapes.pop()} pixels are too small, give 0")
        scores = []
        for i, steps in enumerate(hogs):
            feats = _hog_svc_features(steps, images[part], scales[i])
            val = (_hog_svc_features(steps, validation_data[0], scales[i])
                   if len(grid) > 1 else None)
            scale = SVC()._gamma_for(feats)
            for _, C, f in (g for g in grid if g[0] == i):
                if val is None:
                    scores.append([i, C, scale * f, None])
                    continue
                m = SVC(C=C, gamma=scale * f, cache_size=self.cache_size, n_jobs=self.n_jobs)
                m.fit(feats, y[part], None if sample_weight is None else
                      np.asarray(sample_weight)[part])
                scores.append([i, C, scale * f, float(m.score(val, validation_data[1]))])
        best = max(range(len(scores)), key=lambda j: (scores[j][3] or 0.0, -j))
        i, C, _, _ = scores[best]
        steps, pixel_scale = hogs[i], scales[i]  # fitted above: HOG learns only the shape
        feats = _hog_svc_features(steps, images, pixel_scale)
        # gamma="scale" on every training image's features, times the chosen factor
        gamma = grid[best][2] * SVC()._gamma_for(feats)
        val = None
        if self.probability and validation_data is not None:
            val = (_hog_svc_features(steps, validation_data[0], pixel_scale),
                   validation_data[1])
        shifts = int(self.virtual_shifts)
        # with virtual_shifts the sigmoids are fitted on the second SVC only
        svc = SVC(C=C, gamma=gamma, cache_size=self.cache_size,
                  probability=bool(self.probability) and not shifts,
                  random_state=self.random_state, verbose=self.verbose, n_jobs=self.n_jobs)
        svc.fit(feats, y, sample_weight, validation_data=val)
        n_virtual = 0
        if shifts:
            sv = svc.support_
            moved = _shifted(images[sv], steps[0].image_shape_, shifts)
            n_virtual = len(moved)
            feats = np.concatenate([feats[sv], _hog_svc_features(steps, moved, pixel_scale)])
            svc = SVC(**{**svc.get_params(), "probability": bool(self.probability)}).fit(
                feats, np.tile(y[sv], 1 + shifts), None if sample_weight is None else
                np.tile(np.asarray(sample_weight)[sv], 1 + shifts), validation_data=val,
                groups=np.tile(np.arange(len(sv)), 1 + shifts))  # an image and its moves
        # the fitted steps together, once every fit above has passed
        self.hogs_, self.pixel_scale_, self.svc_ = steps, pixel_scale, svc
        self.n_virtual_ = n_virtual
        self.classes_ = self.svc_.classes_
        self.n_features_in_ = steps[0].n_features_in_
        self.grid_scores_ = scores
        chosen = self.hogs[i]
        self.best_params_ = {**(chosen if isinstance(chosen, dict) else
                                {"hogs": [dict(m) for m in chosen]}), "C": C, "gamma": gamma}
        return self

    def __setstate__(self, state):
        """A HOGSVC pickled before unions held its one fitted HOG as hog_: now hogs_; one
        pickled before virtual_shifts had none (0)."""
        state = dict(state)
        if "hog_" in state:
            state["hogs_"] = [state.pop("hog_")]
        state.setdefault("virtual_shifts", 0)
        if "svc_" in state:
            state.setdefault("n_virtual_", 0)
        self.__dict__.update(state)

    def _features(self, X):
        self._check_fitted()
        X = _as_array(X)
        self._check_width(check_images(X))  # errors that name HOGSVC
        # finite inputs near float32's limit overflow the gradients
        return check_finite_outputs(
            _hog_svc_features(self.hogs_, np.asarray(X, np.float32), self.pixel_scale_))

    def decision_function(self, X):
        features = self._features(X)
        return self.svc_.decision_function(features)

    def predict(self, X):
        features = self._features(X)
        return self.svc_.predict(features)

    @property
    def predict_proba(self):
        """The SVC's probabilities of the images' features; only with probability=True (as
        SVC, hasattr(model, "predict_proba") is False otherwise)."""
        if not self.probability:
            raise AttributeError("predict_proba is available when probability=True")
        return self._predict_proba

    def _predict_proba(self, X):
        features = self._features(X)
        return self.svc_.predict_proba(features)

    # ---- files ------------------------------------------------------------------------
    def _file_contents(self):
        """the chosen HOG settings (with their image shape: a dict for one HOG, as before
        unions; a list of them for a union), the grid, and the SVC's own file contents
        (FileMixin)"""
        svc_config, arrays = self.svc_._file_contents()
        hogs = [{**h._settings(), "image_shape": list(h.image_shape_)} for h in self.hogs_]
        return {"params": self._file_params(), "hog": hogs[0] if len(hogs) == 1 else hogs,
                "pixel_scale": self.pixel_scale_, "n_virtual": self.n_virtual_, "svc": svc_config,
                "best_params": self.best_params_, "grid_scores": self.grid_scores_}, arrays

    @staticmethod
    def _file_hog(config):
        """(settings, (h, w)) of one HOG as a file holds it, the image shape checked"""
        settings = dict(config)
        shape = settings.pop("image_shape")
        try:
            h, w = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise ValueError(f"the HOGSVC model file's image shape {shape!r} is not (h, w)") \
                from None
        if not (h >= 1 and w >= 1 and h * w <= _MOST_PIXELS):
            raise ValueError(f"the HOGSVC model file's image shape {shape!r} is out of range")
        return settings, (h, w)

    @classmethod
    def _from_file(cls, config, arrays):
        self = cls(**cls._params_from_file(config["params"]))
        self._check_hyper_params()
        hogs = config["hog"]
        hogs = [hogs] if isinstance(hogs, dict) else hogs  # one HOG, or a union's list
        if not isinstance(hogs, list) or not hogs or not all(isinstance(h, dict) for h in hogs) \
                or not isinstance(config["best_params"], dict):
            raise ValueError("the HOGSVC model file's HOG settings are not a dict or a "
                             "non-empty list of them, or its best_params not a dict")
        hogs = [cls._file_hog(h) for h in hogs]
        if len({shape for _, shape in hogs}) > 1:
            raise ValueError("the HOGSVC model file's HOGs take images of different shapes")
        if len(hogs) * hogs[0][1][0] * hogs[0][1][1] > _MOST_PIXELS:
            # each HOG is set up on a zero image below: the file's pixels in all
            raise ValueError(f"the HOGSVC model file's {len(hogs)} HOGs of "
                             f"{hogs[0][1][0]} x {hogs[0][1][1]} images are out of range")
        scale = config.get("pixel_scale")
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) \
                or not 0 <= scale <= np.finfo(np.float32).max:
            raise ValueError(f"the HOGSVC model file's pixel scale {scale!r} is not a number "
                             f"from 0 to float32's largest")
        self.pixel_scale_ = float(scale)
        self.svc_ = SVC._from_file(config["svc"], arrays)
        n_virtual = config.get("n_virtual", 0)  # files from before virtual_shifts: 0
        shifts = self.virtual_shifts
        if isinstance(n_virtual, bool) or not isinstance(n_virtual, int) or n_virtual < 0 or \
                (n_virtual == 0) != (shifts == 0) or (shifts and n_virtual % shifts):
            raise ValueError(f"the HOGSVC model file's count of virtual support vectors "
                             f"{n_virtual!r} is not an int >= 0 that its virtual_shifts "
                             f"{shifts!r} makes (0 without, a multiple with)")
        self.n_virtual_ = n_virtual
        # the SVC's width (bounded by its arrays) against the HOGs', before any HOG runs: a
        # crafted file's settings could ask for billions of features of a zero image
        widths = [_n_features(h, w, **settings) for settings, (h, w) in hogs]
        h, w = hogs[0][1]
        if not all(widths):
            raise ValueError("a HOG of the HOGSVC model file gives no features (its blocks "
                             "do not fit its image)")
        if self.svc_.n_features_in_ != sum(widths) + (h * w if scale else 0):
            raise ValueError("the HOGSVC model file's SVC does not take its HOG's features")
        if self.svc_.probability != self.probability:
            raise ValueError(f"the HOGSVC model file says probability={self.probability!r}, "
                             f"its SVC was fitted with probability={self.svc_.probability!r}")
        self.hogs_ = [HOG(**settings, n_jobs=self.n_jobs).fit(np.zeros((1, *shape), np.float32))
                      for settings, shape in hogs]
        self.svc_.set_params(n_jobs=self.n_jobs)
        self.classes_ = self.svc_.classes_
        self.n_features_in_ = self.hogs_[0].n_features_in_
        self.best_params_, self.grid_scores_ = config["best_params"], config["grid_scores"]
        return self
