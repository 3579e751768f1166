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
from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from lakehouse.feature_spec import FEATURE_NAMES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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


@dataclass(frozen=True)
class TrainingData:
    """Warm gold rows of one interval, sorted by (ts, symbol); labels null on each symbol's last bar."""

    frame: pd.DataFrame
    interval: str
    table: str
    table_version: int | None

    @property
    def labeled(self) -> pd.DataFrame:
        return self.frame[self.frame["label_up"].notna()].reset_index(drop=True)

    @property
    def latest(self) -> pd.DataFrame:
        """Each symbol's newest row: what serving predicts from."""
        return self.frame.sort_values("ts").groupby("symbol", sort=True).tail(1).reset_index(drop=True)


class NoRowsForSymbols(LookupError):
    """The requested symbols have no warm gold rows; the message names the symbols the table holds."""


def prepare(frame: pd.DataFrame, log: Callable[[str], None] = print) -> pd.DataFrame:
    """Sort, type and drop rows an estimator cannot take (non-finite inputs), saying how many."""
    frame = frame.sort_values(["ts", "symbol"]).reset_index(drop=True)
    inputs = frame[list(MODEL_FEATURES)].to_numpy(dtype=np.float64)
    finite = np.isfinite(inputs).all(axis=1)
    if not finite.all():
        log(f"[train] dropping {int((~finite).sum())} warm row(s) with a non-finite feature")
    frame = frame[finite].reset_index(drop=True)
    frame["label_up"] = frame["label_up"].astype("Float64")
    return frame


def matrix(frame: pd.DataFrame, columns: tuple[str, ...] = MODEL_FEATURES) -> np.ndarray:
    """float32 inputs: tree ensembles split on float32 anyway, and ONNX then agrees to ~1e-7."""
    return frame[list(columns)].to_numpy(dtype=np.float32)


def load(
    spark: SparkSession,
    root: str,
    interval: str,
    symbols: tuple[str, ...] = (),
    log: Callable[[str], None] = print,
) -> TrainingData:
    """Read warm rows of gold/features_<interval> and the Delta version that was read.

    Symbols that select no row are an error naming what the table holds: an empty frame would
    otherwise reach scikit-learn, whose "Found array with 0 sample(s)" says nothing of the cause."""
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.tables import gold_features

    table = gold_features(interval)
    if not delta_io.exists(spark, table, root):
        raise FileNotFoundError(f"{table.path(root)} does not exist: run build_features first")
    version = delta_io.version(spark, table, root)
    df = spark.read.format("delta").option("versionAsOf", version).load(table.path(root)).where(F.col("is_warm"))
    if symbols:
        df = df.where(F.col("symbol").isin(*symbols))
    columns = [*ID_COLUMNS, "open", "high", "low", "volume", *MODEL_FEATURES, *LABEL_COLUMNS]
    columns = list(dict.fromkeys(columns))
    frame = cast(pd.DataFrame, df.select(*columns).toPandas())
    if symbols and frame.empty:
        held = sorted(
            r["symbol"]
            for r in spark.read.format("delta")
            .option("versionAsOf", version)
            .load(table.path(root))
            .where(F.col("is_warm"))
            .select("symbol")
            .distinct()
            .collect()
        )
        raise NoRowsForSymbols(
            f"{table.name}@v{version} has no warm rows for {', '.join(symbols)}; "
            f"it holds {', '.join(held) or 'no symbol'}"
        )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return TrainingData(prepare(frame, log), interval, table.name, version)
