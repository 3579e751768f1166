"""Training building blocks without Spark: splits, LSTM windows, metrics, promotion."""

import math

import numpy as np
import pandas as pd
import pytest

from lakehouse.ml import metrics
from lakehouse.ml.export import beats_baseline, choose, scored_rows, signal
from lakehouse.ml.lstm import make_windows
from lakehouse.ml.splits import validation_split, walk_forward


def _frame(symbols=("A", "B"), bars=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for s in symbols:
        ts = pd.date_range("2020-01-01", periods=bars, freq="D", tz="UTC")
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
        part = pd.DataFrame({"symbol": s, "ts": ts, "close": close, "f1": rng.normal(size=bars), "f2": np.arange(bars)})
        part["label_ret_1"] = part["close"].shift(-1) / part["close"] - 1
        part["label_up"] = (part["label_ret_1"] > 0).astype(float).where(part["label_ret_1"].notna())
        parts.append(part)
    return pd.concat(parts).sample(frac=1, random_state=seed).reset_index(drop=True)  # any row order


def test_walk_forward_folds_expand_and_keep_the_gap():
    frame = _frame()
    folds = walk_forward(frame["ts"], n_folds=3, test_bars=30, gap=5)
    times = np.sort(frame["ts"].unique())
    assert [f.number for f in folds] == [1, 2, 3]
    for earlier, later in zip(folds, folds[1:], strict=False):
        assert set(earlier.train) < set(later.train)  # expanding
        assert earlier.test_end < later.test_start
    for f in folds:
        train_ts, test_ts = frame["ts"].iloc[f.train], frame["ts"].iloc[f.test]
        assert train_ts.max() == f.train_end < test_ts.min() == f.test_start
        between = ((times > f.train_end) & (times < f.test_start)).sum()
        assert between == 5  # exactly `gap` timestamps separate training from test
        assert test_ts.nunique() == 30 and len(f.test) == 60  # two symbols per timestamp
    assert folds[-1].test_end == frame["ts"].max()


def test_walk_forward_refuses_a_gap_shorter_than_the_horizon_and_too_little_history():
    frame = _frame(bars=100)
    with pytest.raises(ValueError, match="at least the label horizon"):
        walk_forward(frame["ts"], 2, 10, gap=0)
    with pytest.raises(ValueError, match="too few"):
        walk_forward(frame["ts"], 5, 30, gap=5)


def test_validation_block_is_the_newest_part_of_the_training_fold_after_a_gap():
    ts = pd.Series(pd.date_range("2020-01-01", periods=100, freq="D"))
    fit, val = validation_split(ts, fraction=0.2, gap=3)
    assert len(val) == 20 and ts.iloc[val].min() == ts.iloc[80]
    assert ts.iloc[fit].max() == ts.iloc[76]  # 3 timestamps (77, 78, 79) left out between
    assert set(fit).isdisjoint(val)


def test_lstm_window_ending_at_t_targets_exactly_bar_t_plus_1():
    frame = _frame(bars=60)
    windows = make_windows(frame, ("f1", "f2"), window=10)
    assert windows.x.shape == (2 * 51, 10, 2)
    for k in range(len(windows.end)):
        row = frame.iloc[windows.end[k]]
        same = frame[frame["symbol"] == row["symbol"]].sort_values("ts").reset_index(drop=True)
        i = int(same.index[same["ts"] == row["ts"]][0])
        # The window is bars t-9 … t of that symbol, oldest first, and nothing after t.
        np.testing.assert_array_equal(windows.x[k][:, 1], same["f2"].iloc[i - 9 : i + 1].to_numpy(np.float32))
        if i + 1 < len(same):
            expected = same["close"].iloc[i + 1] / same["close"].iloc[i] - 1
            assert windows.y[k] == pytest.approx(expected, rel=1e-12)
        else:
            assert math.isnan(windows.y[k])  # a symbol's last bar has no target


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = metrics.wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)


def test_direction_metrics_against_hand_computed_values():
    y = np.array([1, 0, 1, 1])
    model, base = metrics.direction_metrics(y, np.array([0.9, 0.2, 0.6, 0.4]), train_base_rate=0.5)
    assert model["accuracy"] == 0.75
    assert model["brier"] == pytest.approx((0.01 + 0.04 + 0.16 + 0.36) / 4)
    assert base["brier"] == pytest.approx(0.25) and base["accuracy"] == 0.75  # always-up
    assert model["brier_skill"] == pytest.approx(1 - model["brier"] / 0.25)
    assert model["roc_auc"] == pytest.approx(1.0)


def test_return_metrics_persistence_is_the_zero_return_forecast():
    frame = _frame(symbols=("A",), bars=50).dropna().sort_values("ts")
    scales = metrics.symbol_scales(frame)
    model, persistence = metrics.return_metrics(frame, np.zeros(len(frame)), scales)
    assert model == persistence
    assert persistence["mase"] == pytest.approx(1.0)  # same rows as the scale: exactly 1
    perfect, _ = metrics.return_metrics(frame, frame["label_ret_1"].to_numpy(), scales)
    assert perfect["mae"] == pytest.approx(0, abs=1e-9) and perfect["mase"] == pytest.approx(0, abs=1e-12)
    assert perfect["directional_accuracy"] == 1.0


def test_always_long_backtest_equals_buy_and_hold():
    frame = _frame().dropna()
    bt = metrics.backtest(frame, np.ones(len(frame), dtype=bool), "1d")
    assert bt["strategy"]["total_return"] == pytest.approx(bt["buy_and_hold"]["total_return"])
    flat = metrics.backtest(frame, np.zeros(len(frame), dtype=bool), "1d")
    assert flat["strategy"]["total_return"] == 0 and flat["strategy"]["turnover_per_year"] == 0


def _row(task, algorithm, value, baseline):
    return {"task": task, "algorithm": algorithm, "key_value": value, "baseline_value": baseline}


def test_a_model_worse_than_its_baseline_is_chosen_but_not_promoted():
    rows = [
        _row("direction", "logistic", 0.2510, 0.2500),
        _row("direction", "random_forest", 0.2505, 0.2500),
        _row("return", "ridge", 0.98, 1.0),
        _row("return", "lstm", float("nan"), 1.0),
    ]
    best = choose(rows)
    assert best["direction"]["algorithm"] == "random_forest" and not beats_baseline(best["direction"])
    assert best["return"]["algorithm"] == "ridge" and beats_baseline(best["return"])


def test_signal_thresholds():
    assert [signal(p) for p in (0.7, 0.55, 0.5, 0.45, 0.1)] == ["buy", "buy", "hold", "sell", "sell"]


def test_export_scores_the_holdout_block_and_every_symbols_newest_bar():
    ts = pd.date_range("2017-01-02", periods=6, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": ["OLD"] * 3 + ["NEW"] * 6,
            "ts": list(ts[:3]) + list(ts),  # OLD's history ends before the holdout block starts
        }
    )
    rows = scored_rows(frame, ts[4])
    assert frame.iloc[rows][["symbol", "ts"]].values.tolist() == [
        ["OLD", ts[2]],
        ["NEW", ts[4]],
        ["NEW", ts[5]],
    ]
