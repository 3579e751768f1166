"""Silver rules: which bronze rows become candles and which are quarantined, and why.

Every bronze row ends in exactly one place: accepted (then MERGEd into `silver/candles`) or
quarantined with the first rule it broke (`rule`) and all the rules it broke (`failed_rules`),
so `rows_in = accepted + quarantined` always holds.

Rules, in the order `rule` reports them:

| rule                  | a row is rejected when                                                   |
|-----------------------|--------------------------------------------------------------------------|
| missing_value         | symbol, interval, ts, open, high, low, close, adj_close or volume is null, NaN or infinite |
| unknown_interval      | interval is not 5m, 15m, 30m, 1h, 1d or 1wk                               |
| non_positive_price    | open, high, low, close or adj_close ≤ 0                                   |
| ohlc_inconsistent     | not (low ≤ min(open, close) ≤ max(open, close) ≤ high)                    |
| negative_volume       | volume < 0                                                               |
| future_timestamp      | ts is later than the job's start time                                     |
| off_interval_grid     | ts (UTC) off its grid: 1wk Mon 00:00, 1d 00:00, 1h/30m/15m :00/:15/:30/:45, 5m :x0/:x5 |
| conflicting_duplicate | another row of the same batch has the same key with different values (all such rows) |
| duplicate_row         | an identical row of the same batch came first (the first one is accepted) |

The rule names, their order and the grid live in `lakecontract/candle_rules.py`, which the API
also applies to the bars a caller sends to `POST /predict/candles`.

Why the grid: a bar's key is (symbol, interval, ts), so one trading day stamped twice (a 1d bar at
19:30 UTC beside the 00:00 UTC convention) would be two keys, two candles for one day, and no
duplicate rule could see it. Such a bar is quarantined, not moved onto the grid: we cannot know
which day or hour a source meant. The grid is what the sources emit: the bundled sample, yfinance
daily bars (dates, stored as 00:00 UTC) and synthetic daily bars sit at 00:00 UTC; intraday bars
are tz-aware exchange times converted to UTC, and exchanges open on quarter hours in zones whose
UTC offsets are whole, half or quarter hours, so a real 1h bar starts at :00 or :30 (US equities
open 09:30 ET = 14:30/13:30 UTC), or :15/:45 (NSE opens 09:15 IST = 03:45 UTC) — an "on the
hour" grid would reject every real US-equity hourly bar. 30m bars follow the same opens, so they
get the same quarter-hour grid; 15m bars sit on quarter hours anyway; a 5m bar on a 5-minute mark.
A weekly bar opens on a Monday at 00:00 UTC (yfinance's weekly bars are dated the Monday of their
week, crypto's too). 24/7 markets emit the same grids: a BTC-USD 15m bar starts on a quarter hour
whatever the offset it was published with (+01:00 in summer, +00:00 in winter), and a trailing
partial bar stamped 13:50:02 is quarantined as off the grid, not taken as a bar.

Across batches the newest batch wins: a later ingest of the same key with other values is a
correction (Yahoo revises bars), applied by the MERGE.

Price adjustment happens here and nowhere else: silver `open/high/low/close` are the source's
prices multiplied by `adj_factor = adj_close / close`, i.e. split- and dividend-adjusted, and
`close_unadjusted` keeps the traded close. Volume is left as traded.
"""

from __future__ import annotations

import operator
from datetime import datetime
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from lakecontract.candle_rules import BATCH_RULES, GRID_MICROS, GRID_ORIGIN_MICROS, ROW_RULES
from lakehouse.config import SUPPORTED_INTERVALS
from lakehouse.tables import CANDLE_KEY

PRICES = ("open", "high", "low", "close", "adj_close")
VALUES = (*PRICES, "volume")
REQUIRED = ("symbol", "interval", "ts", *VALUES)


def _finite(col: str) -> Column:
    return ~F.isnan(col) & (F.abs(F.col(col)) != F.lit(float("inf")))


def is_complete() -> Column:
    """True when every required field is present and every value is finite."""
    present = [F.col(c).isNotNull() for c in REQUIRED] + [_finite(c) for c in VALUES]
    all_present = present[0]
    for cond in present[1:]:
        all_present = all_present & cond
    return F.coalesce(all_present, F.lit(False))


def row_rule_conditions(now: datetime, complete: Column) -> dict[str, Column]:
    """Each row rule as a Column that is true when the row breaks it. Rules past the first
    assume complete values, so they are evaluated only on rows that pass missing_value."""
    body_low = F.least("open", "close")
    body_high = F.greatest("open", "close")
    return {
        "missing_value": ~complete,
        "unknown_interval": complete & ~F.col("interval").isin(*SUPPORTED_INTERVALS),
        "non_positive_price": complete & (F.least(*PRICES) <= 0),
        "ohlc_inconsistent": complete & ~((F.col("low") <= body_low) & (body_high <= F.col("high"))),
        "negative_volume": complete & (F.col("volume") < 0),
        "future_timestamp": complete & (F.col("ts") > F.lit(now).cast("timestamp")),
        "off_interval_grid": complete & _off_grid(),
    }


def _off_grid() -> Column:
    """True when a known interval's ts is not a multiple of its grid step (unknown intervals have
    no grid; unknown_interval reports them). Epoch microseconds keep this independent of the
    session time zone."""
    micros = F.unix_micros(F.col("ts"))
    off = (
        (F.col("interval") == name) & ((micros - GRID_ORIGIN_MICROS.get(name, 0)) % step != 0)
        for name, step in GRID_MICROS.items()
    )
    return reduce(operator.or_, off)


def _rules_array(conditions: dict[str, Column], order: tuple[str, ...]) -> Column:
    """The names of the rules a row breaks, in `order` (the shared reporting order)."""
    if set(conditions) != set(order):
        raise RuntimeError(f"silver's conditions {sorted(conditions)} are not the shared rules {sorted(order)}")
    flagged = [F.when(conditions[name], F.lit(name)) for name in order]
    return F.filter(F.array(*flagged), lambda r: r.isNotNull())


def with_row_rule_failures(bronze_df: DataFrame, now: datetime) -> DataFrame:
    flagged = bronze_df.withColumn("_complete", is_complete())
    failed = _rules_array(row_rule_conditions(now, F.col("_complete")), ROW_RULES)
    return flagged.withColumn("failed_rules", failed).drop("_complete")


def with_batch_rule_failures(row_ok_df: DataFrame) -> DataFrame:
    """Flag same-key rows within one batch: differing values conflict, identical ones repeat.

    Rows are compared by a 64-bit hash of their values (two window aggregates instead of
    twelve); a collision would need two different bars of one key in one batch to hash alike."""
    same_key = Window.partitionBy(*CANDLE_KEY, "batch_id")
    hashed = row_ok_df.withColumn("_vh", F.xxhash64(*VALUES))
    flagged = hashed.select(
        "*",
        (F.min("_vh").over(same_key) != F.max("_vh").over(same_key)).alias("_conflict"),
        (F.row_number().over(same_key.orderBy("record_id")) > 1).alias("_repeat"),
    )
    return flagged.withColumn(
        "failed_rules",
        _rules_array(
            {
                "conflicting_duplicate": F.col("_conflict"),
                "duplicate_row": ~F.col("_conflict") & F.col("_repeat"),
            },
            BATCH_RULES,
        ),
    ).drop("_vh", "_conflict", "_repeat")


def classify(bronze_df: DataFrame, now: datetime) -> DataFrame:
    """Bronze rows plus `failed_rules` (empty when accepted) and `rule` (the first, or null)."""
    checked = with_row_rule_failures(bronze_df, now)
    row_ok = checked.where(F.size("failed_rules") == 0).drop("failed_rules")
    row_failed = checked.where(F.size("failed_rules") > 0)
    classified = row_failed.unionByName(with_batch_rule_failures(row_ok))
    return classified.withColumn("rule", F.element_at("failed_rules", 1))


def quarantined(classified_df: DataFrame, now: datetime) -> DataFrame:
    return classified_df.where(F.col("rule").isNotNull()).withColumn("quarantined_at", F.lit(now).cast("timestamp"))


def accepted(classified_df: DataFrame) -> DataFrame:
    return classified_df.where(F.col("rule").isNull())


def latest_per_key(accepted_df: DataFrame) -> DataFrame:
    """One row per key: the newest batch wins (a later ingest is a correction)."""
    newest_first = Window.partitionBy(*CANDLE_KEY).orderBy(
        F.col("ingested_at").desc(), F.col("batch_id").desc(), F.col("record_id").desc()
    )
    return accepted_df.withColumn("_rank", F.row_number().over(newest_first)).where("_rank = 1").drop("_rank")


def to_silver_candles(accepted_df: DataFrame, now: datetime) -> DataFrame:
    """Adjusted OHLC (see module docstring) in the silver schema's columns."""
    factor = F.col("adj_close") / F.col("close")
    return accepted_df.select(
        "symbol",
        "interval",
        "ts",
        *[(F.col(c) * factor).alias(c) for c in ("open", "high", "low", "close")],
        "volume",
        F.col("close").alias("close_unadjusted"),
        factor.alias("adj_factor"),
        "source",
        "batch_id",
        "ingested_at",
        F.lit(now).cast("timestamp").alias("updated_at"),
    )


# Columns whose change makes the MERGE rewrite a silver row; lineage columns alone do not.
SILVER_VALUE_COLUMNS = ("open", "high", "low", "close", "volume", "close_unadjusted", "adj_factor")
