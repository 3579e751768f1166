"""Annualisation per calendar (lakehouse/calendars.py): Sharpe worked by hand for a 24/7 and an equity
series, and each market's calendar read off its timestamps, real BTC-USD bars included."""

import math

import numpy as np
import pandas as pd
import pytest

from lakehouse.calendars import WEEKS_PER_YEAR, calendar, measure
from lakehouse.ml import metrics
from lakehouse.sources import FetchRequest
from lakehouse.sources.sample import SampleSource
from lakehouse.sources.synthetic import bar_times

# Four bar returns. mean = 0.025 / 4 = 0.00625; deviations .00375 -.01125 .01375 -.00625, whose squares
# sum to 3.6875e-4, so the sample standard deviation is √(3.6875e-4 / 3).
RETURNS = np.array([0.01, -0.005, 0.02, 0.0])
PER_BAR = 0.00625 / math.sqrt(3.6875e-4 / 3)  # ≈ 0.5637


def _block(times: pd.DatetimeIndex) -> pd.DataFrame:
    """One symbol's test rows: label_ret_1 is the next bar's return, held long every bar."""
    return pd.DataFrame({"symbol": "X", "ts": times[: len(RETURNS)], "label_ret_1": RETURNS})


def test_a_24x7_five_minute_series_is_annualised_by_365_days_of_288_bars():
    times = pd.date_range("2021-10-01", periods=400, freq="5min", tz="UTC")  # a Friday, through the weekend
    cal = measure(times, "5m")
    assert (cal.name, cal.bars_per_year) == ("24x7", 365 * 288)
    strategy = metrics.backtest(_block(times), np.ones(4, bool), cal, cost_bp=0.0)["strategy"]
    assert strategy["sharpe"] == pytest.approx(PER_BAR * math.sqrt(105_120))  # ≈ 182.8
    years = 4 / 105_120
    assert strategy["cagr"] == pytest.approx((1.01 * 0.995 * 1.02 * 1.0) ** (1 / years) - 1)


def test_an_equity_five_minute_series_is_annualised_by_252_sessions_of_78_bars():
    days = pd.bdate_range("2021-10-04", periods=10, tz="UTC")
    times = pd.DatetimeIndex(
        [d + pd.Timedelta(hours=14, minutes=30) + k * pd.Timedelta(minutes=5) for d in days for k in range(78)]
    )
    cal = measure(times, "5m")
    assert (cal.name, cal.bars_per_year) == ("sessions", 252 * 78)
    strategy = metrics.backtest(_block(times), np.ones(4, bool), cal, cost_bp=0.0)["strategy"]
    assert strategy["sharpe"] == pytest.approx(PER_BAR * math.sqrt(19_656))  # ≈ 79.0
    # The same four returns on the two calendars: their Sharpes differ by √(365·288 / 252·78) ≈ 2.31.
    crypto = PER_BAR * math.sqrt(105_120)
    assert crypto / strategy["sharpe"] == pytest.approx(math.sqrt(105_120 / 19_656))


@pytest.mark.parametrize(
    ("times", "interval", "name", "bars_per_year"),
    [
        (pd.date_range("2020-01-01", periods=700, freq="D", tz="UTC"), "1d", "24x7", 365),
        (pd.bdate_range("2019-01-01", "2021-12-31", tz="UTC"), "1d", "24x5", 260),  # FX: every weekday
        (pd.bdate_range("2021-03-01", periods=60, tz="UTC"), "1d", "sessions", 252),  # under a year: sessions
        (
            pd.DatetimeIndex(
                [
                    d + pd.Timedelta(hours=h)
                    for d in pd.bdate_range("2021-03-01", periods=20, tz="UTC")
                    for h in range(24)
                ]
            ),
            "1h",
            "24x5",
            260 * 24,
        ),
        (
            pd.DatetimeIndex(
                [
                    d + pd.Timedelta(minutes=30 + 60 * h) + pd.Timedelta(hours=14)
                    for d in pd.bdate_range("2021-03-01", periods=20, tz="UTC")
                    for h in range(7)
                ]
            ),
            "1h",
            "sessions",
            252 * 7,
        ),
        (pd.date_range("2021-01-04", periods=30, freq="7D", tz="UTC"), "1wk", "weekly", WEEKS_PER_YEAR),
        (pd.DatetimeIndex([], tz="UTC"), "1d", "sessions", 252),
    ],
)
def test_the_calendar_is_read_off_the_timestamps(times, interval, name, bars_per_year):
    cal = measure(times, interval)
    assert (cal.name, cal.bars_per_year) == (name, pytest.approx(bars_per_year))


def test_a_daily_equity_series_with_holidays_reads_as_sessions():
    days = pd.bdate_range("2019-01-01", "2021-12-31", tz="UTC")
    holidays = days[::29]  # ~9 a year
    cal = measure(days.difference(holidays), "1d")
    assert (cal.name, cal.bars_per_year) == ("sessions", 252)


def test_the_real_btc_usd_bars_are_24x7_at_both_sizes():
    source = SampleSource()
    daily = source.fetch(FetchRequest(("BTC-USD",), "1d"))
    quarter_hours = source.fetch(FetchRequest(("BTC-USD",), "15m"))
    assert measure(daily["ts"], "1d").bars_per_year == 365
    assert measure(quarter_hours["ts"], "15m").bars_per_year == 365 * 96


def test_synthetic_calendars_measure_as_what_they_generate():
    for name, interval, expected in [
        ("24x7", "1h", 365 * 24),
        ("24x5", "15m", 260 * 96),
        ("sessions", "30m", 252 * 13),
        ("sessions", "1h", 252 * 7),
        ("sessions", "5m", 252 * 78),
    ]:
        cal = measure(bar_times(interval, 2_000, name), interval)
        assert (cal.name, cal.bars_per_year) == (name, expected), (name, interval)


def test_a_declared_calendar_needs_a_known_name():
    with pytest.raises(ValueError, match="unknown calendar"):
        calendar("lunar", "1d")
    assert "365 days × 24 bar(s) = 8,760 bars a year" in calendar("24x7", "1h").describe()
