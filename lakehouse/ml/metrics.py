"""Every metric is computed next to its naive baseline on the same rows.

Direction (label_up): accuracy with a 95% Wilson interval, ROC-AUC, Brier, log loss and Brier
skill versus the base rate of the TRAINING fold (the rate a forecaster could have known).
Baselines: always-up accuracy, base-rate Brier and log loss, AUC 0.5.

Return (label_ret_1): errors on the next close that the predicted return implies —
MAE, RMSE, MAPE — and MASE. Hyndman's MASE divides by the in-sample mean absolute one-step
change; on price levels that trend for decades (an index from 300 to 2,900) the training mean
is far below today's changes and every forecaster scores ≈ 2. So we scale in relative terms,
per symbol: each error is taken as a fraction of the current close and divided by that
symbol's mean absolute one-bar return in the training fold. Persistence (close[t+1] = close[t],
a predicted return of 0) gets the same MASE on the same rows (≈ 1 in a calm year): a model
beats persistence when its MASE is lower.
Plus R² on returns and directional accuracy.

Cross-section (return models, dates with ≥ 10 symbols): the daily rank IC — Spearman's correlation of
predicted and realised next returns across symbols — its mean, ICIR (mean / std of the daily values)
and t = ICIR·√days. The baseline is 0: persistence predicts 0 for every symbol, which ranks nothing.
What the number means: qlib's Alpha158 with LightGBM reaches IC ≈ 0.045 on CSI300; on data with no
signal the honest answer is ≈ 0, and with fewer than 10 symbols a date says too little to count.

Backtest: long/flat on the next bar, 5 bp per position change, equal-weighted across symbols,
versus buy-and-hold over the same bars, annualised by the series' own calendar (lakehouse/calendars.py:
365 days for crypto, 252 sessions for equities).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score

from lakehouse.calendars import Calendar, annualised_sharpe

EPS = 1e-15
MIN_CROSS_SECTION = 10


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (centre - half, centre + half)


def direction_metrics(y: np.ndarray, prob_up: np.ndarray, train_base_rate: float) -> tuple[dict, dict]:
    """(model metrics, baseline metrics) for next-bar direction on one test block."""
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(prob_up, dtype=float), EPS, 1 - EPS)
    correct = int(((p > 0.5).astype(int) == y).sum())
    lo, hi = wilson_interval(correct, len(y))
    base = np.full(len(y), np.clip(train_base_rate, EPS, 1 - EPS))
    brier, brier_base = float(np.mean((p - y) ** 2)), float(np.mean((base - y) ** 2))
    both_classes = len(np.unique(y)) == 2
    model = {
        "accuracy": correct / len(y),
        "accuracy_ci_low": lo,
        "accuracy_ci_high": hi,
        "roc_auc": float(roc_auc_score(y, p)) if both_classes else math.nan,
        "brier": brier,
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier_skill": 1 - brier / brier_base if brier_base > 0 else math.nan,
    }
    up = int(y.sum())
    up_lo, up_hi = wilson_interval(up, len(y))
    baseline = {
        "accuracy": up / len(y),  # always-up
        "accuracy_ci_low": up_lo,
        "accuracy_ci_high": up_hi,
        "roc_auc": 0.5,
        "brier": brier_base,  # base rate of the training fold
        "log_loss": float(log_loss(y, base, labels=[0, 1])),
        "brier_skill": 0.0,
        "base_rate": float(train_base_rate),
    }
    return model, baseline


def symbol_scales(train: pd.DataFrame) -> dict[str, float]:
    """Mean absolute one-bar return per symbol in the training fold (MASE denominators)."""
    return train["label_ret_1"].abs().groupby(train["symbol"]).mean().to_dict()


def return_metrics(test: pd.DataFrame, pred_ret: np.ndarray, scales: dict[str, float]) -> tuple[dict, dict]:
    """(model metrics, persistence metrics) for next-bar return / close on one test block."""
    close = test["close"].to_numpy(float)
    actual_ret = test["label_ret_1"].to_numpy(float)
    pred_ret = np.asarray(pred_ret, dtype=float)
    actual_close = close * (1 + actual_ret)
    scale = test["symbol"].map(scales).to_numpy(float)

    def scores(ret: np.ndarray) -> dict:
        err = close * (1 + ret) - actual_close
        sse = float(np.sum((actual_ret - ret) ** 2))
        sst = float(np.sum((actual_ret - actual_ret.mean()) ** 2))
        return {
            "mae": float(np.mean(np.abs(err))),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "mape": float(np.mean(np.abs(err) / np.abs(actual_close))),
            "mase": float(np.mean(np.abs(err) / close / scale)),
            "r2_return": 1 - sse / sst if sst > 0 else math.nan,
            "directional_accuracy": float(np.mean((ret > 0) == (actual_ret > 0))),
        }

    return scores(pred_ret), scores(np.zeros_like(pred_ret))


def rank_ic(test: pd.DataFrame, pred_ret: np.ndarray, min_symbols: int = MIN_CROSS_SECTION) -> tuple[dict, dict]:
    """(model, baseline) cross-sectional metrics: rank_ic (mean daily Spearman), rank_ic_ir, rank_ic_t,
    rank_ic_days. NaN when no date has `min_symbols` symbols; a date whose predictions or outcomes
    are all tied has no correlation and is left out. Ranks are averages over ties, as Spearman's are."""
    actual = test["label_ret_1"].to_numpy(float)
    frame = pd.DataFrame({"ts": test["ts"].to_numpy(), "pred": np.asarray(pred_ret, float), "actual": actual})
    frame = frame[frame.groupby("ts")["pred"].transform("size") >= min_symbols]
    centred = frame.groupby("ts")[["pred", "actual"]].rank()
    centred = centred - centred.groupby(frame["ts"]).transform("mean")
    products = {"xy": centred["pred"] * centred["actual"], "xx": centred["pred"] ** 2, "yy": centred["actual"] ** 2}
    sums = pd.DataFrame(products).groupby(frame["ts"]).sum()
    sums = sums[(sums["xx"] > 0) & (sums["yy"] > 0)]
    daily = (sums["xy"] / np.sqrt(sums["xx"] * sums["yy"])).to_numpy()
    days = len(daily)
    mean = float(daily.mean()) if days else math.nan
    std = float(daily.std(ddof=1)) if days > 1 else math.nan
    ir = mean / std if std > 0 else math.nan
    model = {"rank_ic": mean, "rank_ic_ir": ir, "rank_ic_t": ir * math.sqrt(days), "rank_ic_days": float(days)}
    baseline = {"rank_ic": 0.0, "rank_ic_ir": 0.0, "rank_ic_t": 0.0, "rank_ic_days": float(days)}
    if not days:
        baseline.update(rank_ic=math.nan, rank_ic_ir=math.nan, rank_ic_t=math.nan)
    return model, baseline


def portfolio_returns(test: pd.DataFrame, long: np.ndarray, cost_bp: float = 5.0) -> pd.DataFrame:
    """Per-timestamp mean over symbols of: strategy return, buy-and-hold return, position changes.

    Each symbol: position p_t ∈ {0, 1} decided at t's close earns p_t × ret(t→t+1) and pays
    cost_bp on every change of position (the first bar counts as a change from flat); buy-and-hold
    pays it once."""
    frame = test[["symbol", "ts", "label_ret_1"]].copy()
    frame["pos"] = np.asarray(long, dtype=float)
    frame = frame.sort_values(["symbol", "ts"])
    cost = cost_bp / 10_000
    frame["turn"] = frame.groupby("symbol")["pos"].diff().abs().fillna(frame["pos"])
    frame["strategy"] = frame["pos"] * frame["label_ret_1"] - cost * frame["turn"]
    first = frame.groupby("symbol").cumcount() == 0
    frame["buy_and_hold"] = frame["label_ret_1"] - cost * first
    return frame.groupby("ts")[["strategy", "buy_and_hold", "turn"]].mean().sort_index()


def backtest(test: pd.DataFrame, long: np.ndarray, calendar: Calendar, cost_bp: float = 5.0) -> dict[str, dict]:
    """Long/flat strategy versus buy-and-hold on the test rows: {'strategy': …, 'buy_and_hold': …},
    annualised by `calendar`'s bars a year."""
    per_ts = portfolio_returns(test, long, cost_bp)
    years = len(per_ts) / calendar.bars_per_year
    return {
        "strategy": _performance(per_ts["strategy"].to_numpy(), per_ts["turn"].sum(), years, calendar),
        "buy_and_hold": _performance(per_ts["buy_and_hold"].to_numpy(), 1.0, years, calendar),
    }


def _performance(returns: np.ndarray, position_changes: float, years: float, calendar: Calendar) -> dict:
    equity = np.cumprod(1 + returns)
    peak = np.maximum.accumulate(equity)
    return {
        "total_return": float(equity[-1] - 1),
        "cagr": float(equity[-1] ** (1 / years) - 1) if years > 0 and equity[-1] > 0 else math.nan,
        "sharpe": annualised_sharpe(returns, calendar),
        "max_drawdown": float((equity / peak - 1).min()),
        "turnover_per_year": float(position_changes / years) if years > 0 else math.nan,
    }
