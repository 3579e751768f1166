"""Which model families exist: the candidates a training run evaluates, and the kinds export can load.

The one place a new family is listed (its class in `KINDS`, its candidates in `candidates`);
training and export ask this module and the `ModelFamily` interface, never a family by name.
"""

from __future__ import annotations

from typing import Any

from lakecontract.constants import DIRECTION, RETURN
from lakehouse.ml.family import ModelFamily
from lakehouse.ml.lstm import LSTMFamily, LSTMSettings
from lakehouse.ml.models import SKLEARN_MODELS, SklearnFamily
from lakehouse.ml.spark_xgb import SparkXGBFamily

KINDS: dict[str, type[ModelFamily]] = {
    SklearnFamily.kind: SklearnFamily,
    LSTMFamily.kind: LSTMFamily,
    SparkXGBFamily.kind: SparkXGBFamily,
}


OPT_IN = frozenset({"direction_gradient_boosting", "return_gradient_boosting"})
"""Evaluated only when `--models` names them: scikit-learn's small GradientBoosting (40 trees of depth 2), which
xgboost_spark supersedes (boosted trees too, deeper and more of them, trained on every row by Spark). Kept to
compare against; leaving it out of the default run keeps `make run` within its 3 minutes (−12 s)."""


def candidates(lstm: LSTMSettings, spark_workers: int = 1, *, everything: bool = False) -> list[ModelFamily]:
    """The families a training run evaluates, in registry order: the default set, or with `everything` the
    opt-in ones too (what `--models` picks from by name)."""
    boosted = [SparkXGBFamily(task, spark_workers) for task in (DIRECTION, RETURN)]
    families: list[ModelFamily] = [*SKLEARN_MODELS, LSTMFamily(lstm), *boosted]
    return families if everything else [f for f in families if f.name not in OPT_IN]


def for_artifact(io_spec: dict[str, Any]) -> ModelFamily:
    """The family of a trained artifact, named by its io.json's `kind`."""
    kind = io_spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"io.json names model kind {kind!r}, which no family provides; known: {', '.join(KINDS)}")
    return KINDS[kind].for_artifact(io_spec)
