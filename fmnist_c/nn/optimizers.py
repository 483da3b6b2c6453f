"""Optimizers (SGD, Adam, AdamW) as the C update takes them, and (from _training, where
SGDLogisticRegression finds them too) the learning-rate schedules."""
from .. import _core
from .._base import check_positive
from .._training import learning_rates  # re-exported: fmnist_c.nn.learning_rates

_OPTIMIZERS = _core.OPTIMIZERS  # csrc/nn/optim.h: enum fm_optimizer


class SGD:
    """SGD with momentum (Keras' form: v = momentum v - lr g; p += v) and Nesterov;
    weight_decay adds weight_decay * p to the gradient (L2, as torch.optim.SGD)."""

    kind = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.learning_rate, self.momentum = learning_rate, momentum
        self.nesterov, self.weight_decay = nesterov, weight_decay

    def _c_args(self):
        check_positive(self.learning_rate, "learning_rate", float)
        check_positive(self.weight_decay, "weight_decay", float, allow_zero=True)
        if not 0 <= check_positive(self.momentum, "momentum", float, allow_zero=True) < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        return dict(optimizer=_OPTIMIZERS[self.kind], momentum=float(self.momentum),
                    nesterov=bool(self.nesterov), beta1=0.0, beta2=0.0, epsilon=1.0,
                    weight_decay=float(self.weight_decay))

    def get_config(self):
        return dict(vars(self))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)


class Adam(SGD):
    """Adam (torch.optim.Adam's update); weight_decay is L2 added to the gradient.
    epsilon defaults to Keras' 1e-7."""

    kind = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=0.0):
        self.learning_rate, self.beta_1, self.beta_2 = learning_rate, beta_1, beta_2
        self.epsilon, self.weight_decay = epsilon, weight_decay

    def _c_args(self):
        check_positive(self.learning_rate, "learning_rate", float)
        check_positive(self.weight_decay, "weight_decay", float, allow_zero=True)
        check_positive(self.epsilon, "epsilon", float)
        for name in ("beta_1", "beta_2"):
            if not 0 <= check_positive(getattr(self, name), name, float, allow_zero=True) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        return dict(optimizer=_OPTIMIZERS[self.kind], momentum=0.0, nesterov=False,
                    beta1=float(self.beta_1), beta2=float(self.beta_2),
                    epsilon=float(self.epsilon), weight_decay=float(self.weight_decay))


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 - lr * weight_decay each step (torch.optim.AdamW)."""

    kind = "adamw"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=0.004):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay)


_OPTIMIZER_CLASSES = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def _optimizer(spec):
    if isinstance(spec, str):
        if spec not in _OPTIMIZER_CLASSES:
            raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZER_CLASSES)} or an "
                             f"SGD/Adam/AdamW instance, got {spec!r}")
        return _OPTIMIZER_CLASSES[spec]()
    if not isinstance(spec, SGD):
        raise TypeError(f"optimizer must be a name or an SGD/Adam/AdamW instance, got {spec!r}")
    return spec
