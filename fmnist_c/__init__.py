"""fmnist_c: which kind of model is worth it for image classification?

Fashion-MNIST classifiers whose training kernels are hand-written C, behind
scikit-learn-style estimators, plus the data pipeline and the original study's protocol.
"""
__version__ = "0.1.0"

from . import metrics, plot
from ._base import NotFittedError
from ._config import show_config
from .data import CLASS_NAMES, load_fashion_mnist, load_sample, official_split, study_split
from .deploy import predict_images, prepare_image
from .boosting import GradientBoostingClassifier
from .ensemble import RandomForestClassifier
from .linear import SGDLogisticRegression
from .neighbors import KNeighborsClassifier
from .nn import CNNClassifier, CNNEnsembleClassifier, MLPClassifier, Sequential
from .svm import SVC
from .tree import DecisionTreeClassifier

__all__ = [
    "__version__", "CLASS_NAMES", "CNNClassifier", "CNNEnsembleClassifier",
    "DecisionTreeClassifier",
    "GradientBoostingClassifier", "KNeighborsClassifier",
    "MLPClassifier", "NotFittedError", "RandomForestClassifier",
    "SGDLogisticRegression", "SVC", "Sequential",
    "load_fashion_mnist", "load_sample", "metrics", "official_split", "plot", "predict_images",
    "prepare_image", "show_config", "study_split",
]
