"""Walk-forward evaluation of one model family: fit inside each training fold, score its test block.

`fit_fold` is the only place a model meets data, and it is given the training rows alone (the
frame's other rows are not passed in), which is what the leakage test checks: replacing every
feature and label after a fold's training end by noise leaves the fitted model unchanged (it
predicts the same on the original test rows).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lakehouse.ml import metrics
from lakehouse.ml.dataset import matrix
from lakehouse.ml.lstm import FittedLSTM, LSTMSettings, Windows, fit_lstm, make_windows
from lakehouse.ml.models import DIRECTION, ModelSpec, predict
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
    spec: ModelSpec
    folds: list[FoldResult]
    model: Any  # fitted on the last (holdout) fold's training rows: the model that gets exported
    holdout_rows: pd.DataFrame  # the holdout test rows with the model's prediction in column "pred"
    seconds: float

    @property
    def holdout(self) -> FoldResult:
        return self.folds[-1]

    def mean(self, which: str) -> dict[str, float]:
        keys = getattr(self.folds[0], which).keys()
        return {k: float(np.nanmean([getattr(f, which)[k] for f in self.folds])) for k in keys}

    @property
    def key(self) -> tuple[str, float, float, bool]:
        """(metric, holdout value, baseline holdout value, beats baseline)."""
        name, better = KEY_METRIC[self.spec.task]
        value, base = self.holdout.metrics[name], self.holdout.baselines[name]
        beats = (value < base) if better == "lower" else (value > base)
        return name, value, base, bool(beats and not math.isnan(value))


def lstm_spec() -> ModelSpec:
    return ModelSpec("lstm", "return", lambda seed: None, kind="lstm")


def fit_fold(
    spec: ModelSpec,
    train: pd.DataFrame,
    seed: int,
    lstm: LSTMSettings | None = None,
    windows: Windows | None = None,
    gap: int = 5,
) -> Any:
    """Fit one model on one training fold. For the LSTM, `windows` are the windows whose last bar
    is a training row (their labels are training labels), and `train` gives their timestamps."""
    if spec.kind == "lstm":
        assert lstm is not None and windows is not None
        return fit_lstm(windows, train["ts"].to_numpy()[windows.end], lstm, seed, gap)
    target = train["label_up"].astype(int) if spec.task == DIRECTION else train["label_ret_1"].astype(float)
    return spec.build(seed).fit(matrix(train), target.to_numpy())


def predict_rows(spec: ModelSpec, model: Any, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """Predictions for frame rows `rows` (the LSTM reads each row's preceding window from `frame`)."""
    if spec.kind == "lstm":
        fitted: FittedLSTM = model
        windows = make_windows(frame, fitted.settings.features, fitted.settings.window)
        position = pd.Series(np.arange(len(windows.end)), index=windows.end)
        have = np.isin(rows, windows.end)
        out = np.full(len(rows), np.nan)
        out[have] = fitted.predict(windows.x[position.loc[rows[have]].to_numpy()])
        return out
    return predict(model, spec.task, matrix(frame.iloc[rows]))


def score(
    spec: ModelSpec, train: pd.DataFrame, test: pd.DataFrame, pred: np.ndarray, interval: str
) -> tuple[dict, dict]:
    if spec.task == DIRECTION:
        model, base = metrics.direction_metrics(
            test["label_up"].astype(int).to_numpy(), pred, float(train["label_up"].astype(float).mean())
        )
        long = pred > 0.5
    else:
        model, base = metrics.return_metrics(test, pred, metrics.symbol_scales(train))
        long = pred > 0
    bt = metrics.backtest(test, long, interval)
    model.update({f"bt_{k}": v for k, v in bt["strategy"].items()})
    base.update({f"bt_{k}": v for k, v in bt["buy_and_hold"].items()})
    return model, base


def evaluate(
    spec: ModelSpec,
    labeled: pd.DataFrame,
    folds: list[Fold],
    interval: str,
    seed: int,
    lstm: LSTMSettings | None = None,
    gap: int = 5,
    log=print,
) -> ModelResult:
    started = time.monotonic()
    results: list[FoldResult] = []
    model: Any = None
    all_windows = make_windows(labeled, lstm.features, lstm.window) if spec.kind == "lstm" and lstm else None
    for fold in folds:
        train = labeled.iloc[fold.train]
        windows = None
        if all_windows is not None:
            keep = np.isin(all_windows.end, fold.train)
            # Re-index the window ends to positions inside `train` (fold.train is sorted).
            ends = np.searchsorted(fold.train, all_windows.end[keep])
            windows = Windows(all_windows.x[keep], all_windows.y[keep], ends)
        model = fit_fold(spec, train, seed, lstm, windows, gap)
        test = labeled.iloc[fold.test]
        pred = predict_rows(spec, model, labeled, fold.test)
        ok = ~np.isnan(pred)
        m, b = score(spec, train, test[ok], pred[ok], interval)
        extra = dict(getattr(model, "info", {}) or {})
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
                extra,
            )
        )
        key = KEY_METRIC[spec.task][0]
        log(f"[train] {spec.name:<26} fold {fold.number}: {key} {m[key]:.5f} vs baseline {b[key]:.5f}")
    holdout = labeled.iloc[folds[-1].test].copy()
    holdout["pred"] = pred
    return ModelResult(spec, results, model, holdout, time.monotonic() - started)
