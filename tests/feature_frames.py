"""Candle frames for the feature tests, Spark-free: a multi-symbol frame built to reach every
edge case of the spec (flat stretches, repeated closes, constant volume) and real bundled series."""

import numpy as np
import pandas as pd

from lakehouse.sources import FetchRequest, get_source

CANDLE_COLUMNS = ["symbol", "ts", "open", "high", "low", "close", "volume"]


def real_candles_frame(symbols: tuple[str, ...] = ("^GSPC", "MSFT")) -> pd.DataFrame:
    """Real daily series (S&P 500 1999–2018, MSFT 1986–2017) as the bundled source gives them."""
    return get_source("sample").fetch(FetchRequest(symbols, "1d"))[CANDLE_COLUMNS]


def _bars(rng: np.random.Generator, n: int, start: float, vol_scale: float = 1e5) -> pd.DataFrame:
    """A geometric random walk with consistent OHLC (low ≤ open, close ≤ high) and volumes."""
    close = start * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n)))
    prev = np.concatenate([[start], close[:-1]])
    open_ = prev * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, n)))
    volume = np.round(rng.lognormal(0, 0.5, n) * vol_scale)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume})


def _flatten(bars: pd.DataFrame, rows: slice, price: float, volume: float | None) -> None:
    """A perfectly flat stretch: open = high = low = close (and a constant volume if given)."""
    for col in ("open", "high", "low", "close"):
        bars.loc[rows, col] = price
    if volume is not None:
        bars.loc[rows, "volume"] = volume


def mixed_candles_frame() -> pd.DataFrame:
    """Three symbols of different lengths, chosen to reach every edge case of the spec:

    - PENNY (240 bars): prices rounded to cents near $8 and volumes to hundreds, so closes repeat
      (Δclose = 0: CNTP/CNTN both miss, quantile ties);
    - FLAT (220 bars): a 65-bar stretch where open = high = low = close and volume is constant, so
      every window up to 60 bars is flat (STD 0, %B 0.5, CORR 0, vol z 0, robust z 0, KMID2 0/1e-12);
    - QUIET (170 bars): starts with 20 flat bars (RSI 50 then 100 on the first gain, ATR 0) and has a
      25-bar constant-volume stretch while prices move (CORR 0 because only volume is flat).
    Rows are shuffled: the features must not depend on the input order.
    """
    rng = np.random.default_rng(20240611)
    penny = _bars(rng, 240, 8.0, vol_scale=3e3)
    for col in ("open", "high", "low", "close"):
        penny[col] = penny[col].round(2)
    penny["volume"] = (penny["volume"] / 100).round() * 100
    flat = _bars(rng, 220, 150.0)
    _flatten(flat, slice(80, 144), 151.37, 250_000.0)
    quiet = _bars(rng, 170, 40.0)
    _flatten(quiet, slice(0, 19), 40.0, None)
    quiet.loc[90:114, "volume"] = 77_000.0
    frames = []
    for symbol, bars in (("PENNY", penny), ("FLAT", flat), ("QUIET", quiet)):
        bars = bars.copy()
        bars.insert(0, "symbol", symbol)
        bars.insert(1, "ts", pd.date_range("2021-03-01", periods=len(bars), freq="D", tz="UTC"))
        frames.append(bars)
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=7).reset_index(drop=True)
