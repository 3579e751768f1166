"""The silver rules a bar must pass: their names and order, the interval grid, and a Spark-free check.

Silver (`lakehouse/silver.py`) applies these rules to bronze rows as Spark Columns and quarantines
what fails; the API applies them with `series_failures` to the bars a caller sends to
`POST /predict/candles` and answers 422 naming the rule and the bar. The names, their reporting
order and the grid are defined here once and imported by both. Each side's evaluation is checked
against the same plain-Python oracle (tests/silver_reference.py, written from silver's rule table)
and the same hand-worked verdicts (tests/test_silver_rules.py, tests/test_candle_rules.py), so a
bar the lake would quarantine is one the API refuses, for the same rule.

A caller's bars are one series (one symbol and interval) in one batch, so of silver's batch rules
only the same-timestamp ones apply: two bars with one ts and different values are all
`conflicting_duplicate`; an identical repeat is a `duplicate_row` (the first one is kept by silver,
refused here all the same: a client that repeats a bar has a bug worth hearing about).

The caller's prices are taken as they come (silver's adjusted prices are what gold computes on):
there is no `adj_close`, so `missing_value` and `non_positive_price` look at open, high, low, close
(and volume for the first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from lakecontract.constants import INTERVALS

if TYPE_CHECKING:
    import numpy as np

ROW_RULES: tuple[str, ...] = (
    "missing_value",
    "unknown_interval",
    "non_positive_price",
    "ohlc_inconsistent",
    "negative_volume",
    "future_timestamp",
    "off_interval_grid",
)
BATCH_RULES: tuple[str, ...] = ("conflicting_duplicate", "duplicate_row")
RULES: tuple[str, ...] = ROW_RULES + BATCH_RULES

_MINUTE = 60_000_000
GRID_MICROS: dict[str, int] = {
    "5m": 5 * _MINUTE,
    "15m": 15 * _MINUTE,
    "30m": 15 * _MINUTE,
    "1h": 15 * _MINUTE,
    "1d": 1_440 * _MINUTE,
    "1wk": 7 * 1_440 * _MINUTE,
}
"""The step each interval's ts must be a whole multiple of, counted from GRID_ORIGIN_MICROS (UTC);
lakehouse/silver.py's docstring says why 30m and 1h use quarter hours."""
GRID_ORIGIN_MICROS: dict[str, int] = {"1wk": 4 * 1_440 * _MINUTE}
"""Where an interval's grid starts, if not at the Unix epoch: 1970-01-01 was a Thursday and a
weekly bar opens on a Monday (1970-01-05) — yfinance's weekly bars and ISO weeks both do."""

RULE_TEXT: dict[str, str] = {
    "missing_value": "a price or the volume is null, NaN or infinite",
    "unknown_interval": f"the interval is not one of {', '.join(INTERVALS)}",
    "non_positive_price": "a price is ≤ 0",
    "ohlc_inconsistent": "not low ≤ min(open, close) ≤ max(open, close) ≤ high",
    "negative_volume": "the volume is < 0",
    "future_timestamp": "the bar is stamped after the time of the check",
    "off_interval_grid": (
        "ts (UTC) is off its grid: 1wk on a Monday at 00:00, 1d at 00:00, 1h, 30m and 15m on a quarter hour, "
        "5m on a 5-minute mark"
    ),
    "conflicting_duplicate": "another bar has the same ts with different values",
    "duplicate_row": "an identical bar with the same ts came first",
}

OHLC = ("open", "high", "low", "close")


def series_failures(
    interval: str, ts_micros: Sequence[int | None], values: Mapping[str, np.ndarray], now_micros: int
) -> list[list[str]]:
    """For each bar of one series, the rules it breaks in reporting order (empty: accepted).

    `ts_micros` are epoch microseconds (None for a missing ts), `values` holds float arrays for
    open, high, low, close and volume (NaN for a missing value) and may hold adj_close, which then
    counts as a price. As in silver, a bar missing a value is reported with `missing_value` only,
    and only bars that pass every row rule take part in the duplicate rules."""
    import numpy as np

    n = len(ts_micros)
    prices = [np.asarray(values[c], dtype=float) for c in (*OHLC, *(["adj_close"] if "adj_close" in values else []))]
    volume = np.asarray(values["volume"], dtype=float)
    o, h, lo, c = prices[:4]
    ts_known = np.array([t is not None for t in ts_micros], dtype=bool)
    ts = np.array([t if t is not None else 0 for t in ts_micros], dtype=np.int64)
    complete = ts_known & np.isfinite(volume)
    for p in prices:
        complete &= np.isfinite(p)
    with np.errstate(invalid="ignore"):
        broken = {
            "unknown_interval": np.full(n, interval not in INTERVALS),
            "non_positive_price": np.minimum.reduce(prices) <= 0,
            "ohlc_inconsistent": ~((lo <= np.minimum(o, c)) & (np.maximum(o, c) <= h)),
            "negative_volume": volume < 0,
            "future_timestamp": ts > now_micros,
            "off_interval_grid": (
                ((ts - GRID_ORIGIN_MICROS.get(interval, 0)) % GRID_MICROS[interval] != 0)
                if interval in GRID_MICROS
                else np.zeros(n, bool)
            ),
        }
    failures: list[list[str]] = [[] for _ in range(n)]
    flagged = ~complete
    for rule in ROW_RULES[1:]:
        flagged |= broken[rule]
    for i in np.flatnonzero(flagged).tolist():  # most bars pass: only the others get names
        failures[i] = [rule for rule in ROW_RULES[1:] if broken[rule][i]] if complete[i] else ["missing_value"]
    _duplicate_failures(failures, ts, [*prices, volume])
    return failures


def _duplicate_failures(failures: list[list[str]], ts: np.ndarray, columns: list[np.ndarray]) -> None:
    """Silver's batch rules on the bars that passed every row rule (in request order)."""
    import numpy as np

    passed = [i for i, fails in enumerate(failures) if not fails]
    if len(np.unique(ts[passed])) == len(passed):  # the usual case: no two bars share a ts
        return
    seen: dict[int, list[int]] = {}
    for i, fails in enumerate(failures):
        if not fails:
            seen.setdefault(int(ts[i]), []).append(i)
    for group in seen.values():
        if len(group) < 2:
            continue
        rows = {tuple(float(col[i]) for col in columns) for i in group}
        if len(rows) > 1:
            for i in group:
                failures[i].append("conflicting_duplicate")
        else:
            for i in group[1:]:
                failures[i].append("duplicate_row")
