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

from collections.abc import Callable

import pandas as pd

from lakehouse.sources import FetchRequest, SourceError, canonical_frame, clip_to_request


def _load_arch(module: str) -> pd.DataFrame:
    import importlib

    raw = importlib.import_module(f"arch.data.{module}").load()
    return pd.DataFrame(
        {
            "ts": raw.index,
            "open": raw["Open"].to_numpy(),
            "high": raw["High"].to_numpy(),
            "low": raw["Low"].to_numpy(),
            "close": raw["Close"].to_numpy(),
            "adj_close": raw["Adj Close"].to_numpy(),
            "volume": raw["Volume"].to_numpy(),
        }
    )


def _load_msft() -> pd.DataFrame:
    from pmdarima.datasets import load_msft

    raw = load_msft()
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
