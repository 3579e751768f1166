"""Gold features on DataFrames: one `applyInPandas` per symbol over lakecontract/feature_math.py.

Every feature is computed by `feature_math.compute` on one symbol's bars in numpy, in O(bars)
whatever its window (see that module for the algorithms and why Spark's own sliding frames are
not used: O(rows × window) in Spark 3.5). Spark's part is to group the bars by symbol, ship them
through Arrow and back, and cast the results to the gold schema.

Two entry points, one UDF:
- `with_features(candles)` computes each symbol from its first bar;
- `with_resumed_features(tail)` computes, per symbol, the bars from `_keep_from` on, given the
  `CONTEXT_BARS` bars before it and the stored state of the last of those (`_resume_*` columns,
  from the gold row of that bar); a symbol whose `_resume_bar_no` is null is computed from its first
  bar and only its rows from `_keep_from` are returned. The result equals a full rebuild bit for bit.
"""

from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakecontract.feature_math import OUTPUT_COLUMNS, RESUME_COLUMNS, STATE_COLUMNS, compute, produced_names
from lakecontract.feature_spec import FEATURE_NAMES

BASE_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")
KEEP_FROM = "_keep_from"
RESUME_PREFIX = "_resume_"
_OHLCV = ("open", "high", "low", "close", "volume")

_UDF_SCHEMA = T.StructType(
    [
        T.StructField("symbol", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        *[T.StructField(c, T.DoubleType()) for c in _OHLCV],
        *[T.StructField(c, T.BooleanType() if c == "is_warm" else T.DoubleType()) for c in OUTPUT_COLUMNS],
    ]
)


def _check_spec() -> None:
    produced = produced_names()
    missing, extra = set(FEATURE_NAMES) - produced, produced - set(FEATURE_NAMES)
    if missing or extra:
        raise RuntimeError(f"features out of sync with feature_spec: missing {sorted(missing)}, extra {sorted(extra)}")


def per_symbol(pdf: pd.DataFrame) -> pd.DataFrame:
    """One symbol's bars (any order) → its output rows (from `_keep_from` on, when given)."""
    pdf = pdf.sort_values("ts", kind="stable").reset_index(drop=True)
    resume, context = None, 0
    keep_from = pdf[KEEP_FROM].iloc[0] if KEEP_FROM in pdf.columns else None
    if keep_from is not None and pd.notna(pdf[f"{RESUME_PREFIX}bar_no"].iloc[0]):
        context = int((pdf["ts"] < keep_from).sum())
        resume = {c: float(pdf[f"{RESUME_PREFIX}{c}"].iloc[0]) for c in RESUME_COLUMNS}
    arrays = (pdf[c].to_numpy(dtype=float) for c in _OHLCV)
    cols = compute(*arrays, context=context, resume=resume)
    data = {c: pdf[c].to_numpy()[context:] for c in ("symbol", "ts", *_OHLCV)}
    data.update({name: cols[name] for name in OUTPUT_COLUMNS})
    data["is_warm"] = cols["is_warm"] > 0
    frame = pd.DataFrame(data)
    if resume is None and keep_from is not None and pd.notna(keep_from):
        frame = frame[frame["ts"] >= keep_from]
    return frame


def _to_gold_types(df: DataFrame) -> DataFrame:
    return df.withColumn("label_up", F.col("label_up").cast("int")).withColumn("bar_no", F.col("bar_no").cast("int"))


def with_features(candles_df: DataFrame) -> DataFrame:
    """Candles of one interval → (symbol, ts, OHLCV, features…, labels, bar_no, is_warm, state…)."""
    _check_spec()
    grouped = candles_df.select(*BASE_COLUMNS).groupBy("symbol")
    return _to_gold_types(grouped.applyInPandas(per_symbol, _UDF_SCHEMA))


def with_resumed_features(tail_df: DataFrame) -> DataFrame:
    """Bars with `_keep_from` and `_resume_*` per symbol → the output rows from `_keep_from` on."""
    _check_spec()
    columns = [*BASE_COLUMNS, KEEP_FROM, *(f"{RESUME_PREFIX}{c}" for c in RESUME_COLUMNS)]
    return _to_gold_types(tail_df.select(*columns).groupBy("symbol").applyInPandas(per_symbol, _UDF_SCHEMA))


__all__ = ["BASE_COLUMNS", "STATE_COLUMNS", "per_symbol", "with_features", "with_resumed_features"]
