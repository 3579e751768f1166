"""What the models see: gold feature rows turned into arrays, and which columns are inputs.

Pooled training (one model across symbols) needs inputs that mean the same thing for every
symbol, so price-level columns (moving averages, MACD and ATR in price units, Bollinger bands,
average volume) are left out: a 2,000-point index and a $50 stock would otherwise be told apart
by level, not by behaviour. What remains are returns, ratios, oscillators and shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lakecontract.feature_spec import FEATURE_NAMES
from lakehouse.calendars import Calendar, measure

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession
    from pyspark.sql import DataFrame as SparkFrame

PRICE_LEVEL = re.compile(r"^(sma|ema|bb_mid|bb_upper|bb_lower)_\d+$|^(macd|macd_signal|macd_hist|atr_14|vol_sma_20)$")
MODEL_FEATURES: tuple[str, ...] = tuple(n for n in FEATURE_NAMES if not PRICE_LEVEL.match(n))

# The LSTM reads a short sequence of per-bar values; returns and normalised features, no levels.
LSTM_FEATURES: tuple[str, ...] = (
    "ret_1",
    "volatility_5",
    "volatility_20",
    "dist_sma_5",
    "dist_sma_20",
    "rsi_14",
    "bb_pctb_20",
    "vol_z_20",
    "body",
    "KLEN",
    "atr_pct_14",
)

ID_COLUMNS = ("symbol", "ts", "close")
LABEL_COLUMNS = ("label_up", "label_ret_1")
PRICE_COLUMNS = ("open", "high", "low", "volume")

DEFAULT_MAX_ROWS = 1_000_000
"""`--train-max-rows`: what the driver-side models (scikit-learn, the LSTM) may hold. One million rows of
99 float32 inputs are ~0.4 GB per copy; `driver_bytes_estimate` says what the whole job needs."""


@dataclass(frozen=True)
class TrainingData:
    """Warm gold rows of one interval on the driver, sorted by (ts, symbol); labels null on each symbol's last bar.

    `frame` is bounded (`load`'s `max_rows`, newest rows of each symbol first); `rows` is the Spark
    DataFrame of every usable warm row, not collected, for families that fit on the cluster."""

    frame: pd.DataFrame
    interval: str
    table: str
    table_version: int | None
    rows: SparkFrame | None = None
    rows_available: int | None = None

    @cached_property
    def calendar(self) -> Calendar:
        """The calendar of these bars (every symbol's timestamps together, as the backtest's portfolio
        holds them): what Sharpe, CAGR and turnover are annualised by."""
        return measure(self.frame["ts"], self.interval)

    @cached_property
    def labeled(self) -> pd.DataFrame:
        return self.frame[self.frame["label_up"].notna()].reset_index(drop=True)

    @property
    def latest(self) -> pd.DataFrame:
        """Each symbol's newest row: what serving predicts from."""
        return self.frame.sort_values("ts").groupby("symbol", sort=True).tail(1).reset_index(drop=True)


class NoRowsForSymbols(LookupError):
    """The requested symbols have no warm gold rows; the message names the symbols the table holds."""


def matrix(frame: pd.DataFrame, columns: tuple[str, ...] = MODEL_FEATURES) -> np.ndarray:
    """float32 inputs: tree ensembles split on float32 anyway, and ONNX then agrees to ~1e-7."""
    return frame[list(columns)].to_numpy(dtype=np.float32)


def per_symbol_limit(counts: dict[str, int], max_rows: int) -> int | None:
    """The largest L with Σ min(rows of s, L) ≤ max_rows: each symbol keeps its newest L rows, and a
    symbol with less history leaves its share to the others. None when every row fits."""
    if max_rows < 1:
        raise ValueError(f"the row cap must be at least 1, got {max_rows}")
    sizes = sorted(counts.values())
    if sum(sizes) <= max_rows:
        return None
    left, remaining = max_rows, len(sizes)
    for size in sizes:
        share = left // remaining
        if size > share:
            return share
        left -= size
        remaining -= 1
    return None  # unreachable: the sum exceeded max_rows


def driver_bytes_estimate(rows: int, dtype: type = np.float32) -> int:
    """What the driver holds for `rows` rows on top of the process before it loads: the input matrix three
    times over (the Arrow batches as they arrive, the filled array, one fold's training copy), the float64
    ids, prices and labels, and a fixed allowance for Arrow."""
    width = np.dtype(dtype).itemsize * len(MODEL_FEATURES)
    per_row = 3 * width + 8 * (len(ID_COLUMNS) + len(PRICE_COLUMNS) + len(LABEL_COLUMNS) + 2)
    return rows * per_row + ARROW_SLACK


ARROW_SLACK = 64 * 2**20
"""Arrow's allocator and the batch in flight: a fixed allowance on top of the rows."""


def peak_rss_bytes() -> int:
    """This process's peak resident memory (the driver's Python; the JVM is a process of its own)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def finite_inputs(columns: tuple[str, ...] = MODEL_FEATURES) -> Column:
    """True where every input is a number an estimator can take: Σ x·0 is 0 when every x is finite, NaN
    when one is ±inf or NaN (NaN from pandas stays NaN in Spark, not null), null when one is null. One
    small expression instead of three checks per column, which Spark took seconds to plan; written as SQL,
    so it is one call into the JVM rather than one per column."""
    from pyspark.sql import functions as F

    zeros = " + ".join(f"CAST(`{c}` AS DOUBLE) * 0.0" for c in columns)
    return F.expr(f"COALESCE(({zeros}) = 0.0, false)")


def load(
    spark: SparkSession,
    root: str,
    interval: str,
    symbols: tuple[str, ...] = (),
    log: Callable[[str], None] = print,
    max_rows: int = DEFAULT_MAX_ROWS,
    dtype: type = np.float32,
) -> TrainingData:
    """Read warm rows of gold/features_<interval> and the Delta version that was read.

    At most `max_rows` rows reach the driver, each symbol's newest first (`per_symbol_limit`), as
    `dtype` arrays filled from Arrow batches: no float64 pandas copy of the table on the way.
    Symbols that select no row are an error naming what the table holds: an empty frame would
    otherwise reach scikit-learn, whose "Found array with 0 sample(s)" says nothing of the cause."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.tables import gold_features

    table = gold_features(interval)
    if not delta_io.exists(spark, table, root):
        raise FileNotFoundError(f"{table.path(root)} does not exist: run build_features first")
    version = delta_io.version(spark, table, root)
    every = spark.read.format("delta").option("versionAsOf", version).load(table.path(root))
    warm = every.where(F.col("is_warm"))
    if symbols:
        warm = warm.where(F.col("symbol").isin(*symbols))
    finite = finite_inputs()
    rows = warm.where(finite).select(*ID_COLUMNS, *MODEL_FEATURES, *LABEL_COLUMNS)
    total = every.count()  # from the Delta log's statistics: no scan
    limit: int | None = None
    if total <= max_rows:  # every row fits: no per-symbol counts, no window; non-finite rows skipped as they come
        chosen, bound = warm.withColumn("_usable", finite), total
    else:
        counts = warm.groupBy("symbol").agg(F.sum(finite.cast("int")).alias("usable")).collect()
        usable = {r["symbol"]: int(r["usable"] or 0) for r in counts}
        limit = per_symbol_limit(usable, max_rows)
        if limit == 0:
            raise ValueError(f"a cap of {max_rows:,} rows is less than one row for each of {len(usable):,} symbols")
        chosen, bound = warm.withColumn("_usable", finite), sum(usable.values())
        if limit is not None:  # newest first among the usable rows (the unusable ones are only counted)
            newest = Window.partitionBy("symbol", "_usable").orderBy(F.col("ts").desc())
            chosen = chosen.withColumn("_newest", F.row_number().over(newest))
            chosen = chosen.where(~F.col("_usable") | (F.col("_newest") <= limit))
            bound = sum(min(c, limit) for c in usable.values())
    frame, dropped = _collect(chosen.orderBy("ts", "symbol"), bound, dtype)
    if symbols and frame.empty:
        held = sorted(r["symbol"] for r in every.where(F.col("is_warm")).select("symbol").distinct().collect())
        raise NoRowsForSymbols(
            f"{table.name}@v{version} has no warm rows for {', '.join(symbols)}; "
            f"it holds {', '.join(held) or 'no symbol'}"
        )
    if dropped:
        log(f"[train] dropping {dropped} warm row(s) with a non-finite feature")
    available = len(frame) if limit is None else sum(usable.values())
    cap = f"cap {max_rows:,}" + ("" if limit is None else f": each symbol's newest {limit:,}")
    log(f"[train] {table.name}@v{version}: {len(frame):,} of {available:,} usable warm rows on the driver ({cap})")
    return TrainingData(frame, interval, table.name, version, rows=rows, rows_available=available)


def _collect(df: SparkFrame, bound: int, dtype: type) -> tuple[pd.DataFrame, int]:
    """(`df`'s usable rows as a frame, how many were not usable). The MODEL_FEATURES block is one
    preallocated `dtype` array of `bound` rows, filled batch by batch from Arrow (each batch released
    once copied; rows whose `_usable` is false skipped); ids, prices and labels float64."""

    others = [*ID_COLUMNS, *PRICE_COLUMNS, *LABEL_COLUMNS]
    spark_type = "FLOAT" if np.dtype(dtype) == np.float32 else "DOUBLE"
    df = df.selectExpr("_usable", *others, *[f"CAST(`{c}` AS {spark_type}) AS `{c}`" for c in MODEL_FEATURES])
    inputs: np.ndarray = np.empty((bound, len(MODEL_FEATURES)), dtype=dtype)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in others}
    batches = df._collect_as_arrow(split_batches=True)  # pyspark 3.5's Arrow collect (public `toArrow` is Spark 4)
    filled = dropped = 0
    while batches:
        batch = batches.pop(0)
        keep = batch.column(0).to_numpy(zero_copy_only=False)
        size = int(keep.sum())
        dropped += len(keep) - size
        if filled + size > bound:
            raise RuntimeError(f"the table changed while it was read: more than the {bound:,} rows counted")
        first = 1 + len(others)
        for j in range(len(MODEL_FEATURES)):
            inputs[filled : filled + size, j] = batch.column(first + j).to_numpy(zero_copy_only=False)[keep]
        for j, name in enumerate(others):
            parts[name].append(batch.column(1 + j).to_pandas().to_numpy()[keep])
        filled += size
        del batch
    frame = pd.DataFrame(inputs[:filled], columns=list(MODEL_FEATURES), copy=False)
    for name in others:
        frame[name] = np.concatenate(parts[name]) if parts[name] else np.empty(0)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    frame["label_up"] = frame["label_up"].astype("Float64")
    return frame, dropped
