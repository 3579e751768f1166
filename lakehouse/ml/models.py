"""The scikit-learn model families, built fresh for every fold, and their ONNX conversion.

Hyper-parameter choice that depends on data happens inside the estimator's `fit`, so it sees
the training fold only: LogisticRegressionCV and RidgeCV pick their penalty by cross-validation
on the rows they are given (time-ordered folds for the classifier). Tree ensembles use fixed,
deliberately small settings: on ~15k noisy daily rows more capacity only fits noise, and these
keep training inside `make run` to seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from sklearn.model_selection import TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from lakecontract.constants import DIRECTION, RETURN


@dataclass(frozen=True)
class ModelSpec:
    algorithm: str
    task: str
    build: Callable[[int], Any]
    """seed → an unfitted estimator."""
    kind: str = "sklearn"

    @property
    def name(self) -> str:
        return f"{self.task}_{self.algorithm}"


def _scaled(model: Any) -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("model", model)])


SKLEARN_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "logistic",
        DIRECTION,
        lambda seed: _scaled(
            LogisticRegressionCV(
                Cs=[0.001, 0.01, 0.1],
                cv=TimeSeriesSplit(3),
                scoring="neg_log_loss",
                max_iter=300,
                tol=1e-3,
                l1_ratios=(0,),  # plain L2, stated explicitly as scikit-learn 1.9 asks
                use_legacy_attributes=False,
            )
        ),
    ),
    ModelSpec(
        "random_forest",
        DIRECTION,
        lambda seed: RandomForestClassifier(
            n_estimators=60, max_depth=5, min_samples_leaf=50, max_features="sqrt", n_jobs=2, random_state=seed
        ),
    ),
    ModelSpec(
        "gradient_boosting",
        DIRECTION,
        lambda seed: GradientBoostingClassifier(
            n_estimators=40, max_depth=2, learning_rate=0.05, subsample=0.7, max_features=0.2, random_state=seed
        ),
    ),
    ModelSpec("ridge", RETURN, lambda seed: _scaled(RidgeCV(alphas=np.logspace(-1, 4, 11)))),
    ModelSpec(
        "random_forest",
        RETURN,
        lambda seed: RandomForestRegressor(
            n_estimators=40, max_depth=5, min_samples_leaf=50, max_features=0.2, n_jobs=2, random_state=seed
        ),
    ),
    ModelSpec(
        "gradient_boosting",
        RETURN,
        lambda seed: GradientBoostingRegressor(
            n_estimators=40, max_depth=2, learning_rate=0.05, subsample=0.7, max_features=0.2, random_state=seed
        ),
    ),
)


def predict(estimator: Any, task: str, x: np.ndarray) -> np.ndarray:
    """prob_up for direction models, the next-bar return for return models."""
    if task == DIRECTION:
        return estimator.predict_proba(x)[:, 1]
    return estimator.predict(x)


def params_of(estimator: Any) -> dict[str, str]:
    """The estimator's parameters as strings (nested estimators flattened), for the registry."""
    return {k: repr(v) for k, v in estimator.get_params(deep=True).items() if not hasattr(v, "get_params")}


def to_onnx_bytes(estimator: Any, task: str, n_features: int) -> tuple[bytes, dict[str, Any]]:
    """ONNX bytes (float32 input `x` of shape (n, n_features)) and how to read the output."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(estimator): {"zipmap": False}} if task == DIRECTION else None
    model = to_onnx(
        estimator, initial_types=[("x", FloatTensorType([None, n_features]))], target_opset=17, options=options
    )
    outputs = [o.name for o in model.graph.output]
    if task == DIRECTION:
        io = {"input": "x", "dtype": "float32", "shape": [None, n_features], "output": outputs[1], "column": 1}
    else:
        io = {"input": "x", "dtype": "float32", "shape": [None, n_features], "output": outputs[0], "column": 0}
    return model.SerializeToString(), io
