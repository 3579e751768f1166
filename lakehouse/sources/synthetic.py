"""A seeded synthetic universe (SYN0001…) of N symbols × T bars at any interval.

For scale tests and benchmarks only: a geometric random walk with consistent OHLC and
log-normal volume, vectorised in numpy so 10 M rows take seconds. Same seed, same data, so a
re-ingest finds nothing new.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.sources import FetchRequest, SourceError, canonical_frame, clip_to_request

START = pd.Timestamp("2015-01-02", tz="UTC")
_STEP = {"1d": None, "1h": pd.Timedelta(hours=1), "5m": pd.Timedelta(minutes=5)}


def synthetic_symbols(n: int) -> tuple[str, ...]:
    return tuple(f"SYN{i:04d}" for i in range(1, n + 1))


def bar_times(interval: str, bars: int) -> pd.DatetimeIndex:
    if interval == "1d":
        return pd.bdate_range(START, periods=bars, tz="UTC")
    return pd.date_range(START, periods=bars, freq=_STEP[interval], tz="UTC")


def synthetic_candles(n_symbols: int, n_bars: int, interval: str = "1d", seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shape = (n_symbols, n_bars)
    log_returns = rng.normal(0.0002, 0.015, shape)
    start_price = rng.uniform(20, 500, (n_symbols, 1))
    close = start_price * np.exp(np.cumsum(log_returns, axis=1))
    prev_close = np.concatenate([start_price, close[:, :-1]], axis=1)
    open_ = prev_close * np.exp(rng.normal(0, 0.003, shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.005, shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.005, shape)))
    volume = np.round(rng.lognormal(13, 0.5, shape))
    times = bar_times(interval, n_bars)
    symbols = synthetic_symbols(n_symbols)
    return pd.DataFrame(
        {
            "symbol": np.repeat(np.array(symbols, dtype=object), n_bars),
            "interval": interval,
            "ts": np.tile(times.to_numpy(), n_symbols),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "adj_close": close.ravel(),
            "volume": volume.ravel(),
        }
    )


class SyntheticSource:
    name = "synthetic"

    def __init__(self, n_symbols: int = 5, n_bars: int = 2_000, seed: int = 42) -> None:
        self.n_symbols, self.n_bars, self.seed = n_symbols, n_bars, seed

    def fetch(self, request: FetchRequest) -> pd.DataFrame:
        frame = synthetic_candles(self.n_symbols, self.n_bars, request.interval, self.seed)
        if request.symbols:
            unknown = sorted(set(request.symbols) - set(synthetic_symbols(self.n_symbols)))
            if unknown:
                raise SourceError(f"synthetic universe of {self.n_symbols} has no {unknown}")
            frame = frame.loc[frame["symbol"].isin(request.symbols)]
        return clip_to_request(canonical_frame(frame), request)
