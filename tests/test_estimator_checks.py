"""scikit-learn's own estimator checks (sklearn.utils.estimator_checks) over every estimator
that takes tables: the API contract (get_params/set_params/clone, fit returns self,
fitted attributes, n_features_in_, NotFittedError), input validation and its messages,
pickling, and the classifier checks. What does not apply is declared by the estimators'
__sklearn_tags__ (dense input only, no NaN), not by skipping checks here. CNNClassifier is
not listed: it takes images (see its docstring).

Settings are small so the whole file runs in seconds. SGDLogisticRegression runs without
momentum here: check_class_weight_classifiers weighs one class 1000 times more on unscaled
data (values to +-60), and with the default Nesterov momentum 0.9 those steps overshoot
(0.54 and 0.70 of its predictions are the heavy class where > 0.87 is asked); plain SGD,
scikit-learn's SGDClassifier's update, passes it.

Expected failures, each as scikit-learn marks its own estimators of the kind
(sklearn/utils/_test_common/instance_generator.py, PER_ESTIMATOR_XFAIL_CHECKS):
check_sample_weight_equivalence_on_dense_data for the stochastic fits (minibatch SGD and
bootstrap samples: a row of weight 2 is not two rows once rows are drawn; scikit-learn
xfails it for SGDClassifier, RandomForestClassifier and MLPClassifier's SGD solvers).
"""
import pytest

pytest.importorskip("sklearn", minversion="1.6")  # the tags API and expected_failed_checks

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fmnist_c import (SVC, DecisionTreeClassifier, GradientBoostingClassifier,  # noqa: E402
                      KNeighborsClassifier,
                      MLPClassifier, RandomForestClassifier, SGDLogisticRegression)
from fmnist_c.features import HOG, HOGSVC  # noqa: E402

ESTIMATORS = [
    SGDLogisticRegression(epochs=20, batch_size=16, learning_rate=0.01, momentum=0.0,
                          nesterov=False, random_state=0, n_jobs=1),
    DecisionTreeClassifier(random_state=0),
    RandomForestClassifier(n_estimators=5, random_state=0, n_jobs=1),
    MLPClassifier(hidden_layer_sizes=(8,), epochs=3, batch_size=16, random_state=0, n_jobs=1),
    GradientBoostingClassifier(n_estimators=20, min_child_samples=2, random_state=0, n_jobs=1),
    KNeighborsClassifier(n_jobs=1),
    SVC(random_state=0, n_jobs=1),
    # the checks' tables as images of one row (image_shape as reshape reads it), a cell a pixel
    HOG(pixels_per_cell=1, cells_per_block=1, image_shape=(1, -1), n_jobs=1),
    HOGSVC(hogs=({"pixels_per_cell": 1, "cells_per_block": 1, "image_shape": (1, -1)},),
           random_state=0, n_jobs=1),
    # a union of two HOGs and the pixels (the tables' values themselves, scaled)
    HOGSVC(hogs=(({"pixels_per_cell": 1, "cells_per_block": 1, "image_shape": (1, -1)},
                  {"orientations": 4, "pixels_per_cell": 1, "cells_per_block": 1,
                   "image_shape": (1, -1), "pixel_weight": 1.0}),),
           random_state=0, n_jobs=1),
]

_STOCHASTIC = ("sample_weight is not equivalent to removing/repeating samples in a "
               "stochastic fit (minibatch SGD, bootstrap samples), as for scikit-learn's own "
               "SGDClassifier, RandomForestClassifier and MLPClassifier(solver='sgd')")
_VOTE_WEIGHTS = ("a k-nearest-neighbour sample_weight weighs a training row's vote; a row "
                 "repeated instead takes two of the k places (scikit-learn's "
                 "KNeighborsClassifier has no sample_weight at all)")
_SVC_WEIGHTS = ("a weight 2 solves a different problem to tolerance than a repeated row, "
                "as in scikit-learn's SVC")
EXPECTED_FAILURES = {
    "SGDLogisticRegression": {"check_sample_weight_equivalence_on_dense_data": _STOCHASTIC},
    "RandomForestClassifier": {"check_sample_weight_equivalence_on_dense_data": _STOCHASTIC},
    "MLPClassifier": {"check_sample_weight_equivalence_on_dense_data": _STOCHASTIC},
    "KNeighborsClassifier": {"check_sample_weight_equivalence_on_dense_data": _VOTE_WEIGHTS},
    "GradientBoostingClassifier": {"check_sample_weight_equivalence_on_dense_data": (
        "min_child_samples counts rows, not their weight (as LightGBM's does), so a row of "
        "weight 2 does not count as two repeated rows")},
    # as scikit-learn's SVC: repeated rows change gamma="scale" (the variance of X) and the
    # problem's numbers of variables, so both solve to tol only, not to the same digits
    "SVC": {"check_sample_weight_equivalence_on_dense_data": _SVC_WEIGHTS},
    # HOG of the checks' tables read as one-row images: a one-pixel cell's block-normalised
    # histogram is 1 in one bin (0 where the gradient is), so the features hold only where
    # the gradient is zero; accuracy and all-tied decision values follow (tests/test_features.py
    # checks HOGSVC on images)
    "HOGSVC": {name: "HOG of one-row tables keeps too little for the classifier checks" for name in (
        "check_classifiers_classes", "check_classifiers_train",
        "check_classifiers_train(readonly_memmap=True)",
        "check_classifiers_train(readonly_memmap=True,X_dtype=float32)")},
    # with the pixels appended, the tables' values reach its SVC: the classifier checks
    # pass, and the SVC's sample weights are what they are for SVC
    "HOGSVC with pixels": {"check_sample_weight_equivalence_on_dense_data": _SVC_WEIGHTS},
}


def expected_failures(estimator):
    name = type(estimator).__name__
    if name == "HOGSVC" and any("pixel_weight" in m for c in estimator.hogs
                                for m in ((c,) if isinstance(c, dict) else c)):
        name = "HOGSVC with pixels"
    return EXPECTED_FAILURES.get(name, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failures, xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
