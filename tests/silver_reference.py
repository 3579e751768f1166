"""A plain-Python reading of the silver rules, the oracle the Spark classification is compared to.

Written from the rule table in `lakehouse/silver.py`'s docstring, not from its code: no Spark, no
hashing, values compared with ordinary float equality. A row is a dict with the bronze columns.

* missing_value: symbol, interval or ts is None, or a price/volume is None, NaN or ±inf. Such a
  row is reported with this rule only (the later rules need the values).
* then, in this order, every row rule the row breaks: unknown_interval (not 1d/1h/5m),
  non_positive_price (any of open, high, low, close, adj_close ≤ 0), ohlc_inconsistent
  (not low ≤ min(open, close) ≤ max(open, close) ≤ high), negative_volume (< 0),
  future_timestamp (ts later than the job's start), off_interval_grid (the UTC clock time is not
  one its interval allows: 1d only 00:00:00, 1h only minute 0, 15, 30 or 45, 5m only a minute
  divisible by 5; seconds and microseconds must be zero);
* only rows that break no row rule take part in the batch rules: within one batch, rows of one
  (symbol, interval, ts) whose values differ are all conflicting_duplicate; otherwise every row
  after the first by record_id is a duplicate_row.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

INTERVALS = {"5m", "15m", "30m", "1h", "1d", "1wk"}
PRICE_FIELDS = ("open", "high", "low", "close", "adj_close")
VALUE_FIELDS = (*PRICE_FIELDS, "volume")

Verdict = tuple[str | None, list[str]]

# The minutes of the hour each interval's bars may start at (any hour intraday, hour 0 for 1d and 1wk).
QUARTERS = {0, 15, 30, 45}
ALLOWED_MINUTES = {"1wk": {0}, "1d": {0}, "1h": QUARTERS, "30m": QUARTERS, "15m": QUARTERS, "5m": set(range(0, 60, 5))}


def _on_grid(interval: str, ts: datetime) -> bool:
    """Read off the UTC wall clock, not computed from epoch arithmetic as silver does."""
    clock = ts.astimezone(UTC)
    if clock.second or clock.microsecond:
        return False
    if interval in ("1d", "1wk") and clock.hour != 0:
        return False
    if interval == "1wk" and clock.weekday() != 0:  # Monday
        return False
    return clock.minute in ALLOWED_MINUTES[interval]


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def row_rules(row: dict[str, Any], now: datetime) -> list[str]:
    """The row rules `row` breaks, in reporting order."""
    if row["symbol"] is None or row["interval"] is None or row["ts"] is None:
        return ["missing_value"]
    if not all(_usable(row[f]) for f in VALUE_FIELDS):
        return ["missing_value"]
    broken = []
    if row["interval"] not in INTERVALS:
        broken.append("unknown_interval")
    if any(row[f] <= 0 for f in PRICE_FIELDS):
        broken.append("non_positive_price")
    o, h, lo, c = row["open"], row["high"], row["low"], row["close"]
    if not (lo <= min(o, c) and max(o, c) <= h):
        broken.append("ohlc_inconsistent")
    if row["volume"] < 0:
        broken.append("negative_volume")
    if row["ts"] > now:
        broken.append("future_timestamp")
    if row["interval"] in INTERVALS and not _on_grid(row["interval"], row["ts"]):
        broken.append("off_interval_grid")
    return broken


def classify(rows: list[dict[str, Any]], now: datetime) -> dict[int, Verdict]:
    """record_id → (rule, failed_rules) for one set of bronze rows (record ids unique)."""
    verdicts: dict[int, Verdict] = {}
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        broken = row_rules(row, now)
        if broken:
            verdicts[row["record_id"]] = (broken[0], broken)
        else:
            groups[(row["symbol"], row["interval"], row["ts"], row["batch_id"])].append(row)
    for group in groups.values():
        values = {tuple(r[f] for f in VALUE_FIELDS) for r in group}
        ordered = sorted(group, key=lambda r: r["record_id"])
        for position, row in enumerate(ordered):
            if len(values) > 1:
                verdicts[row["record_id"]] = ("conflicting_duplicate", ["conflicting_duplicate"])
            elif position > 0:
                verdicts[row["record_id"]] = ("duplicate_row", ["duplicate_row"])
            else:
                verdicts[row["record_id"]] = (None, [])
    return verdicts
