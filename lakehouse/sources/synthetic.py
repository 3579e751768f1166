"""A seeded synthetic universe (SYN0001…, or the symbols asked for) of N symbols × T bars at any interval.

For scale tests, benchmarks and markets we have no offline data for: a geometric random walk with
consistent OHLC and log-normal volume, vectorised in numpy so 10 M rows take seconds. Same seed,
same data, so a re-ingest finds nothing new.

The bars fall on a calendar (`--calendar`):

| calendar | days            | intraday bars                                   |
|----------|-----------------|-------------------------------------------------|
| sessions | weekdays        | 14:30–21:00 UTC (a US session: 7 × 1h, 13 × 30m, 26 × 15m, 78 × 5m) |
| 24x5     | weekdays        | round the clock from 00:00 UTC                   |
| 24x7     | every day       | round the clock from 00:00 UTC (crypto)          |

Weekly bars open on Mondays at 00:00 UTC on every calendar. Symbols: without `--symbols` the
universe is SYN0001…SYN<n>; with them (`BTC-USD,ETH-USD`), each named symbol gets its own walk,
seeded by the seed and its name, and a SYN name inside the universe keeps the universe's walk.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from lakecontract.constants import BAR_SECONDS
from lakehouse.sources import FetchRequest, canonical_frame, clip_to_request

START = pd.Timestamp("2015-01-02", tz="UTC")  # a Friday
FIRST_MONDAY = pd.Timestamp("2015-01-05", tz="UTC")
SESSION_OPEN, SESSION_LENGTH = pd.Timedelta(hours=14, minutes=30), pd.Timedelta(hours=6, minutes=30)


def synthetic_symbols(n: int) -> tuple[str, ...]:
    return tuple(f"SYN{i:04d}" for i in range(1, n + 1))


def bar_times(interval: str, bars: int, calendar: str = "sessions") -> pd.DatetimeIndex:
    """The first `bars` bar opens of `interval` on `calendar` from START."""
    if interval == "1wk":
        return pd.date_range(FIRST_MONDAY, periods=bars, freq="7D")
    day_freq = "D" if calendar == "24x7" else "B"
    if interval == "1d":
        return pd.date_range(START, periods=bars, freq=day_freq)
    step = pd.Timedelta(seconds=BAR_SECONDS[interval])
    opens, length = (
        (SESSION_OPEN, SESSION_LENGTH) if calendar == "sessions" else (pd.Timedelta(0), pd.Timedelta(days=1))
    )
    per_day = math.ceil(length / step)  # a session's last bar may be partial (15:30–16:00 ET at 1h)
    days = pd.date_range(START, periods=math.ceil(bars / per_day), freq=day_freq)
    offsets = np.asarray(opens + step * np.arange(per_day), dtype="timedelta64[ns]")
    times = (days.tz_localize(None).to_numpy()[:, None] + offsets[None, :]).ravel()[:bars]
    return pd.DatetimeIndex(times).tz_localize("UTC")


def _walks(rng: np.random.Generator, n_symbols: int, n_bars: int) -> dict[str, np.ndarray]:
    shape = (n_symbols, n_bars)
    log_returns = rng.normal(0.0002, 0.015, shape)
    start_price = rng.uniform(20, 500, (n_symbols, 1))
    close = start_price * np.exp(np.cumsum(log_returns, axis=1))
    prev_close = np.concatenate([start_price, close[:, :-1]], axis=1)
    open_ = prev_close * np.exp(rng.normal(0, 0.003, shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.005, shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.005, shape)))
    volume = np.round(rng.lognormal(13, 0.5, shape))
    return {"open": open_, "high": high, "low": low, "close": close, "volume": volume}


def _frame(
    symbols: tuple[str, ...], walks: dict[str, np.ndarray], times: pd.DatetimeIndex, interval: str
) -> pd.DataFrame:
    n_bars = len(times)
    return pd.DataFrame(
        {
            "symbol": np.repeat(np.array(symbols, dtype=object), n_bars),
            "interval": interval,
            "ts": np.tile(times.to_numpy(), len(symbols)),
            "open": walks["open"].ravel(),
            "high": walks["high"].ravel(),
            "low": walks["low"].ravel(),
            "close": walks["close"].ravel(),
            "adj_close": walks["close"].ravel(),
            "volume": walks["volume"].ravel(),
        }
    )


def synthetic_candles(
    n_symbols: int, n_bars: int, interval: str = "1d", seed: int = 42, calendar: str = "sessions"
) -> pd.DataFrame:
    """The SYN universe: one generator for all symbols, so SYN0001's walk depends on the seed only."""
    walks = _walks(np.random.default_rng(seed), n_symbols, n_bars)
    return _frame(synthetic_symbols(n_symbols), walks, bar_times(interval, n_bars, calendar), interval)


def named_candles(symbol: str, n_bars: int, interval: str, seed: int, calendar: str) -> pd.DataFrame:
    """One named symbol's walk, seeded by the seed and the name (crc32: stable across processes)."""
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
    return _frame((symbol,), _walks(rng, 1, n_bars), bar_times(interval, n_bars, calendar), interval)


class SyntheticSource:
    name = "synthetic"

    def __init__(
        self,
        n_symbols: int = 5,
        n_bars: int = 2_000,
        seed: int = 42,
        calendar: str = "sessions",
    ) -> None:
        self.n_symbols, self.n_bars, self.seed, self.calendar = n_symbols, n_bars, seed, calendar

    def fetch(self, request: FetchRequest) -> pd.DataFrame:
        wanted = request.symbols
        universe = synthetic_symbols(self.n_symbols)
        frames = []
        if not wanted or any(s in universe for s in wanted):
            frame = synthetic_candles(self.n_symbols, self.n_bars, request.interval, self.seed, self.calendar)
            frames.append(frame.loc[frame["symbol"].isin(wanted)] if wanted else frame)
        frames += [
            named_candles(s, self.n_bars, request.interval, self.seed, self.calendar)
            for s in wanted
            if s not in universe
        ]
        return clip_to_request(canonical_frame(pd.concat(frames, ignore_index=True)), request)
