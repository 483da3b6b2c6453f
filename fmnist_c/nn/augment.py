"""Training-time image augmentation (done in C as each batch is gathered): the argument
check fit uses, and augment_images to look at it; shift_images for test-time augmentation."""
import numpy as np

from .. import _core
from .._base import check_positive, seed_from


def _augment_args(augment):
    """The C call's augmentation arguments from fit's `augment` dict."""
    spec = {} if augment is None else dict(augment)
    unknown = set(spec) - {"shift", "flip", "erase"}
    if unknown:
        raise ValueError(f"augment takes shift, flip and erase; got {sorted(unknown)}")
    shift = check_positive(spec.get("shift", 0), "augment shift", allow_zero=True)
    erase = check_positive(spec.get("erase", 0.0), "augment erase", float, allow_zero=True)
    if erase > 1:
        raise ValueError(f"augment erase is a probability in [0, 1], got {erase!r}")
    return {"shift": shift, "flip": bool(spec.get("flip", False)), "erase": erase}


def augment_images(X, shift=0, flip=False, erase=0.0, random_state=None):
    """The training-time augmentation of fit(augment=...) applied to images X (n, H, W) or
    (n, H, W, C), e.g. to look at it; returns float32 of X's shape. Image i is drawn from
    the stream (random_state, i), as training draws row i of step t from (seed, t * batch + i)."""
    args = _augment_args({"shift": shift, "flip": flip, "erase": erase})
    X = np.asarray(X)
    if X.ndim not in (3, 4) or 0 in X.shape:
        raise ValueError(f"X must be non-empty images (n, H, W) or (n, H, W, C), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    images = np.asarray(X, np.float32).reshape(*X.shape[:3], -1)
    out = _core.augment_images(images, seed=seed_from(random_state), **args)
    return out.reshape(X.shape)


def shift_images(X, shape, dy, dx):
    """Rows X (n, C * H * W) of (H, W, C) images, shape (C, H, W), each moved down by dy and
    right by dx pixels (negative: up, left), zeros where the image moved away."""
    c, h, w = shape
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError(f"a shift of ({dy}, {dx}) pixels leaves nothing of {h} x {w} images")
    src = X.reshape(len(X), h, w, c)
    out = np.zeros_like(src)
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        src[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out.reshape(X.shape)
