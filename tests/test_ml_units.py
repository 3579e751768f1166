"""Training building blocks without Spark: splits, LSTM windows, metrics, promotion."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lakehouse.calendars import calendar
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
    y = np.array([1, 0, 1, 1, 0])
    p = np.array([0.9, 0.7, 0.6, 0.4, 0.2])
    model, base = metrics.direction_metrics(y, p, train_base_rate=0.6)
    # Calls (p > 0.5): 1 1 1 0 0 against 1 0 1 1 0 → right, wrong, right, wrong, right.
    assert model["accuracy"] == pytest.approx(3 / 5)
    # Wilson 95% interval of 3 of 5 (z = 1.96): centre (0.6 + z²/10) / (1 + z²/5) = 0.5566, half-width
    # z·√(0.24/5 + z²/100) / (1 + z²/5) = 0.3258.
    assert model["accuracy_ci_low"] == pytest.approx(0.2307, abs=1e-4)
    assert model["accuracy_ci_high"] == pytest.approx(0.8824, abs=1e-4)
    # Squared errors 0.1², 0.7², 0.4², 0.6², 0.2² = 0.01 + 0.49 + 0.16 + 0.36 + 0.04 = 1.06.
    assert model["brier"] == pytest.approx(1.06 / 5)
    # Probability given to what happened: 0.9, 0.3, 0.6, 0.4, 0.8.
    assert model["log_loss"] == pytest.approx(
        -(math.log(0.9) + math.log(0.3) + math.log(0.6) + math.log(0.4) + math.log(0.8)) / 5
    )
    assert model["log_loss"] == pytest.approx(0.59192, abs=1e-5)
    # Positives score 0.9, 0.6, 0.4; negatives 0.7, 0.2: 4 of the 6 (positive, negative) pairs ordered right.
    assert model["roc_auc"] == pytest.approx(4 / 6)
    # Base rate 0.6 of the training fold: (0.4² × 3 + 0.6² × 2) / 5 = (0.48 + 0.72) / 5 = 0.24.
    assert base["brier"] == pytest.approx(0.24)
    assert model["brier_skill"] == pytest.approx(1 - 0.212 / 0.24)  # 0.1167
    assert base["log_loss"] == pytest.approx(-(3 * math.log(0.6) + 2 * math.log(0.4)) / 5)
    assert base["accuracy"] == pytest.approx(3 / 5)  # always-up: three of five bars went up
    assert (base["roc_auc"], base["brier_skill"], base["base_rate"]) == (0.5, 0.0, 0.6)


def test_direction_metrics_call_exactly_one_half_down_and_leave_auc_undefined_on_one_class():
    model, _ = metrics.direction_metrics(np.array([1, 1]), np.array([0.5, 0.51]), train_base_rate=0.5)
    assert model["accuracy"] == 0.5  # 0.5 is not "up"
    assert math.isnan(model["roc_auc"])
    assert model["brier_skill"] == pytest.approx(1 - ((0.5**2 + 0.49**2) / 2) / 0.25)


def test_symbol_scales_are_each_symbols_mean_absolute_return():
    train = pd.DataFrame({"symbol": ["A", "B", "A", "B"], "label_ret_1": [0.04, 0.01, -0.06, -0.03]})
    assert metrics.symbol_scales(train) == pytest.approx({"A": 0.05, "B": 0.02})


def _return_block() -> pd.DataFrame:
    # Actual next closes: A 100→110, 110→99, 99→100.98; B 50→52.
    return pd.DataFrame(
        {
            "symbol": ["A", "A", "B", "A"],
            "close": [100.0, 110.0, 50.0, 99.0],
            "label_ret_1": [0.10, -0.10, 0.04, 0.02],
        }
    )


def test_return_metrics_against_hand_computed_values():
    scales = {"A": 0.05, "B": 0.02}
    model, persistence = metrics.return_metrics(_return_block(), np.array([0.05, -0.20, 0.01, 0.0]), scales)
    # Predicted closes 105, 88, 50.5, 99 against 110, 99, 52, 100.98: errors -5, -11, -1.5, -1.98.
    assert model["mae"] == pytest.approx((5 + 11 + 1.5 + 1.98) / 4)
    assert model["rmse"] == pytest.approx(math.sqrt((25 + 121 + 2.25 + 1.98**2) / 4))
    assert model["mape"] == pytest.approx((5 / 110 + 11 / 99 + 1.5 / 52 + 1.98 / 100.98) / 4)
    # Each error as a fraction of today's close (0.05, 0.10, 0.03, 0.02) over its symbol's scale.
    assert model["mase"] == pytest.approx((0.05 / 0.05 + 0.10 / 0.05 + 0.03 / 0.02 + 0.02 / 0.05) / 4)  # 1.225
    # R² on returns: SSE 0.05² + 0.1² + 0.03² + 0.02² = 0.0138; actual mean 0.015,
    # SST 0.085² + 0.115² + 0.025² + 0.005² = 0.007225 + 0.013225 + 0.000625 + 0.000025 = 0.0211.
    assert model["r2_return"] == pytest.approx(1 - 0.0138 / 0.0211)  # 0.3460
    # Up calls (pred > 0): yes, no, yes, no against up, down, up, up → 3 of 4 agree.
    assert model["directional_accuracy"] == pytest.approx(3 / 4)

    # Persistence predicts today's close: errors -10, 11, -2, -1.98.
    assert persistence["mae"] == pytest.approx((10 + 11 + 2 + 1.98) / 4)
    assert persistence["rmse"] == pytest.approx(math.sqrt((100 + 121 + 4 + 1.98**2) / 4))
    assert persistence["mape"] == pytest.approx((10 / 110 + 11 / 99 + 2 / 52 + 1.98 / 100.98) / 4)
    assert persistence["mase"] == pytest.approx((0.10 / 0.05 + 0.10 / 0.05 + 0.04 / 0.02 + 0.02 / 0.05) / 4)  # 1.6
    assert persistence["r2_return"] == pytest.approx(1 - (0.01 + 0.01 + 0.0016 + 0.0004) / 0.0211)  # below 0
    assert persistence["directional_accuracy"] == pytest.approx(1 / 4)  # "not up" is right on the one down bar


def test_rank_ic_by_hand_on_a_tiny_cross_section():
    """Day 1 ranks agree exactly (IC 1); day 2 swaps one adjacent pair: 1 − 6·Σd²/(n(n²−1)) = 1 − 12/990.
    Day 3 has 3 symbols (< 10: left out); day 4's predictions are all tied (no correlation: left out)."""
    ten = [f"S{i}" for i in range(10)]
    days = {
        "2024-01-01": (list(range(10)), [0.01 * i for i in range(10)]),
        "2024-01-02": (list(range(10)), [0.01 * i for i in (1, 0, 2, 3, 4, 5, 6, 7, 8, 9)]),
        "2024-01-04": ([0.0] * 10, [0.01 * i for i in range(10)]),
    }
    parts = [pd.DataFrame({"ts": day, "symbol": ten, "pred": p, "label_ret_1": a}) for day, (p, a) in days.items()]
    parts.append(pd.DataFrame({"ts": "2024-01-03", "symbol": ten[:3], "pred": [1, 2, 3], "label_ret_1": [3, 2, 1]}))
    frame = pd.concat(parts).sample(frac=1, random_state=0)  # any row order
    model, baseline = metrics.rank_ic(frame, frame["pred"].to_numpy())
    day2 = 1 - 12 / 990
    std = (1 - day2) / math.sqrt(2)
    assert model["rank_ic_days"] == 2
    assert model["rank_ic"] == pytest.approx((1 + day2) / 2, rel=1e-12)
    assert model["rank_ic_ir"] == pytest.approx((1 + day2) / 2 / std, rel=1e-9)
    assert model["rank_ic_t"] == pytest.approx((1 + day2) / 2 / std * math.sqrt(2), rel=1e-9)
    assert baseline == {"rank_ic": 0.0, "rank_ic_ir": 0.0, "rank_ic_t": 0.0, "rank_ic_days": 2.0}


def test_rank_ic_equals_scipys_spearman_per_day_with_ties_and_is_nan_without_a_cross_section():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "ts": np.repeat(np.arange(6), 25),
            "pred": rng.integers(0, 8, 150).astype(float),  # many ties
            "label_ret_1": rng.normal(0, 0.01, 150),
        }
    )
    daily = [spearmanr(g["pred"], g["label_ret_1"]).statistic for _, g in frame.groupby("ts")]
    model, _ = metrics.rank_ic(frame, frame["pred"].to_numpy())
    assert model["rank_ic"] == pytest.approx(np.mean(daily), rel=1e-12)
    assert model["rank_ic_ir"] == pytest.approx(np.mean(daily) / np.std(daily, ddof=1), rel=1e-9)
    small, base = metrics.rank_ic(frame[frame["ts"] == 0].head(9), np.zeros(9))
    assert small["rank_ic_days"] == 0 and math.isnan(small["rank_ic"]) and math.isnan(base["rank_ic"])


def test_persistence_mase_is_one_on_its_own_scale_rows_and_a_perfect_forecast_scores_zero():
    frame = _frame(symbols=("A",), bars=50).dropna().sort_values("ts")
    scales = metrics.symbol_scales(frame)
    _, persistence = metrics.return_metrics(frame, np.zeros(len(frame)), scales)
    assert persistence["mase"] == pytest.approx(1.0)  # same rows as the scale: exactly 1
    perfect, _ = metrics.return_metrics(frame, frame["label_ret_1"].to_numpy(), scales)
    assert perfect["mae"] == pytest.approx(0, abs=1e-9) and perfect["mase"] == pytest.approx(0, abs=1e-12)
    assert perfect["directional_accuracy"] == 1.0 and perfect["r2_return"] == pytest.approx(1.0)


def _backtest_block() -> tuple[pd.DataFrame, np.ndarray]:
    """Two symbols over four daily bars, rows shuffled (the backtest must sort by symbol and time)."""
    ts = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {
            "symbol": ["A"] * 4 + ["B"] * 4,
            "ts": list(ts) * 2,
            "label_ret_1": [0.10, -0.05, 0.02, 0.03, -0.02, 0.04, -0.03, -0.01],
            "long": [True, True, False, True, False, True, True, True],
        }
    )
    frame = frame.sample(frac=1, random_state=3).reset_index(drop=True)
    return frame.drop(columns="long"), frame["long"].to_numpy()


EQUITY_DAYS = calendar("sessions", "1d")


def test_backtest_against_hand_computed_values():
    frame, long = _backtest_block()
    bt = metrics.backtest(frame, long, EQUITY_DAYS)
    # 5 bp per position change, the first bar counting as a change from flat:
    #   A positions 1 1 0 1 → changes 1 0 1 1 → returns .0995  -.05    -.0005  .0295
    #   B positions 0 1 1 1 → changes 0 1 0 0 → returns 0      .0395  -.03    -.01
    strategy = np.array([0.0995 + 0, -0.05 + 0.0395, -0.0005 - 0.03, 0.0295 - 0.01]) / 2
    # = .04975, -.00525, -.01525, .00975: two falls in a row from the first peak, then a partial recovery
    equity = float(np.prod(1 + strategy))
    years = 4 / 252  # 1d bars: 252 a year
    s = bt["strategy"]
    assert s["total_return"] == pytest.approx(equity - 1)
    assert s["total_return"] == pytest.approx(1.04975 * 0.99475 * 0.98475 * 1.00975 - 1)
    assert s["cagr"] == pytest.approx(equity ** (1 / years) - 1)
    mean = strategy.sum() / 4
    sample_sd = math.sqrt(((strategy - mean) ** 2).sum() / 3)  # n - 1
    assert s["sharpe"] == pytest.approx(mean / sample_sd * math.sqrt(252))
    assert s["max_drawdown"] == pytest.approx(0.99475 * 0.98475 - 1)  # both falls, not the worst single bar
    assert s["turnover_per_year"] == pytest.approx((0.5 + 0.5 + 0.5 + 0.5) / years)  # 126: mean changes per bar

    # Buy-and-hold pays 5 bp once per symbol, on its first bar.
    hold = np.array([0.0995 - 0.0205, -0.05 + 0.04, 0.02 - 0.03, 0.03 - 0.01]) / 2  # .0395 -.005 -.005 .01
    b = bt["buy_and_hold"]
    assert b["total_return"] == pytest.approx(1.0395 * 0.995 * 0.995 * 1.01 - 1)
    assert b["max_drawdown"] == pytest.approx(0.995 * 0.995 - 1)
    assert b["turnover_per_year"] == pytest.approx(1 / years)
    hold_sd = math.sqrt(((hold - hold.mean()) ** 2).sum() / 3)
    assert b["sharpe"] == pytest.approx(hold.mean() / hold_sd * math.sqrt(252))


def test_always_long_pays_what_buy_and_hold_pays_and_flat_earns_nothing():
    frame, _ = _backtest_block()
    always = metrics.backtest(frame, np.ones(len(frame), dtype=bool), EQUITY_DAYS)["strategy"]
    assert always["total_return"] == pytest.approx(1.0395 * 0.995 * 0.995 * 1.01 - 1)
    assert always["turnover_per_year"] == pytest.approx(1 / (4 / 252))  # one entry per symbol
    flat = metrics.backtest(frame, np.zeros(len(frame), dtype=bool), EQUITY_DAYS)["strategy"]
    assert flat == {"total_return": 0.0, "cagr": 0.0, "sharpe": 0.0, "max_drawdown": 0.0, "turnover_per_year": 0.0}


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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=12), st.integers(1, 3000))
def test_the_row_cap_gives_every_symbol_its_newest_rows_up_to_one_shared_limit(sizes, cap):
    """Σ min(n_s, L) ≤ cap, and L is the largest such limit: one more bar each would break the cap
    (a symbol with less history leaves its share to the others)."""
    from lakehouse.ml.dataset import per_symbol_limit

    counts = {f"S{i}": n for i, n in enumerate(sizes)}
    limit = per_symbol_limit(counts, cap)
    if limit is None:
        assert sum(sizes) <= cap
        return
    assert sum(min(n, limit) for n in sizes) <= cap < sum(sizes)
    assert sum(min(n, limit + 1) for n in sizes) > cap


def test_the_row_cap_by_hand():
    from lakehouse.ml.dataset import per_symbol_limit

    assert per_symbol_limit({"A": 10, "B": 100, "C": 100}, 1000) is None
    assert per_symbol_limit({"A": 10, "B": 100, "C": 100}, 110) == 50  # A keeps 10, B and C 50 each
    assert per_symbol_limit({"A": 10, "B": 100}, 1) == 0  # fewer rows than symbols: nothing fits evenly
    with pytest.raises(ValueError, match="at least 1"):
        per_symbol_limit({"A": 1}, 0)


def test_the_training_key_changes_with_everything_training_depends_on(monkeypatch):
    """A run is skipped when its key is in the registry already (a repeated drop), so the key must move with the
    table version, the symbols, each setting, the candidate families and the training code."""
    from types import SimpleNamespace

    from lakehouse.ml import train
    from lakehouse.ml.train import TrainSettings, training_key

    def key(version=3, symbols=(), settings=None, families=("direction_logistic",)):
        data = SimpleNamespace(table="gold/features_1d", table_version=version)
        return training_key(data, symbols, settings or TrainSettings(), list(families))  # type: ignore[arg-type]

    base = key()
    assert key() == base and len(base) == 16
    assert len({base, key(version=4), key(symbols=("BTC-USD",)), key(settings=TrainSettings(folds=4)),
                key(families=("direction_logistic", "return_ridge"))}) == 5  # fmt: skip
    monkeypatch.setattr(train, "_code_fingerprint", lambda: "another build of lakehouse.ml")
    assert key() != base
