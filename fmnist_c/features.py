"""Image features computed in C (csrc/features/): histograms of oriented gradients, as
``hog(images, ...)`` and as the transformer ``HOG`` for a scikit-learn Pipeline."""
import math

import numpy as np

from . import _core
from ._base import BaseEstimator, check_images, n_threads, not_fitted

_NORMS = _core.hog_norms()
_MOST = 1 << 15  # orientations and image sides the kernel takes


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
