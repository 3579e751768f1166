"""Gold features: checked against TA-Lib on real daily data, and proven free of look-ahead."""

import numpy as np
import pandas as pd
import pytest
import talib

from lakehouse.feature_spec import FEATURE_NAMES, WARM_BARS
from lakehouse.features import with_features
from lakehouse.sources import FetchRequest, get_source

pytestmark = pytest.mark.spark

CANDLE_COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def real_candles() -> pd.DataFrame:
    """Two real daily series (S&P 500 1999–2018, MSFT 1986–2017) as the bundled source gives them."""
    return get_source("sample").fetch(FetchRequest(("^GSPC", "MSFT"), "1d"))[CANDLE_COLUMNS]


@pytest.fixture(scope="module")
def real_features(spark, real_candles) -> pd.DataFrame:
    return with_features(spark.createDataFrame(real_candles)).toPandas().sort_values(["symbol", "ts"])


def _close_enough(ours: pd.Series, reference: np.ndarray, rtol: float = 1e-6) -> None:
    """Relative difference ≤ rtol after the warm-up; an absolute floor of rtol × the series'
    typical magnitude keeps values crossing zero (MACD histogram) from dividing by ~0."""
    ours_arr, ref = ours.to_numpy(dtype=float)[WARM_BARS:], reference[WARM_BARS:]
    assert not np.isnan(ref).any() and not np.isnan(ours_arr).any()
    floor = rtol * np.nanmedian(np.abs(ref))
    worst = np.max(np.abs(ours_arr - ref) / np.maximum(np.abs(ref), floor))
    assert worst <= rtol, f"worst relative difference {worst:.2e}"


@pytest.mark.parametrize("symbol", ["^GSPC", "MSFT"])
def test_indicators_match_talib_after_warmup(real_features, symbol):
    f = real_features[real_features.symbol == symbol].reset_index(drop=True)
    close, high, low = (f[c].to_numpy(dtype=float) for c in ("close", "high", "low"))
    for n in (5, 10, 20, 50):
        _close_enough(f[f"sma_{n}"], talib.SMA(close, n))
        _close_enough(f[f"ema_{n}"], talib.EMA(close, n))
    _close_enough(f["rsi_14"], talib.RSI(close, 14))
    _close_enough(f["atr_14"], talib.ATR(high, low, close, 14))
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    _close_enough(f["macd"], macd)
    _close_enough(f["macd_signal"], signal)
    _close_enough(f["macd_hist"], hist)
    upper, middle, lower = talib.BBANDS(close, 20, 2, 2, matype=0)
    _close_enough(f["bb_upper_20"], upper)
    _close_enough(f["bb_mid_20"], middle)
    _close_enough(f["bb_lower_20"], lower)


def test_feature_table_matches_the_spec_and_marks_warmup(real_features):
    feature_cols = [c for c in real_features.columns if c in FEATURE_NAMES]
    assert feature_cols == list(FEATURE_NAMES) and len(feature_cols) >= 60
    msft = real_features[real_features.symbol == "MSFT"].reset_index(drop=True)
    assert msft.loc[: WARM_BARS - 2, "is_warm"].eq(False).all() and msft.loc[WARM_BARS - 1 :, "is_warm"].all()
    warm = msft[msft.is_warm]
    nulls = warm[list(FEATURE_NAMES)].isna().sum()
    assert nulls[nulls > 0].empty, f"warm rows with null features: {nulls[nulls > 0].to_dict()}"
    assert msft.loc[0, ["ret_1", "sma_5", "ROC60", "rsi_14"]].isna().all()  # nulls, not partial windows
    assert msft.loc[4, "sma_5"] == pytest.approx(msft.loc[:4, "close"].mean())
    i, closes = 500, msft["close"].to_numpy()
    assert msft.loc[i, "QTLU20"] == pytest.approx(np.quantile(closes[i - 19 : i + 1], 0.8) / closes[i], rel=1e-12)
    assert msft.loc[i, "QTLD60"] == pytest.approx(np.quantile(closes[i - 59 : i + 1], 0.2) / closes[i], rel=1e-12)
    rets = closes[i - 19 : i + 1] / closes[i - 20 : i] - 1
    q25, q50, q75 = np.quantile(rets, [0.25, 0.5, 0.75])
    assert msft.loc[i, "iqr_20"] == pytest.approx(q75 - q25, rel=1e-9)
    assert msft.loc[i, "robust_z_20"] == pytest.approx((rets[-1] - q50) / (q75 - q25), rel=1e-9)


def test_labels_describe_the_next_bar_and_the_last_is_null(spark):
    candles = pd.DataFrame(
        {
            "symbol": "X",
            "ts": pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC"),
            "open": [10.0, 10, 10, 10],
            "high": [12.0, 12, 12, 12],
            "low": [9.0, 9, 9, 9],
            "close": [10.0, 11.0, 11.0, 10.5],
            "volume": [1.0, 1, 1, 1],
        }
    )
    out = with_features(spark.createDataFrame(candles)).toPandas().sort_values("ts")
    assert out.label_up.tolist()[:3] == [1, 0, 0]  # up, flat (not up), down
    assert out.label_ret_1.tolist()[:3] == pytest.approx([0.1, 0.0, 10.5 / 11 - 1])
    assert pd.isna(out.label_up.iloc[-1]) and pd.isna(out.label_ret_1.iloc[-1])


def test_no_feature_at_t_changes_when_rows_after_t_change(spark, real_candles):
    """Leakage: rewrite every bar after t (prices and volumes scaled, OHLC kept consistent);
    every feature at or before t must be identical. Labels at t may change (they are the future)."""
    candles = real_candles[real_candles.symbol == "MSFT"].iloc[:400].reset_index(drop=True)
    cut = 300
    rng = np.random.default_rng(0)
    changed = candles.copy()
    factor = rng.uniform(0.5, 1.5, len(candles) - cut)
    for col in ("open", "high", "low", "close"):
        changed.loc[cut:, col] = candles.loc[cut:, col].to_numpy() * factor
    changed.loc[cut:, "volume"] = candles.loc[cut:, "volume"].to_numpy() * rng.uniform(0.1, 10, len(candles) - cut)

    def features(frame: pd.DataFrame) -> pd.DataFrame:
        out = with_features(spark.createDataFrame(frame)).toPandas().sort_values("ts").reset_index(drop=True)
        return out.loc[: cut - 1, list(FEATURE_NAMES)]

    before, after = features(candles), features(changed)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    # and the test can fail: the bar at `cut` itself does change
    assert not features_at(spark, candles, cut).equals(features_at(spark, changed, cut))


def features_at(spark, frame: pd.DataFrame, i: int) -> pd.Series:
    out = with_features(spark.createDataFrame(frame)).toPandas().sort_values("ts").reset_index(drop=True)
    return out.loc[i, list(FEATURE_NAMES)]


def test_readme_feature_table_is_generated_from_the_spec():
    from pathlib import Path

    from lakehouse.feature_spec import readme_with_table

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert readme_with_table(readme) == readme, "README feature table is stale: run `make docs`"
