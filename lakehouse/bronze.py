"""Bronze: the raw candles as fetched, append-only, with lineage to replay any batch.

Incremental ingest keeps a watermark per (symbol, interval): the newest bar already in bronze.
A re-run asks the source from there and keeps only rows strictly after it, so it appends
nothing when nothing is new. `--backfill` ignores the watermark (silver's MERGE makes the
repeated history harmless). Bars in the future do not move the watermark: a bad row must not
stop the good ones from being fetched.
"""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

WATERMARK = "watermark_ts"


def watermarks(bronze_df: DataFrame, now: datetime) -> DataFrame:
    """(symbol, interval, watermark_ts): the newest non-future bar per series."""
    return (
        bronze_df.where(F.col("ts").isNotNull() & (F.col("ts") <= F.lit(now)))
        .groupBy("symbol", "interval")
        .agg(F.max("ts").alias(WATERMARK))
    )


def only_new_rows(candles_df: DataFrame, watermarks_df: DataFrame) -> DataFrame:
    """Rows after their series' watermark; series without one, and rows without a usable ts
    (which silver will quarantine), pass through."""
    is_new: Column = F.col(WATERMARK).isNull() | F.col("ts").isNull() | (F.col("ts") > F.col(WATERMARK))
    return candles_df.join(watermarks_df, ["symbol", "interval"], "left").where(is_new).drop(WATERMARK)


def with_lineage(candles_df: DataFrame, *, source: str, batch_id: str, ingested_at: datetime) -> DataFrame:
    """Add the columns that let silver trace and replay every row: source, batch, row id, time.

    `record_id` is unique within the batch (monotonically_increasing_id: no shuffle, unlike a
    global row_number that would pull a 10 M-row batch into one partition)."""
    return candles_df.select(
        "*",
        F.lit(source).alias("source"),
        F.lit(batch_id).alias("batch_id"),
        F.monotonically_increasing_id().alias("record_id"),
        F.lit(ingested_at).cast("timestamp").alias("ingested_at"),
    )
