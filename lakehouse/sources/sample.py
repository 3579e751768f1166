"""Real daily history that PyPI packages ship, so the default pipeline runs offline.

| symbol | what it is                | package            | span      | licence |
|--------|---------------------------|--------------------|-----------|---------|
| ^GSPC  | S&P 500 index             | arch (sp500)       | 1999–2018 | NCSA    |
| ^IXIC  | NASDAQ Composite index    | arch (nasdaq)      | 1999–2018 | NCSA    |
| MSFT   | Microsoft common stock    | pmdarima (msft)    | 1986–2017 | MIT     |

The arch frames carry an `Adj Close`; the pmdarima MSFT series was published already split-
and dividend-adjusted (its 1986 closes are ~0.07), so its `adj_close` is its close.
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


def _load_arch(name: str) -> pd.DataFrame:
    raw = pd.read_csv(package_data("arch", "data", name, f"{name}.csv.gz"))
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(raw["Date"]),
            "open": raw["Open"],
            "high": raw["High"],
            "low": raw["Low"],
            "close": raw["Close"],
            "adj_close": raw["Adj Close"],
            "volume": raw["Volume"],
        }
    )


def _load_msft() -> pd.DataFrame:
    with tarfile.open(package_data("pmdarima", "datasets", "data", "msft.tar.gz"), "r:*") as tar:
        raw = pd.read_csv(tar.extractfile(tar.getnames()[0]), header=0)  # one CSV per archive
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(raw["Date"]),
            "open": raw["Open"],
            "high": raw["High"],
            "low": raw["Low"],
            "close": raw["Close"],
            "adj_close": raw["Close"],
            "volume": raw["Volume"],
        }
    )


BUNDLED: dict[str, Callable[[], pd.DataFrame]] = {
    "^GSPC": lambda: _load_arch("sp500"),
    "^IXIC": lambda: _load_arch("nasdaq"),
    "MSFT": _load_msft,
}


class SampleSource:
    name = "sample"

    def fetch(self, request: FetchRequest) -> pd.DataFrame:
        if request.interval != "1d":
            raise SourceError(
                f"the sample source ships daily bars only; interval {request.interval!r} needs "
                "--source yfinance (online) or --source synthetic"
            )
        symbols = request.symbols or tuple(BUNDLED)
        unknown = [s for s in symbols if s not in BUNDLED]
        if unknown:
            raise SourceError(f"the sample source has no {unknown}; it bundles {', '.join(BUNDLED)}")
        frames = []
        for symbol in symbols:
            frame = BUNDLED[symbol]()
            frames.append(frame.assign(symbol=symbol, interval="1d"))
        return clip_to_request(canonical_frame(pd.concat(frames, ignore_index=True)), request)
