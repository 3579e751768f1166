"""Boosted trees trained on Spark itself (xgboost.spark): the family whose training data never reaches the driver.

Each fold's training rows are a filter on `ts` of the gold DataFrame (`TrainingData.rows`, every
usable warm row, not the driver's bounded frame) up to the fold's training end, so the gap is the
same as for every other family; XGBoost's workers read their partitions in a barrier stage and only
the fitted booster comes back. Predictions and metrics are made on the driver's test rows, like
every family's, so its numbers stand beside the others on the same rows and baselines.

Settings are deliberately small (100 trees of depth 3, row and column subsampling, a minimum
hessian per leaf): with ~20 k noisy daily rows more capacity fits noise. Workers: one per Spark task
slot is the most a barrier stage can get (more would wait ~10 min and fail), and on 2 local cores one
worker is faster than two (the rendezvous costs more than it saves on small data); raise
`--spark-workers` on a cluster. Glue auto-scaling must stay off for barrier stages.

The artifact is the booster's JSON (`model.json`); its ONNX graph comes from onnxmltools' XGBoost
converter (opset 15: the converter's newest), checked against the booster like every family's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from lakecontract.constants import DIRECTION, RETURN
from lakehouse.ml.dataset import MODEL_FEATURES, matrix
from lakehouse.ml.family import ModelFamily

if TYPE_CHECKING:
    import xgboost
    from pyspark.sql import DataFrame as SparkFrame

    from lakehouse.ml.dataset import TrainingData
    from lakehouse.ml.splits import Fold

PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "max_depth": 3,
    "learning_rate": 0.05,
    "subsample": 0.7,
    "colsample_bytree": 0.5,
    "min_child_weight": 50,
    "reg_lambda": 1.0,
}
ONNX_OPSET = 15
LABEL = {DIRECTION: "label_up", RETURN: "label_ret_1"}


@dataclass
class FittedBooster:
    booster: xgboost.Booster
    params: dict[str, str] = field(default_factory=dict)
    workers: int = 1


@dataclass(frozen=True)
class SparkXGBFamily(ModelFamily):
    """`SparkXGBClassifier` (direction: prob_up) or `SparkXGBRegressor` (return) on the pooled features."""

    task: str
    workers: int = 1
    algorithm: str = "xgboost_spark"
    kind: ClassVar[str] = "xgboost"
    native_file: ClassVar[str] = "model.json"
    fits_on_cluster: ClassVar[bool] = True

    @property
    def features(self) -> tuple[str, ...]:
        return MODEL_FEATURES

    @classmethod
    def for_artifact(cls, io_spec: dict[str, Any]) -> SparkXGBFamily:
        return cls(io_spec["task"], algorithm=io_spec["algorithm"])

    def fit(self, train: pd.DataFrame, seed: int, gap: int) -> FittedBooster:
        """Fit on exactly these rows (made a Spark DataFrame): what a fold without `data.rows` uses."""
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError(f"{self.name} fits on Spark: start a session first")
        columns = [*self.features, LABEL[self.task]]
        return self._fit(spark.createDataFrame(train[columns].astype("float64")), seed)

    def fit_fold(self, data: TrainingData, fold: Fold, seed: int, gap: int) -> FittedBooster:
        """Every usable row up to the fold's training end (the gap lies between it and the test block),
        read by the executors; without `data.rows` (a frame built by hand), the driver's rows."""
        if data.rows is None:
            return super().fit_fold(data, fold, seed, gap)
        from pyspark.sql import functions as F

        label = F.col(LABEL[self.task])
        train = data.rows.where(label.isNotNull() & (F.col("ts") <= F.lit(fold.train_end.to_pydatetime())))
        return self._fit(train, seed)

    def _fit(self, train: SparkFrame, seed: int) -> FittedBooster:
        from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor

        logging.getLogger("XGBoost-PySpark").setLevel(logging.WARNING)
        slots = train.sparkSession.sparkContext.defaultParallelism
        workers = max(1, min(self.workers, slots))
        inputs = [f"CAST(`{c}` AS FLOAT) AS `{c}`" for c in self.features]  # one JVM call, not one per column
        rows = train.selectExpr(*inputs, f"CAST(`{LABEL[self.task]}` AS DOUBLE) AS label")
        estimator = SparkXGBClassifier if self.task == DIRECTION else SparkXGBRegressor
        model = estimator(
            features_col=list(self.features),
            label_col="label",
            num_workers=workers,
            random_state=seed,
            **PARAMS,
        ).fit(rows)
        params = {k: repr(v) for k, v in PARAMS.items()} | {"num_workers": str(workers), "random_state": str(seed)}
        return FittedBooster(model.get_booster(), params, workers)

    def predict(self, model: FittedBooster, x: np.ndarray) -> np.ndarray:
        """prob_up (binary:logistic) or the next-bar return, from the booster on the driver."""
        return np.asarray(model.booster.inplace_predict(np.asarray(x, dtype=np.float32)), dtype=np.float64)

    def predict_rows(self, model: FittedBooster, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        return self.predict(model, matrix(frame.iloc[rows]))

    def to_onnx(self, model: FittedBooster) -> tuple[bytes, dict[str, Any]]:
        """float32 input `x` of shape (n, features); prob_up is column 1 of `probabilities`."""
        import xgboost
        from onnxmltools import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        booster = xgboost.Booster(model_file=bytearray(model.booster.save_raw("json")))
        booster.feature_names = None  # the converter wants positional features f0, f1, …
        n_features = len(self.features)
        graph = convert_xgboost(
            booster, initial_types=[("x", FloatTensorType([None, n_features]))], target_opset=ONNX_OPSET
        )
        outputs = [o.name for o in graph.graph.output]
        output, column = (outputs[1], 1) if self.task == DIRECTION else (outputs[0], 0)
        io_spec = {"input": "x", "dtype": "float32", "shape": [None, n_features], "output": output, "column": column}
        io_spec.update(features=list(self.features), window=None)
        return graph.SerializeToString(), io_spec

    def params(self, model: FittedBooster) -> dict[str, str]:
        return dict(model.params)

    def dump(self, model: FittedBooster) -> bytes:
        return bytes(model.booster.save_raw("json"))

    def load(self, data: bytes) -> FittedBooster:
        import xgboost

        return FittedBooster(xgboost.Booster(model_file=bytearray(data)))

    def fit_info(self, model: FittedBooster) -> dict[str, Any]:
        return {"spark_workers": model.workers, "trees": model.booster.num_boosted_rounds()}
