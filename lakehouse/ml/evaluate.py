"""Walk-forward evaluation of one model family: fit inside each training fold, score its test block.

The family's `fit` is the only place a model meets data, and it is given the training rows alone
(the frame's other rows are not passed in), which is what the leakage test checks: replacing every
feature and label after a fold's training end by noise leaves the fitted model unchanged (it
predicts the same on the original test rows). Which family it is does not matter here: everything
goes through the `ModelFamily` interface (lakehouse/ml/family.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lakecontract.constants import DIRECTION
from lakehouse.calendars import Calendar
from lakehouse.ml import metrics
from lakehouse.ml.dataset import TrainingData
from lakehouse.ml.family import ModelFamily
from lakehouse.ml.splits import Fold

# The number a model is promoted on (holdout fold), and which way is better.
KEY_METRIC = {"direction": ("brier", "lower"), "return": ("mase", "lower")}


@dataclass
class FoldResult:
    fold: int
    train_rows: int
    test_rows: int
    train_end: str
    test_start: str
    test_end: str
    metrics: dict[str, float]
    baselines: dict[str, float]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelResult:
    family: ModelFamily
    folds: list[FoldResult]
    model: Any  # fitted on the last (holdout) fold's training rows: the model that gets exported
    holdout_rows: pd.DataFrame  # the holdout test rows with the model's prediction in column "pred"
    seconds: float

    @property
    def holdout(self) -> FoldResult:
        return self.folds[-1]

    def mean(self, which: str) -> dict[str, float]:
        keys = getattr(self.folds[0], which).keys()
        values = {k: np.array([getattr(f, which)[k] for f in self.folds], dtype=float) for k in keys}
        # NaN where no fold has a number (the rank IC of a universe under 10 symbols), without numpy's warning
        return {k: float(np.mean(v[~np.isnan(v)])) if (~np.isnan(v)).any() else math.nan for k, v in values.items()}

    @property
    def key(self) -> tuple[str, float, float, bool]:
        """(metric, holdout value, baseline holdout value, beats baseline)."""
        name, better = KEY_METRIC[self.family.task]
        value, base = self.holdout.metrics[name], self.holdout.baselines[name]
        beats = (value < base) if better == "lower" else (value > base)
        return name, value, base, bool(beats and not math.isnan(value))


def score(
    task: str, train: pd.DataFrame, test: pd.DataFrame, pred: np.ndarray, calendar: Calendar
) -> tuple[dict, dict]:
    """(model metrics, baseline metrics) of predictions `pred` on the test rows, backtest included."""
    if task == DIRECTION:
        model, base = metrics.direction_metrics(
            test["label_up"].astype(int).to_numpy(), pred, float(train["label_up"].astype(float).mean())
        )
        long = pred > 0.5
    else:
        model, base = metrics.return_metrics(test, pred, metrics.symbol_scales(train))
        ic, ic_base = metrics.rank_ic(test, pred)
        model.update(ic)
        base.update(ic_base)
        long = pred > 0
    bt = metrics.backtest(test, long, calendar)
    model.update({f"bt_{k}": v for k, v in bt["strategy"].items()})
    base.update({f"bt_{k}": v for k, v in bt["buy_and_hold"].items()})
    return model, base


def evaluate(
    family: ModelFamily,
    data: TrainingData,
    folds: list[Fold],
    seed: int,
    gap: int = 5,
    log: Callable[[str], None] = print,
) -> ModelResult:
    """`family` fitted on each fold's training rows and scored on its test block of `data.labeled`
    (every family on the same test rows and baselines, wherever it fits)."""
    started = time.monotonic()
    results: list[FoldResult] = []
    model: Any = None
    labeled, calendar = data.labeled, data.calendar
    for fold in folds:
        train = labeled.iloc[fold.train]
        model = family.fit_fold(data, fold, seed, gap)
        test = labeled.iloc[fold.test]
        pred = family.predict_rows(model, labeled, fold.test)
        ok = ~np.isnan(pred)
        m, b = score(family.task, train, test[ok], pred[ok], calendar)
        results.append(
            FoldResult(
                fold.number,
                len(train),
                int(ok.sum()),
                f"{fold.train_end:%Y-%m-%d %H:%M}",
                f"{fold.test_start:%Y-%m-%d %H:%M}",
                f"{fold.test_end:%Y-%m-%d %H:%M}",
                m,
                b,
                family.fit_info(model),
            )
        )
        key = KEY_METRIC[family.task][0]
        log(f"[train] {family.name:<26} fold {fold.number}: {key} {m[key]:.5f} vs baseline {b[key]:.5f}")
    holdout = labeled.iloc[folds[-1].test].copy()
    holdout["pred"] = pred
    return ModelResult(family, results, model, holdout, time.monotonic() - started)
