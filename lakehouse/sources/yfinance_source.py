"""Yahoo Finance through `yfinance`: one batched download for all symbols of an interval.

Price policy: we ask for unadjusted OHLC plus `Adj Close` (`auto_adjust=False`) and store both
in bronze exactly as Yahoo sent them; silver derives the adjusted OHLC from them (see
`lakehouse.silver`), the one place where adjustment happens for every source.

Failures and retries: yfinance usually does not raise when Yahoo is unreachable (it logs and
returns an empty or partly empty frame), but it can raise (a connection reset, a JSON error from a
throttled endpoint). Both are treated alike: the symbols still without rows are downloaded again,
with exponential backoff and jitter (tenacity), up to `attempts` calls in all.

When the attempts run out:

* no symbol has rows: a `SourceError` that names the symbols, the interval and the last
  exception yfinance raised (chained as its cause), so the job stops with a message, not a
  traceback, and writes nothing;
* some symbols have rows (a partial result): those rows are returned and get written, and the
  symbols still missing are named on stderr with the last error. Nothing is lost by writing the
  partial result: a missing symbol's watermark did not move, so the next ingest asks for it
  again from where it stopped (or from the beginning), and the ingest job names it in its
  summary (`missing_symbols`). Failing the whole fetch instead would throw away the rows that did
  arrive and hold back every other symbol because of one.

An answer in a shape we do not understand (`frame_from_download` raising `SourceError`) is not
retried: asking again gives the same shape.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from lakehouse.sources import FetchRequest, SourceError, canonical_frame, clip_to_request, utc_timestamp

# How far back Yahoo serves each interval (None: the whole history). Yahoo's documented limits are
# 60 days for sub-hourly bars and 730 for hourly; a day less keeps the first request inside them
# whatever the hour it is asked at.
HISTORY_LIMIT: dict[str, timedelta | None] = {
    "1wk": None,
    "1d": None,
    "1h": timedelta(days=729),
    "30m": timedelta(days=59),
    "15m": timedelta(days=59),
    "5m": timedelta(days=59),
}
_FIELDS = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Adj Close": "adj_close",
    "Volume": "volume",
}


class _SymbolsMissing(Exception):
    """Raised inside a retry attempt while some symbols have no rows yet (the retry trigger)."""

    def __init__(self, symbols: list[str]) -> None:
        super().__init__(", ".join(symbols))
        self.symbols = symbols


def frame_from_download(raw: pd.DataFrame | None, symbols: list[str], interval: str) -> pd.DataFrame:
    """Turn yf.download's wide frame (MultiIndex (field, ticker) columns, or flat for one ticker)
    into canonical long rows. Rows where every price is NaN are the padding yfinance adds when it
    aligns tickers with different trading calendars, not records, and are left out."""
    columns = ["symbol", "ts", *_FIELDS.values()]
    if raw is None or raw.empty:
        return pd.DataFrame(columns=columns)
    if isinstance(raw.columns, pd.MultiIndex):
        field_level = next(
            (i for i in range(raw.columns.nlevels) if "Close" in set(raw.columns.get_level_values(i))), None
        )
        if field_level is None:
            raise SourceError(f"unexpected yfinance columns: {list(raw.columns)[:6]}")
        ticker_level = 1 - field_level
        long = raw.stack(level=ticker_level, future_stack=True)
        long.index = long.index.set_names(["ts", "symbol"])
        long = long.reset_index()
    else:
        if len(symbols) != 1:
            raise SourceError("yfinance returned flat columns for several symbols; cannot tell them apart")
        long = raw.rename_axis("ts").reset_index().assign(symbol=symbols[0])
    missing = [f for f in ("Open", "High", "Low", "Close", "Volume") if f not in long.columns]
    if missing:
        raise SourceError(f"yfinance frame lacks fields {missing}")
    if "Adj Close" not in long.columns:
        long["Adj Close"] = long["Close"]
    long = long.rename(columns=_FIELDS)
    index_ts = pd.DatetimeIndex(long["ts"])
    long["ts"] = index_ts.tz_localize("UTC") if index_ts.tz is None else index_ts.tz_convert("UTC")
    prices = ["open", "high", "low", "close", "adj_close"]
    long = long.loc[~long[prices].isna().all(axis=1), columns]
    return long.assign(interval=interval)


class YFinanceSource:
    name = "yfinance"

    def __init__(
        self,
        download: Callable[..., pd.DataFrame | None] | None = None,
        attempts: int = 4,
        initial_wait_s: float = 2.0,
        max_wait_s: float = 30.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if download is None:
            import yfinance

            download = yfinance.download
        self._download = download
        self._attempts = attempts
        self._wait = wait_exponential_jitter(initial=initial_wait_s, max=max_wait_s)
        self._now = now

    def _window(self, request: FetchRequest) -> dict[str, object]:
        limit = HISTORY_LIMIT[request.interval]
        start = utc_timestamp(request.start) if request.start is not None else None
        if limit is not None:
            earliest = pd.Timestamp(self._now()) - limit
            if start is None or start < earliest:
                if start is not None:
                    print(
                        f"yfinance: {request.interval} history is limited to {limit.days} days; "
                        f"fetching from {earliest:%Y-%m-%d} instead of {start:%Y-%m-%d}",
                        file=sys.stderr,
                    )
                start = earliest
        window: dict[str, object] = {}
        if start is None and request.end is None:
            window["period"] = "max"
        if start is not None:
            window["start"] = start.strftime("%Y-%m-%d")
        if request.end is not None:
            window["end"] = utc_timestamp(request.end).strftime("%Y-%m-%d")
        return window

    def fetch(self, request: FetchRequest) -> pd.DataFrame:
        if not request.symbols:
            raise SourceError("the yfinance source needs --symbols")
        if request.interval not in HISTORY_LIMIT:
            raise SourceError(f"yfinance interval {request.interval!r} unsupported; use {list(HISTORY_LIMIT)}")
        pending = list(request.symbols)
        window = self._window(request)
        got: list[pd.DataFrame] = []
        last_error: Exception | None = None
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self._attempts),
                wait=self._wait,
                retry=retry_if_exception_type(_SymbolsMissing),
            ):
                with attempt:
                    try:
                        raw = self._download(
                            tickers=pending,
                            interval=request.interval,
                            auto_adjust=False,
                            actions=False,
                            group_by="column",
                            multi_level_index=True,
                            progress=False,
                            threads=True,
                            **window,
                        )
                    except Exception as exc:  # any failure of the download is retried
                        last_error = exc
                        raise _SymbolsMissing(pending) from exc
                    frame = frame_from_download(raw, pending, request.interval)
                    if not frame.empty:
                        got.append(frame)
                    pending = [s for s in pending if s not in set(frame["symbol"])]
                    if pending:
                        raise _SymbolsMissing(pending)
        except RetryError:
            pass
        raised = f"; the last download raised {type(last_error).__name__}: {last_error}" if last_error else ""
        if not got:
            raise SourceError(
                f"yfinance returned no rows for {', '.join(request.symbols)} ({request.interval}, {window}) "
                f"after {self._attempts} attempts{raised}. Yahoo is unreachable (offline?) or the symbols are "
                "unknown. Use --source sample for the bundled offline data."
            ) from last_error
        if pending:
            print(
                f"yfinance: no {request.interval} rows for {', '.join(pending)} after {self._attempts} attempts"
                f"{raised}; writing the {len(request.symbols) - len(pending)} other symbol(s), the next ingest "
                "asks for the missing ones again",
                file=sys.stderr,
            )
        return clip_to_request(canonical_frame(pd.concat(got, ignore_index=True)), request)
