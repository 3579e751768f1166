"""What every model family provides, so evaluation, training and export never ask which family it is.

A `ModelFamily` instance is one candidate model: a task (direction or return), an algorithm name,
and how to fit it. Evaluation fits it inside each walk-forward fold and predicts the fold's test
rows; training writes its native artifact, its ONNX graph and its registry row; export loads the
native artifact back, checks the ONNX graph against it and scores rows with it. Each of those
talks to this interface only — the fitted model itself is opaque to them (`Any`): an estimator,
a Lightning module wrapper, or whatever the next family fits (boosted trees on Spark, say).

Adding a family: subclass `ModelFamily`, give it a `kind` (written to the artifact's io.json, which
is how export finds the family of a published artifact), and list it in `lakehouse/ml/catalogue.py`.
Nothing in evaluate, train or export changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lakehouse.ml.dataset import TrainingData
    from lakehouse.ml.splits import Fold


class ModelFamily(ABC):
    """One candidate model: fit on a training fold, predict, export to ONNX, describe itself."""

    kind: ClassVar[str]
    """Names the family in the artifact's io.json; `catalogue.for_artifact` maps it back."""
    native_file: ClassVar[str]
    """File name of the native artifact beside model.onnx (model.joblib, model.pt, …)."""
    task: str
    algorithm: str

    @property
    def name(self) -> str:
        """`<task>_<algorithm>`: the registry's model id suffix and the `--models` selector."""
        return f"{self.task}_{self.algorithm}"

    @property
    @abstractmethod
    def features(self) -> tuple[str, ...]:
        """The gold feature columns the model reads (the registry's `features`)."""

    @classmethod
    @abstractmethod
    def for_artifact(cls, io_spec: dict[str, Any]) -> ModelFamily:
        """The family of a published artifact, from its io.json: enough to load, predict and export
        (what it was fitted with comes back with `load`), not necessarily to fit again."""

    fits_on_cluster: ClassVar[bool] = False
    """True for a family whose fit runs on Spark's executors (the driver only waits): training may
    evaluate it while the driver fits the others."""

    @abstractmethod
    def fit(self, train: pd.DataFrame, seed: int, gap: int) -> Any:
        """Fit on the rows of one training fold, and on nothing else: `train` is all the model may
        see. `gap` is the number of timestamps to leave between any internal fit and validation
        block (early stopping), as between a fold's training rows and its test block."""

    def fit_fold(self, data: TrainingData, fold: Fold, seed: int, gap: int) -> Any:
        """Fit on `fold`'s training rows of `data`. Driver-side families take the bounded frame's rows;
        a family that fits on the cluster overrides this to read `data.rows` (every row, not
        collected) up to `fold.train_end`."""
        return self.fit(data.labeled.iloc[fold.train], seed, gap)

    @abstractmethod
    def predict(self, model: Any, x: np.ndarray) -> np.ndarray:
        """float64 predictions (prob_up, or the next-bar return) on inputs shaped as the ONNX graph
        takes them (io.json's `shape`): what export compares the graph against."""

    @abstractmethod
    def predict_rows(self, model: Any, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        """Predictions for `frame`'s rows at positions `rows`, NaN where the model has no input for a
        row (a sequence model reads each row's preceding bars from `frame`)."""

    @abstractmethod
    def to_onnx(self, model: Any) -> tuple[bytes, dict[str, Any]]:
        """The ONNX graph and how to call it: {input, dtype, shape, output, column, features, window}
        (lakecontract.artifacts reads it; `window` is None for a model of one bar)."""

    @abstractmethod
    def params(self, model: Any) -> dict[str, str]:
        """The fitted model's hyper-parameters as strings, for the registry."""

    @abstractmethod
    def dump(self, model: Any) -> bytes:
        """The native artifact (`native_file`)."""

    @abstractmethod
    def load(self, data: bytes) -> Any:
        """The fitted model back from `dump`'s bytes."""

    def fit_info(self, model: Any) -> dict[str, Any]:
        """Facts of one fold's fit worth keeping in the registry's fold metrics (epochs, device, …)."""
        return {}
