"""Deployment: turn any photo of a garment into a Fashion-MNIST image and classify it.

Pillow reads and resizes the images; it is imported only here, when called (matplotlib,
a run-time dependency, already requires it).
"""
import os
from collections import namedtuple

import numpy as np

from ._base import check_positive
from .data import CLASS_NAMES

__all__ = ["Prediction", "predict_images", "prepare_image"]

SIDE = 28
TRIM_LEVEL = 13  # 5% of 255: edges this close to the background are trimmed

Prediction = namedtuple("Prediction", "source label class_name probability probabilities")
Prediction.__doc__ = """One image's answer: where it came from (a path, or "image i"), the
predicted label (the model's predict) and its class name, the probability of that class
and the probabilities of every class (in the order of the model's classes); both None for
a model that gives no probabilities (an SVC without probability=True, or its export)."""


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("reading and resizing images needs Pillow: pip install pillow") from None
    return Image


def _open(image, Image):
    """A PIL image in mode "L" or "RGBA" from a path, a PIL image or an integer array."""
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as im:
                im.load()
        except OSError as e:  # missing, unreadable, or not an image Pillow knows
            raise ValueError(f"{os.fspath(image)}: cannot read it as an image ({e})") from None
    elif isinstance(image, Image.Image):
        im = image
    elif isinstance(image, np.ndarray):
        if image.dtype.kind not in "iu":
            raise TypeError(f"image arrays must hold integers 0..255, got dtype {image.dtype} "
                            "(floats in [0, 1]: pass (a * 255).round().astype(np.uint8))")
        if not (image.ndim == 2 or image.ndim == 3 and image.shape[2] in (3, 4)):
            raise ValueError(f"an image array must be (h, w) gray, (h, w, 3) RGB or (h, w, 4) "
                             f"RGBA, got shape {image.shape}")
        if image.size == 0 or image.min() < 0 or image.max() > 255:
            raise ValueError("an image array must be non-empty with values in 0..255")
        im = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    else:
        raise TypeError(f"an image must be a path, a PIL image or a NumPy array, got "
                        f"{type(image).__name__}")
    return im.convert("L") if im.mode in ("L", "1", "I", "I;16", "F") else im.convert("RGBA")


def prepare_image(image):
    """One image as Fashion-MNIST holds its own: uint8 (28, 28), a light object on black.

    image: a path to any file Pillow reads (PNG, JPEG, ...), a PIL image, or an integer
    array (h, w) gray, (h, w, 3) RGB or (h, w, 4) RGBA with values 0..255; any size.
    Fashion-MNIST's images were made from product photos on a white page by trimming the
    background, fitting the longest side into 28, centring, negating and keeping 8-bit
    grayscale (Xiao et al. 2017, section 2). Here, in this order:

    1. transparent pixels are laid over white (a cut-out on a white page); colour becomes
       8-bit grayscale by ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B (Pillow's "L");
    2. the background level is the median of the outermost ring of pixels; when it is
       light (128 or more) the image is negated, v -> 255 - v, so the object is light on
       dark as in Fashion-MNIST (an image already on a dark background is not negated);
    3. the background is shifted to 0: v -> max(v - background, 0);
    4. edge rows and columns within 5% of 255 (13 levels) of the background are trimmed;
    5. the longest side is resized to 28 keeping the aspect ratio (Lanczos resampling,
       where Fashion-MNIST subsampled and then sharpened), and the short side is padded
       with 0 equally on both sides (the odd pixel on the right or bottom), so the object
       is centred.

    An image that is already 28 x 28 is taken as framed: only steps 1-3 apply, so a
    Fashion-MNIST image comes back unchanged (trimming and refitting would blur it).
    An image with nothing but background raises ValueError.
    """
    Image = _pillow()
    im = _open(image, Image)
    if im.mode == "RGBA":
        page = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(page, im).convert("L")
    gray = np.asarray(im, dtype=np.int16)
    ring = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    background = int(np.median(ring))
    if background >= 128:
        gray, background = 255 - gray, 255 - background
    gray = np.maximum(gray - background, 0)
    if gray.shape == (SIDE, SIDE):
        return gray.astype(np.uint8)
    rows = np.flatnonzero((gray > TRIM_LEVEL).any(axis=1))
    cols = np.flatnonzero((gray > TRIM_LEVEL).any(axis=0))
    if len(rows) == 0:
        raise ValueError("the image holds no object: every pixel is within 5% of the "
                         "background level")
    obj = gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.uint8)
    h, w = obj.shape
    scale = SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(obj).resize(size, Image.Resampling.LANCZOS))
    out = np.zeros((SIDE, SIDE), dtype=np.uint8)
    top, left = (SIDE - size[1]) // 2, (SIDE - size[0]) // 2
    out[top:top + size[1], left:left + size[0]] = small
    return out


def _check_model(model):
    """The model itself: loaded when given a path (an .onnx file through onnxruntime, else
    fmnist_c.nn.load_model, which rejects anything that is not a model file), then checked
    to take 28x28 images."""
    if isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".onnx"):
        from .onnx_export import load_onnx
        model = load_onnx(model)
    elif isinstance(model, (str, os.PathLike)):
        from .nn import load_model
        model = load_model(model)
    if not callable(getattr(model, "predict", None)):
        raise TypeError(f"model must be a fitted classifier (with predict) or the path of a "
                        f"saved model, got {type(model).__name__}")
    n = getattr(model, "n_features_in_", None)
    if n != SIDE * SIDE:
        raise ValueError(f"model must be fitted on 28x28 images ({SIDE * SIDE} features); "
                         + ("it is not fitted" if n is None else f"it takes {n} features"))
    return model


def predict_images(model, images, pixel_scale=255.0):
    """Classify image files or arrays with a fitted model; returns a list of Prediction.

    model: a fitted classifier taking 784 features (anything with predict and
    n_features_in_ == 784; predict_proba gives the probabilities), the path of a model
    saved by fmnist_c (.npz), or of an ONNX file (.onnx, run by onnxruntime; see
    fmnist_c.onnx_export).
    images: one path, PIL image or array, or a list of them; each is turned into a
    Fashion-MNIST image by prepare_image (see its steps) and fed to the model as
    pixels / pixel_scale. The default 255 matches every model of the study except a
    logistic regression on raw pixels, which needs pixel_scale=1.
    """
    model = _check_model(model)
    pixel_scale = check_positive(pixel_scale, "pixel_scale", kind=float)
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("images is empty")
    else:
        images = [images]
    X = np.stack([prepare_image(im) for im in images]).astype(np.float32) / pixel_scale
    labels = np.asarray(model.predict(X))
    # no probabilities: an SVC without probability=True has no predict_proba, and its ONNX
    # export's output_probability holds decision_function (said in the file's metadata)
    scores = getattr(model, "predict_proba", None)
    if getattr(model, "output_probability", "predict_proba") != "predict_proba":
        scores = None
    proba = None if scores is None else np.asarray(scores(X))
    classes = getattr(model, "classes_", None)
    out = []
    for i, (image, label) in enumerate(zip(images, labels)):
        label = label.item() if hasattr(label, "item") else label
        name = CLASS_NAMES[label] if isinstance(label, int) and 0 <= label < 10 else str(label)
        source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else f"image {i}"
        if proba is None:
            out.append(Prediction(source, label, name, None, None))
            continue
        # the label's column; a file from elsewhere may label its classes otherwise than
        # its columns (classes_ 0..k-1): then the highest score's
        at = np.flatnonzero(np.asarray(classes) == label) if classes is not None else []
        at = int(at[0]) if len(at) else int(np.argmax(proba[i]))
        out.append(Prediction(source, label, name, float(proba[i][at]), proba[i]))
    return out
