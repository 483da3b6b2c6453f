"""Neural networks on the C engine: layer specs, Sequential (Keras-like), MLPClassifier and
CNNClassifier (scikit-learn-like).

A network is a list of layer specs compiled into a small program (one row of int64 per
layer) that the C driver runs; all parameters live in one float32 array (``params_``), a
dense layer's block being W (units, inputs) row-major then b (units), so y = x W^T + b as
in PyTorch. Training runs a chunk of minibatches per C call with the GIL released; Python
loops chunks (~0.15 s each, so Ctrl-C and the progress bar respond at once) and epochs.

Modules: layers (layer specs), optimizers (SGD, Adam, AdamW, learning-rate schedules),
augment, sequential (Sequential), classifiers (MLPClassifier, CNNClassifier, presets) and
ensemble (CNNEnsembleClassifier) and io (save/load). Every name is importable from fmnist_c.nn as before the split.
"""
from .augment import augment_images
from .classifiers import (CNN_PRESETS, PRESETS, CNNClassifier, MLPClassifier, improved_cnn,
                          resnet_cnn, study_cnn)
from .ensemble import ENSEMBLE_PRESETS, CNNEnsembleClassifier
from .io import load_model
from .layers import (AvgPool2D, BatchNorm, Conv2D, Dense, Dropout, Flatten,
                     GlobalAveragePooling2D, Layer, MaxPool2D, ReLU, Residual)
from .optimizers import SGD, Adam, AdamW, learning_rates
from .sequential import Sequential

__all__ = [
    "Adam", "AdamW", "augment_images", "AvgPool2D", "BatchNorm", "CNN_PRESETS",
    "CNNClassifier", "CNNEnsembleClassifier", "Conv2D", "Dense", "Dropout", "ENSEMBLE_PRESETS",
    "Flatten", "GlobalAveragePooling2D", "improved_cnn", "Layer", "learning_rates", "load_model", "MaxPool2D", "MLPClassifier",
    "PRESETS", "ReLU", "Residual", "resnet_cnn", "Sequential", "SGD", "study_cnn",
]
