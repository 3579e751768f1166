"""Trading calendars: how many bars a year a series has, measured from the series itself.

Sharpe ratios, CAGR and turnover are annualised by a series' bars per year, and markets differ:
US equities trade ~252 sessions of 6.5 hours, FX 24 hours on ~260 weekdays, crypto 24 hours on
365 days. A constant `252 × bars per session` annualises a crypto 5-minute Sharpe by √(252·78)
instead of √(365·288): 2.3× too small. So the calendar is read off the timestamps:

| calendar | what the series shows                               | days a year | bars a day (intraday)        |
|----------|-----------------------------------------------------|-------------|------------------------------|
| 24x7     | a fifth or more of its timestamps on a weekend (UTC) | 365        | 24 h of bars                 |
| 24x5     | weekdays only, bars round the clock (≥ 20 h a day); daily bars on ≥ 256 days a year | 260 | 24 h of bars |
| sessions | weekdays only, shorter days (an exchange session)   | 252         | the median bars per day seen |

Weekly bars are annualised by 365.25 / 7 whatever the market (calendar `weekly`). A daily series shorter than a year
cannot tell 24x5 from sessions (a year of weekdays is 260 days, of sessions 252) and is read as
sessions. Crypto's weekend share is 2/7 ≈ 0.29; FX's Sunday-evening open puts ~2% of its bars on
a weekend; an exchange's, none — so the 0.2 threshold is far from each.

Why measured and not declared per symbol: a symbol list would have to know every ticker (ETH-USD,
EURUSD=X, ^N225, a user's CSV), and the timestamps already say it. The measured calendar is
written beside every model in gold/model_registry (`calendar`, `bars_per_year`) and printed above
the leaderboard, so a number is never annualised silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lakecontract.constants import BAR_SECONDS

DAYS_PER_YEAR: dict[str, int] = {"24x7": 365, "24x5": 260, "sessions": 252}
CALENDARS: tuple[str, ...] = tuple(DAYS_PER_YEAR)
WEEKS_PER_YEAR = 365.25 / 7
WEEKEND_SHARE = 0.2
ROUND_THE_CLOCK_HOURS = 20.0
FX_DAYS = 256
"""Daily bars on at least this many days a year (and no weekends) are a 24x5 market, not sessions."""
SESSION_BARS = {"5m": 78, "15m": 26, "30m": 13, "1h": 7}
"""A US-equity session (09:30–16:00 ET) in bars, the last one partial: a series too short to measure."""
DAY = 86_400


@dataclass(frozen=True)
class Calendar:
    name: str
    interval: str
    bars_per_year: float
    how: str = "measured from the series"

    def describe(self) -> str:
        if self.interval == "1wk":
            return f"weekly bars: {self.bars_per_year:.2f} bars a year ({self.how})"
        days = DAYS_PER_YEAR[self.name]
        per_day = self.bars_per_year / days
        return (
            f"{self.name}: {days} days × {per_day:g} bar(s) = {self.bars_per_year:,.0f} bars a year "
            f"for {self.interval} ({self.how})"
        )


def calendar(name: str, interval: str, bars_per_day: float | None = None, how: str = "declared") -> Calendar:
    """The calendar `name` at `interval`; `bars_per_day` only for intraday sessions (default: a US session)."""
    if name not in DAYS_PER_YEAR:
        raise ValueError(f"unknown calendar {name!r}; one of {', '.join(CALENDARS)}")
    if interval == "1wk":
        return Calendar(name, interval, WEEKS_PER_YEAR, how)
    seconds = BAR_SECONDS[interval]
    if seconds >= DAY:
        per_day = 1.0
    elif name == "sessions":
        per_day = float(bars_per_day if bars_per_day is not None else SESSION_BARS[interval])
    else:
        per_day = DAY / seconds
    return Calendar(name, interval, DAYS_PER_YEAR[name] * per_day, how)


def measure(ts: pd.Series | pd.DatetimeIndex | np.ndarray, interval: str) -> Calendar:
    """The calendar of the bars stamped `ts` (one series or the union of several, any order): read off the
    distinct timestamps, as a portfolio of the series has a return at each."""
    if interval == "1wk":
        return Calendar("weekly", interval, WEEKS_PER_YEAR, "a bar a week on every market")
    times = pd.DatetimeIndex(pd.to_datetime(pd.Series(np.asarray(ts)).dropna(), utc=True)).unique()
    if len(times) == 0:
        return calendar("sessions", interval, how="default: no bars to measure")
    if (times.dayofweek >= 5).mean() >= WEEKEND_SHARE:
        return calendar("24x7", interval, how="measured from the series")
    seconds = BAR_SECONDS[interval]
    if seconds >= DAY:
        span_years = (times.max() - times.min()).days / 365.25
        if span_years >= 1 and (len(times) - 1) / span_years >= FX_DAYS:
            return calendar("24x5", interval, how="measured from the series")
        return calendar("sessions", interval, how="measured from the series")
    per_day = float(pd.Series(times.normalize()).value_counts().median())
    if per_day * seconds >= ROUND_THE_CLOCK_HOURS * 3_600:
        return calendar("24x5", interval, how="measured from the series")
    return calendar("sessions", interval, bars_per_day=per_day, how="measured from the series")


def annualised_sharpe(returns: np.ndarray, cal: Calendar) -> float:
    """Mean over standard deviation (ddof 1) of per-bar returns, times √(bars a year); 0 when flat."""
    std = returns.std(ddof=1) if len(returns) > 1 else 0.0
    return float(returns.mean() / std * math.sqrt(cal.bars_per_year)) if std > 0 else 0.0
