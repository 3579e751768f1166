"""The scikit-learn model families, built fresh for every fold, and their ONNX conversion.

Hyper-parameter choice that depends on data happens inside the estimator's `fit`, so it sees
the training fold only: LogisticRegressionCV and RidgeCV pick their penalty by cross-validation
on the rows they are given (time-ordered folds for the classifier). Tree ensembles use fixed,
deliberately small settings: on ~15k noisy daily rows more capacity only fits noise, and these
keep training inside `make run` to seconds.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
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
from lakehouse.ml.dataset import MODEL_FEATURES, matrix
from lakehouse.ml.family import ModelFamily


@dataclass(frozen=True)
class SklearnFamily(ModelFamily):
    """A scikit-learn estimator on one bar's pooled features (MODEL_FEATURES); the native artifact is
    the fitted estimator itself, joblib-dumped, so `joblib.load(...).predict_proba` works on it."""

    algorithm: str
    task: str
    build: Callable[[int], Any] | None = None
    """seed → an unfitted estimator; None for a family rebuilt from an artifact (it predicts, not refits)."""
    kind: ClassVar[str] = "sklearn"
    native_file: ClassVar[str] = "model.joblib"

    @property
    def features(self) -> tuple[str, ...]:
        return MODEL_FEATURES

    @classmethod
    def for_artifact(cls, io_spec: dict[str, Any]) -> SklearnFamily:
        return cls(io_spec["algorithm"], io_spec["task"])

    def fit(self, train: pd.DataFrame, seed: int, gap: int) -> Any:
        """`gap` is unused: the estimators hold no validation block (LogisticRegressionCV's own
        time-ordered folds are inside the training rows)."""
        if self.build is None:
            raise TypeError(f"{self.name} was rebuilt from an artifact and cannot be fitted again")
        target = train["label_up"].astype(int) if self.task == DIRECTION else train["label_ret_1"].astype(float)
        return self.build(seed).fit(matrix(train), target.to_numpy())

    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """prob_up for direction models, the next-bar return for return models."""
        if self.task == DIRECTION:
            return model.predict_proba(x)[:, 1]
        return model.predict(x)

    def predict_rows(self, model: Any, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        return self.predict(model, matrix(frame.iloc[rows]))

    def params(self, model: Any) -> dict[str, str]:
        """The estimator's parameters as strings (nested estimators flattened)."""
        return {k: repr(v) for k, v in model.get_params(deep=True).items() if not hasattr(v, "get_params")}

    def to_onnx(self, model: Any) -> tuple[bytes, dict[str, Any]]:
        """float32 input `x` of shape (n, features); a classifier's prob_up is output column 1."""
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType

        n_features = len(self.features)
        options = {id(model): {"zipmap": False}} if self.task == DIRECTION else None
        graph = to_onnx(
            model, initial_types=[("x", FloatTensorType([None, n_features]))], target_opset=17, options=options
        )
        outputs = [o.name for o in graph.graph.output]
        output, column = (outputs[1], 1) if self.task == DIRECTION else (outputs[0], 0)
        io_spec = {"input": "x", "dtype": "float32", "shape": [None, n_features], "output": output, "column": column}
        io_spec.update(features=list(self.features), window=None)
        return graph.SerializeToString(), io_spec

    def dump(self, model: Any) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        return buffer.getvalue()

    def load(self, data: bytes) -> Any:
        import joblib

        return joblib.load(io.BytesIO(data))


def _scaled(model: Any) -> Pipeline:
    return Pipeline([("scale", StandardScaler()), ("model", model)])


SKLEARN_MODELS: tuple[SklearnFamily, ...] = (
    SklearnFamily(
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
    SklearnFamily(
        "random_forest",
        DIRECTION,
        lambda seed: RandomForestClassifier(
            n_estimators=60, max_depth=5, min_samples_leaf=50, max_features="sqrt", n_jobs=2, random_state=seed
        ),
    ),
    SklearnFamily(
        "gradient_boosting",
        DIRECTION,
        lambda seed: GradientBoostingClassifier(
            n_estimators=40, max_depth=2, learning_rate=0.05, subsample=0.7, max_features=0.2, random_state=seed
        ),
    ),
    SklearnFamily("ridge", RETURN, lambda seed: _scaled(RidgeCV(alphas=np.logspace(-1, 4, 11)))),
    SklearnFamily(
        "random_forest",
        RETURN,
        lambda seed: RandomForestRegressor(
            n_estimators=40, max_depth=5, min_samples_leaf=50, max_features=0.2, n_jobs=2, random_state=seed
        ),
    ),
    SklearnFamily(
        "gradient_boosting",
        RETURN,
        lambda seed: GradientBoostingRegressor(
            n_estimators=40, max_depth=2, learning_rate=0.05, subsample=0.7, max_features=0.2, random_state=seed
        ),
    ),
)
