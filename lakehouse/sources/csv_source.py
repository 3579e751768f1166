"""A user's CSV export of candles.

Columns (header names, case-insensitive, in any order):

| column      | required | meaning                                                                 |
|-------------|----------|-------------------------------------------------------------------------|
| symbol      | yes      | ticker as the user names it                                             |
| ts          | yes      | bar open time, ISO 8601, UTC unless it has an offset (alias: date, timestamp, datetime) |
| open, high, low, close | yes | prices in the instrument's currency                              |
| volume      | yes      | traded volume (shares, contracts, coins)                                |
| adj_close   | no       | split/dividend-adjusted close; defaults to close (alias: "adj close")   |
| interval    | no       | 5m, 15m, 30m, 1h, 1d or 1wk; without it, the file is one interval (the run's only one) |

The path is a local file or an object, `s3://bucket/key` (read with boto3 through the lake's
object store, so `--s3-endpoint` applies): a CSV dropped under `<lake>/raw/` on AWS is read where
it lies. An unknown or missing column, or a file that is not CSV at all, is refused with a message
that says what is wrong, before anything is written. Values that do not parse (a word where a
price should be, a malformed date) become nulls and are quarantined by silver with a rule; they are never dropped here.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from lakecontract.objectstore import ObjectNotFound, ObjectStore, StoreUnavailable
from lakehouse.config import SUPPORTED_INTERVALS
from lakehouse.sources import FetchRequest, SourceError, canonical_frame, clip_to_request

REQUIRED = ("symbol", "ts", "open", "high", "low", "close", "volume")
OPTIONAL = ("adj_close", "interval")
ALIASES = {
    "date": "ts",
    "timestamp": "ts",
    "datetime": "ts",
    "adj close": "adj_close",
    "adjclose": "adj_close",
}


def _normalise_header(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key.replace(" ", "_"))


class CsvSource:
    name = "csv"

    def __init__(self, path: str | Path, single_interval: bool = True, endpoint: str | None = None) -> None:
        self.path = str(path)
        self.single_interval = single_interval
        self.endpoint = endpoint

    def _content(self) -> io.BytesIO | Path:
        if self.path.startswith(("s3://", "s3a://")):
            folder, _, name = self.path.rpartition("/")
            try:
                return io.BytesIO(ObjectStore(folder, endpoint=self.endpoint).read_bytes(name))
            except ObjectNotFound:
                raise SourceError(f"CSV object not found: {self.path}") from None
            except StoreUnavailable as exc:
                raise SourceError(f"cannot read {self.path}: {exc}") from exc
        path = Path(self.path)
        if not path.is_file():
            raise SourceError(f"CSV file not found: {self.path}")
        return path

    def read(self) -> pd.DataFrame:
        """The whole file as strings, with normalised headers, after checking the columns."""
        try:
            raw = pd.read_csv(self._content(), dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise SourceError(f"{self.path} is not a readable CSV file: {str(exc).strip()}") from None
        headers = [_normalise_header(c) for c in raw.columns]
        duplicates = sorted({h for h in headers if headers.count(h) > 1})
        unknown = [c for c, h in zip(raw.columns, headers, strict=True) if h not in REQUIRED + OPTIONAL]
        missing = [c for c in REQUIRED if c not in headers]
        if unknown or missing or duplicates:
            problems = []
            if unknown:
                problems.append(f"unknown column(s) {unknown}")
            if missing:
                problems.append(f"missing column(s) {missing}")
            if duplicates:
                problems.append(f"column(s) given twice {duplicates}")
            raise SourceError(
                f"{self.path}: {'; '.join(problems)}. Expected {', '.join(REQUIRED)} "
                f"and optionally {', '.join(OPTIONAL)} (see lakehouse/sources/csv_source.py)"
            )
        raw.columns = headers
        return raw

    def fetch(self, request: FetchRequest) -> pd.DataFrame:
        raw = self.read()
        if request.symbols and not raw["symbol"].isin(request.symbols).any():
            # Checked on the whole file (every interval): otherwise the run writes nothing, exits 0
            # and reports "nothing new", and the user's file is silently ignored.
            held = sorted(raw["symbol"].dropna().unique())
            raise SourceError(
                f"{self.path} has no rows for the requested symbol(s) {', '.join(request.symbols)}; "
                f"it holds {', '.join(held) or 'no symbols'}. Pass --symbols with some of those, "
                "or leave --symbols out to ingest every symbol in the file"
            )
        if "interval" in raw.columns:
            bad = sorted(set(raw["interval"].dropna()) - set(SUPPORTED_INTERVALS))
            if bad or raw["interval"].isna().any():
                raise SourceError(
                    f"{self.path}: interval values {bad or ['(empty)']} are not among {SUPPORTED_INTERVALS}"
                )
            raw = raw.loc[raw["interval"] == request.interval]
        elif not self.single_interval:
            raise SourceError(
                f"{self.path} has no interval column, so it must be ingested with exactly one --intervals value"
            )
        else:
            raw = raw.assign(interval=request.interval)
        if "adj_close" not in raw.columns:
            raw = raw.assign(adj_close=raw["close"])
        else:
            raw = raw.assign(adj_close=raw["adj_close"].fillna(raw["close"]))
        if request.symbols:
            raw = raw.loc[raw["symbol"].isin(request.symbols)]
        parsed = raw.assign(ts=pd.to_datetime(raw["ts"], utc=True, errors="coerce", format="ISO8601"))
        frame = canonical_frame(parsed)
        # Rows whose ts did not parse are kept (null ts) for silver to quarantine; clip the rest.
        unparsed = frame.loc[frame["ts"].isna()]
        return pd.concat([clip_to_request(frame.loc[frame["ts"].notna()], request), unparsed], ignore_index=True)
