"""Layer specs: each layer's settings, the shape it maps to, its parameter block and its
row of the C program (csrc/nn.h: enum fm_nn_column, enum fm_layer_type)."""
import math

import numpy as np

from .. import _core
from .._base import check_positive

# layer codes, as C defines them (csrc/nn/nn.h: enum fm_layer_type)
_CODE = _core.LAYER_TYPES
_DENSE, _RELU, _DROPOUT, _CONV2D = _CODE["dense"], _CODE["relu"], _CODE["dropout"], _CODE["conv2d"]
_MAXPOOL, _AVGPOOL, _FLATTEN, _BATCHNORM = (_CODE["maxpool"], _CODE["avgpool"], _CODE["flatten"],
                                            _CODE["batchnorm"])
_RESIDUAL = _CODE["residual"]


class Layer:
    """A layer spec: its settings, the shape it maps to and its row of the C program.
    Shapes are per-sample (C, H, W); in memory a sample is (H, W, C), channels last (Keras'
    order, so Flatten and Dense see pixels in Keras' order). `code` is the C layer type."""

    rate = 0.0

    def get_config(self):
        return {}

    def output_shape(self, shape):
        return shape

    def param_count(self, shape):
        return 0

    def _expand(self):
        return [self]

    def _window(self, shape):
        """(kh, kw, stride, pad_top, pad_left) for window layers."""
        return (0, 0, 0, 0, 0)

    def _bind(self, shapes):
        """This layer as compiled at row len(shapes) of the program, shapes being the input
        shapes of the rows before it (a residual join takes its shortcut's from them)."""
        return self

    def _settings(self):
        """(rate or momentum, epsilon): the float columns of the program, in the order of
        csrc/nn/nn.h's enum fm_nn_fcolumn."""
        return (self.rate, 0.0)

    @classmethod
    def _from_config(cls, config):
        return cls(**config)

    def _skip(self, row):
        """The program's SKIP column at row `row` (residual joins: the shortcut's row)."""
        return 0

    def _initial(self, rng, shape, init):
        """Initial values of this layer's parameter block (None: it has none)."""
        return None

    def _views(self, flat, shape):
        """Views of this layer's parameter block in a flat array (Keras' get_weights order)."""
        return []

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


def _uniform(rng, shape, fan_in, fan_out, init):
    """Glorot (Keras' default) or He uniform weights of `shape`."""
    fan = fan_in + fan_out if init == "glorot_uniform" else fan_in
    limit = math.sqrt(6.0 / fan)
    return rng.uniform(-limit, limit, int(np.prod(shape)))


def _activation(activation, layer):
    if activation not in (None, "linear", "relu"):
        raise ValueError(f"{layer} activation must be None, 'linear' or 'relu', got {activation!r}")
    return activation


class Dense(Layer):
    """Fully connected: y = x W^T + b, W of shape (units, inputs). Flattens its input.
    ``activation="relu"`` is shorthand for Dense followed by ReLU."""

    code = _DENSE

    def __init__(self, units, activation=None):
        self.units = check_positive(units, "units")
        self.activation = _activation(activation, "Dense")

    def get_config(self):
        return {"units": self.units, "activation": self.activation}

    def output_shape(self, shape):
        return (self.units, 1, 1)

    def _expand(self):
        return [Dense(self.units)] + ([ReLU()] if self.activation == "relu" else [])

    def param_count(self, shape):
        return self.units * int(np.prod(shape)) + self.units

    def _initial(self, rng, shape, init):
        fan_in = int(np.prod(shape))
        w = _uniform(rng, (self.units, fan_in), fan_in, self.units, init)
        return np.concatenate([w, np.zeros(self.units)])

    def _views(self, flat, shape):
        fan_in = int(np.prod(shape))
        return [flat[:self.units * fan_in].reshape(self.units, fan_in), flat[self.units * fan_in:]]


def _pair(value, name):
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return tuple(check_positive(v, name) for v in pair)


def _spatial(shape, layer):
    if shape[1] == 1 and shape[2] == 1:
        raise ValueError(f"{layer} needs an image input (C, H, W), got a flat one {shape}; "
                         f"give Sequential input_shape=(1, 28, 28) or images")
    return shape


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as Keras and PyTorch) with `filters` output
    channels, a kernel_size window, stride `strides`, padding "valid" (no padding) or "same"
    (zeros so that the output is ceil(input / stride), split as Keras does).
    Weights (filters, kh, kw, channels) then biases (filters). ``activation="relu"`` adds a
    ReLU after it."""

    code = _CONV2D

    def __init__(self, filters, kernel_size=3, strides=1, padding="valid", activation=None):
        self.filters = check_positive(filters, "filters")
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.strides = check_positive(strides, "strides")
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        self.padding = padding
        self.activation = _activation(activation, "Conv2D")

    def get_config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": self.strides, "padding": self.padding, "activation": self.activation}

    def _expand(self):
        return [Conv2D(self.filters, self.kernel_size, self.strides, self.padding)] + \
            ([ReLU()] if self.activation == "relu" else [])

    def _geometry(self, shape):
        """(out_h, out_w, pad_top, pad_left)."""
        _, h, w = _spatial(shape, "Conv2D")
        out, pads = [], []
        for size, k in zip((h, w), self.kernel_size):
            if self.padding == "valid":
                if size < k:
                    raise ValueError(f"Conv2D kernel {self.kernel_size} is larger than its "
                                     f"input {shape[1:]}")
                out.append((size - k) // self.strides + 1)
                pads.append(0)
            else:
                o = -(-size // self.strides)
                out.append(o)
                pads.append(max((o - 1) * self.strides + k - size, 0) // 2)
        return out[0], out[1], pads[0], pads[1]

    def output_shape(self, shape):
        oh, ow, _, _ = self._geometry(shape)
        return (self.filters, oh, ow)

    def _window(self, shape):
        _, _, ph, pw = self._geometry(shape)
        return (*self.kernel_size, self.strides, ph, pw)

    def param_count(self, shape):
        return self.filters * (self.kernel_size[0] * self.kernel_size[1] * shape[0] + 1)

    def _initial(self, rng, shape, init):
        kh, kw = self.kernel_size
        fan_in, fan_out = kh * kw * shape[0], kh * kw * self.filters
        w = _uniform(rng, (self.filters, fan_in), fan_in, fan_out, init)
        return np.concatenate([w, np.zeros(self.filters)])

    def _views(self, flat, shape):
        n = self.filters * self.kernel_size[0] * self.kernel_size[1] * shape[0]
        return [flat[:n].reshape(self.filters, *self.kernel_size, shape[0]), flat[n:]]


class MaxPool2D(Layer):
    """Max over pool_size windows moved by strides (default: pool_size), no padding (the
    last rows/columns that do not fill a window are dropped, as Keras' "valid")."""

    code = _MAXPOOL

    def __init__(self, pool_size=2, strides=None):
        self.pool_size = _pair(pool_size, "pool_size")
        self.strides = None if strides is None else check_positive(strides, "strides")

    def get_config(self):
        return {"pool_size": list(self.pool_size), "strides": self.strides}

    def _stride(self):
        return self.strides if self.strides is not None else self.pool_size[0]

    def output_shape(self, shape):
        c, h, w = _spatial(shape, type(self).__name__)
        (ph, pw), s = self.pool_size, self._stride()
        if h < ph or w < pw:
            raise ValueError(f"{type(self).__name__} window {self.pool_size} is larger than "
                             f"its input {shape[1:]}")
        return (c, (h - ph) // s + 1, (w - pw) // s + 1)

    def _window(self, shape):
        return (*self.pool_size, self._stride(), 0, 0)


class AvgPool2D(MaxPool2D):
    """Mean over pool_size windows moved by strides (default: pool_size), no padding."""

    code = _AVGPOOL


class GlobalAveragePooling2D(Layer):
    """The mean of each channel over the whole image: (C, H, W) -> (C, 1, 1)."""

    code = _AVGPOOL

    def output_shape(self, shape):
        return (_spatial(shape, "GlobalAveragePooling2D")[0], 1, 1)

    def _window(self, shape):
        return (shape[1], shape[2], 1, 0, 0)


class Flatten(Layer):
    """(C, H, W) -> (C * H * W,) in memory order (H, W, C), as Keras' Flatten."""

    code = _FLATTEN

    def output_shape(self, shape):
        return (int(np.prod(shape)), 1, 1)


class BatchNorm(Layer):
    """Batch normalisation per channel (per unit after Dense): training uses the batch's
    mean and variance and updates running statistics (running = momentum running +
    (1 - momentum) batch, with the unbiased batch variance, as torch's momentum 0.1);
    inference uses the running statistics. Parameters: gamma, beta (trained), running mean,
    running variance (not trained)."""

    code = _BATCHNORM

    def __init__(self, momentum=0.9, epsilon=1e-5):
        momentum = check_positive(momentum, "momentum", float, allow_zero=True)
        if not momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        epsilon = check_positive(epsilon, "epsilon", float)
        if not epsilon < 1:
            raise ValueError(f"epsilon must be in (0, 1), got {epsilon!r}")
        self.momentum, self.epsilon = momentum, epsilon

    def get_config(self):
        return {"momentum": self.momentum, "epsilon": self.epsilon}

    def _settings(self):
        return (self.momentum, self.epsilon)

    def param_count(self, shape):
        return 4 * shape[0]

    def _initial(self, rng, shape, init):
        c = shape[0]
        return np.concatenate([np.ones(c), np.zeros(c), np.zeros(c), np.ones(c)])

    def _views(self, flat, shape):
        return list(flat.reshape(4, shape[0]))


class ReLU(Layer):
    """max(x, 0)."""

    code = _RELU


class Dropout(Layer):
    """Inverted dropout while training (kept units scaled by 1/(1-rate)); identity in inference.
    Masks are drawn from (random_state, step, layer), independent of the thread count."""

    code = _DROPOUT

    def __init__(self, rate):
        rate = check_positive(rate, "dropout rate", float, allow_zero=True)
        if not rate < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate!r}")
        self.rate = rate

    def get_config(self):
        return {"rate": self.rate}


class Residual(Layer):
    """A residual block: y = body(x) + x, as in ResNet. When the body changes the shape (more
    channels, or a stride), x goes through a 1x1 convolution with the stride that maps it to
    the body's output shape (the projection: weights (filters, 1, 1, channels), then biases).
    The body is a list of layer specs (Residual blocks may nest); a ReLU after the block
    acts on the sum, as in ResNet's basic block. The body must keep its input an image or
    keep it flat, and may only shrink an image by a stride: (C, H, W) -> (F, ceil(H / s),
    ceil(W / s)), which "same" convolutions give."""

    code = _RESIDUAL

    def __init__(self, layers):
        layers = layers if isinstance(layers, list) else list(layers)
        if not layers:
            raise ValueError("a Residual block needs at least one layer in its body")
        for layer in layers:
            if not isinstance(layer, Layer):
                raise TypeError(f"Residual layers must be layer specs, got {layer!r}")
        self.layers = layers

    def get_config(self):
        return {"layers": [{"class": type(l).__name__, **l.get_config()} for l in self.layers]}

    @classmethod
    def _from_config(cls, config):
        return cls([layer_from_config(c) for c in config["layers"]])

    def _expand(self):
        body = [p for spec in self.layers for p in spec._expand()]
        return body + [_Join(len(body))]


class _Join(Layer):
    """A Residual block's last row of the program: adds the input of the row `depth` rows
    up (the block's input, the shortcut), projected when its shape differs."""

    code = _RESIDUAL

    def __init__(self, depth, source=None):
        self.depth, self.source = depth, source

    def get_config(self):
        return {"depth": self.depth, "source": self.source}

    def _bind(self, shapes):
        return _Join(self.depth, tuple(shapes[len(shapes) - self.depth]))

    def _skip(self, row):
        return row - self.depth

    def _stride(self, shape):
        """None when the shortcut is added as it is, else the projection's stride."""
        (c, h, w), (f, oh, ow) = self.source, shape
        if (c, h, w) == (f, oh, ow):
            return None
        if (h * w > 1) != (oh * ow > 1):
            raise ValueError(f"a Residual body must keep its input {self.source} an image or "
                             f"keep it flat; it gives {shape}")
        for s in range(1, max(h, w) + 1):
            if ((h - 1) // s + 1, (w - 1) // s + 1) == (oh, ow):
                return s
        raise ValueError(f"a Residual body maps {self.source} to {shape}: no strided 1x1 "
                         f"projection matches (use padding='same' convolutions)")

    def _window(self, shape):
        s = self._stride(shape)
        return (0, 0, 0, 0, 0) if s is None else (1, 1, s, 0, 0)

    def param_count(self, shape):
        return 0 if self._stride(shape) is None else shape[0] * (self.source[0] + 1)

    def _initial(self, rng, shape, init):
        if self._stride(shape) is None:
            return None
        c, f = self.source[0], shape[0]
        return np.concatenate([_uniform(rng, (f, c), c, f, init), np.zeros(f)])

    def _views(self, flat, shape):
        if self._stride(shape) is None:
            return []
        n = shape[0] * self.source[0]
        return [flat[:n].reshape(shape[0], 1, 1, self.source[0]), flat[n:]]


_LAYERS = {cls.__name__: cls for cls in (Dense, Conv2D, MaxPool2D, AvgPool2D,
                                         GlobalAveragePooling2D, Flatten, BatchNorm, ReLU,
                                         Dropout, Residual)}


def layer_from_config(config):
    """A layer spec from its {"class": name, **get_config()} form."""
    config = dict(config)
    return _LAYERS[config.pop("class")]._from_config(config)
