"""The table registry: every Delta table of the lake, its schema, key and partitioning.

This is the only module that turns a table name into a path under the lake root; writers and
readers ask it, so moving a table or changing a key happens in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

CANDLE_KEY = ("symbol", "interval", "ts")

_OHLCV = [
    T.StructField("open", T.DoubleType()),
    T.StructField("high", T.DoubleType()),
    T.StructField("low", T.DoubleType()),
    T.StructField("close", T.DoubleType()),
    T.StructField("adj_close", T.DoubleType()),
    T.StructField("volume", T.DoubleType()),
]

# What a source returns (see lakehouse.sources.CANONICAL_COLUMNS): ts is the bar's open time in UTC.
CANDLE_SCHEMA = T.StructType(
    [
        T.StructField("symbol", T.StringType()),
        T.StructField("interval", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        *_OHLCV,
    ]
)

BRONZE_SCHEMA = T.StructType(
    [
        *CANDLE_SCHEMA.fields,
        T.StructField("source", T.StringType(), nullable=False),
        T.StructField("batch_id", T.StringType(), nullable=False),
        T.StructField("record_id", T.LongType(), nullable=False),
        T.StructField("ingested_at", T.TimestampType(), nullable=False),
    ]
)

SILVER_SCHEMA = T.StructType(
    [
        T.StructField("symbol", T.StringType(), nullable=False),
        T.StructField("interval", T.StringType(), nullable=False),
        T.StructField("ts", T.TimestampType(), nullable=False),
        T.StructField("open", T.DoubleType(), nullable=False),
        T.StructField("high", T.DoubleType(), nullable=False),
        T.StructField("low", T.DoubleType(), nullable=False),
        T.StructField("close", T.DoubleType(), nullable=False),
        T.StructField("volume", T.DoubleType(), nullable=False),
        T.StructField("close_unadjusted", T.DoubleType(), nullable=False),
        T.StructField("adj_factor", T.DoubleType(), nullable=False),
        T.StructField("source", T.StringType(), nullable=False),
        T.StructField("batch_id", T.StringType(), nullable=False),
        T.StructField("ingested_at", T.TimestampType(), nullable=False),
        T.StructField("updated_at", T.TimestampType(), nullable=False),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        *CANDLE_SCHEMA.fields,
        T.StructField("source", T.StringType()),
        T.StructField("batch_id", T.StringType(), nullable=False),
        T.StructField("record_id", T.LongType(), nullable=False),
        T.StructField("ingested_at", T.TimestampType()),
        T.StructField("rule", T.StringType(), nullable=False),
        T.StructField("failed_rules", T.ArrayType(T.StringType()), nullable=False),
        T.StructField("quarantined_at", T.TimestampType(), nullable=False),
    ]
)

PROCESSED_BATCHES_SCHEMA = T.StructType(
    [
        T.StructField("batch_id", T.StringType(), nullable=False),
        T.StructField("rows_in", T.LongType(), nullable=False),
        T.StructField("accepted", T.LongType(), nullable=False),
        T.StructField("quarantined", T.LongType(), nullable=False),
        T.StructField("processed_at", T.TimestampType(), nullable=False),
    ]
)

DQ_RESULTS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), nullable=False),
        T.StructField("layer", T.StringType(), nullable=False),
        T.StructField("table_name", T.StringType(), nullable=False),
        T.StructField("suite", T.StringType(), nullable=False),
        T.StructField("expectation", T.StringType(), nullable=False),
        T.StructField("expectation_type", T.StringType(), nullable=False),
        T.StructField("tier", T.StringType(), nullable=False),
        T.StructField("success", T.BooleanType(), nullable=False),
        T.StructField("observed_value", T.StringType()),
        T.StructField("unexpected_count", T.LongType()),
        T.StructField("unexpected_percent", T.DoubleType()),
        T.StructField("element_count", T.LongType()),
        T.StructField("started_at", T.TimestampType(), nullable=False),
        T.StructField("ended_at", T.TimestampType(), nullable=False),
    ]
)


@dataclass(frozen=True)
class Table:
    name: str
    """Zone-qualified name, also the path under the lake root: `silver/candles`."""
    schema: T.StructType
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()
    description: str = ""
    change_feed: bool = False
    """Delta Change Data Feed on: readers can ask for the rows changed since a version (see delta_io)."""
    dictionary_columns: tuple[str, ...] | None = None
    """The only columns Parquet dictionary-encodes; None: Parquet's default (every column, with a fallback)."""
    owner: str = ""
    """The Glue job (glue_jobs/<owner>.py) whose rows these are: it creates, MERGEs and overwrites the table."""
    also_written_by: tuple[str, ...] = ()
    """Other jobs that write it, and only as said at the table. Besides these, `maintain_tables` compacts and
    VACUUMs every table (rows unchanged); concurrent writers are safe (lakehouse/conflicts.py, log_store.py)."""

    @property
    def zone(self) -> str:
        return self.name.split("/", 1)[0]

    def path(self, root: str) -> str:
        return f"{root.rstrip('/')}/{self.name}"


BRONZE_CANDLES = Table(
    "bronze/candles",
    BRONZE_SCHEMA,
    key=("batch_id", "record_id"),
    partition_by=("interval",),
    description="append-only raw candles exactly as each source returned them",
    change_feed=True,  # build_silver reads the batches appended since its last run (see lakehouse/jobs/build_silver.py)
    owner="ingest_candles",
)
SILVER_CANDLES = Table(
    "silver/candles",
    SILVER_SCHEMA,
    key=CANDLE_KEY,
    partition_by=("interval",),
    description="typed, validated, deduplicated, adjusted candles; MERGE upsert on the key",
    change_feed=True,
    owner="build_silver",
)
SILVER_QUARANTINE = Table(
    "silver/candles_quarantine",
    QUARANTINE_SCHEMA,
    key=("batch_id", "record_id"),
    description="bronze rows rejected by a silver rule, with the rule (first failed) and all failed rules",
    owner="build_silver",
)
SILVER_PROCESSED_BATCHES = Table(
    "silver/processed_batches",
    PROCESSED_BATCHES_SCHEMA,
    key=("batch_id",),
    description="bronze batches already built into silver, with their row accounting",
    owner="build_silver",
)

GOLD_DQ_RESULTS = Table(
    "gold/dq_results",
    DQ_RESULTS_SCHEMA,
    key=("run_id", "table_name", "expectation"),
    description="one row per expectation per validation run (Great Expectations), Athena-queryable",
    owner="build_silver",
    also_written_by=("build_features",),  # both quality gates append (blind appends never conflict)
)


_METRICS = T.MapType(T.StringType(), T.DoubleType())

MODEL_REGISTRY_SCHEMA = T.StructType(
    [
        T.StructField("model_id", T.StringType(), nullable=False),
        T.StructField("model_version", T.StringType(), nullable=False),
        T.StructField("run_id", T.StringType()),
        T.StructField("task", T.StringType(), nullable=False),
        T.StructField("algorithm", T.StringType(), nullable=False),
        T.StructField("interval", T.StringType(), nullable=False),
        T.StructField("calendar", T.StringType()),
        T.StructField("bars_per_year", T.DoubleType()),
        T.StructField("horizon_bars", T.IntegerType(), nullable=False),
        T.StructField("params", T.MapType(T.StringType(), T.StringType())),
        T.StructField("features", T.ArrayType(T.StringType())),
        T.StructField("key_metric", T.StringType(), nullable=False),
        T.StructField("key_value", T.DoubleType()),
        T.StructField("baseline_value", T.DoubleType()),
        T.StructField("beats_baseline", T.BooleanType(), nullable=False),
        T.StructField("metrics", _METRICS),
        T.StructField("baselines", _METRICS),
        T.StructField("metrics_mean", _METRICS),
        T.StructField("baselines_mean", _METRICS),
        T.StructField("fold_metrics", T.StringType()),
        T.StructField("n_folds", T.IntegerType(), nullable=False),
        T.StructField("gap_bars", T.IntegerType(), nullable=False),
        T.StructField("test_bars", T.IntegerType(), nullable=False),
        T.StructField("feature_spec_hash", T.StringType(), nullable=False),
        T.StructField("training_table", T.StringType(), nullable=False),
        T.StructField("training_table_version", T.LongType()),
        T.StructField("training_rows", T.LongType()),
        T.StructField("training_key", T.StringType()),
        T.StructField("artifact_uri", T.StringType(), nullable=False),
        T.StructField("promoted", T.BooleanType(), nullable=False),
        T.StructField("train_seconds", T.DoubleType()),
        T.StructField("cpu_count", T.IntegerType()),
        T.StructField("ram_gib", T.DoubleType()),
        T.StructField("gpu", T.StringType()),
        T.StructField("hardware", T.StringType()),
        T.StructField("trained_at", T.TimestampType(), nullable=False),
    ]
)

PREDICTIONS_SCHEMA = T.StructType(
    [
        T.StructField("model_version", T.StringType(), nullable=False),
        T.StructField("symbol", T.StringType(), nullable=False),
        T.StructField("ts", T.TimestampType(), nullable=False),
        T.StructField("interval", T.StringType(), nullable=False),
        T.StructField("close", T.DoubleType()),
        T.StructField("prob_up", T.DoubleType()),
        T.StructField("predicted_return", T.DoubleType()),
        T.StructField("predicted_close", T.DoubleType()),
        T.StructField("signal", T.StringType()),
        T.StructField("direction_model", T.StringType()),
        T.StructField("return_model", T.StringType()),
        T.StructField("direction_promoted", T.BooleanType()),
        T.StructField("return_promoted", T.BooleanType()),
        T.StructField("baseline_prob_up", T.DoubleType()),
        T.StructField("actual_up", T.IntegerType()),
        T.StructField("actual_return", T.DoubleType()),
        T.StructField("scored_at", T.TimestampType(), nullable=False),
    ]
)

PIPELINE_FAILURES_SCHEMA = T.StructType(
    [
        T.StructField("execution_id", T.StringType(), nullable=False),
        T.StructField("run_id", T.StringType()),
        T.StructField("state", T.StringType(), nullable=False),
        T.StructField("error", T.StringType(), nullable=False),
        T.StructField("message", T.StringType()),
        T.StructField("cause", T.StringType()),
        T.StructField("failed_at", T.TimestampType(), nullable=False),
    ]
)

GOLD_PIPELINE_FAILURES = Table(
    "gold/pipeline_failures",
    PIPELINE_FAILURES_SCHEMA,
    key=("execution_id", "state"),
    description="one row per state that failed a pipeline execution (after its retries): error, message, cause",
    owner="record_failure",
)
GOLD_MODEL_REGISTRY = Table(
    "gold/model_registry",
    MODEL_REGISTRY_SCHEMA,
    key=("model_id",),
    description="one row per trained model: metrics next to baselines, lineage, artifact, promoted flag",
    owner="train_models",
    also_written_by=("export_models",),  # export UPDATEs `promoted` of the version it publishes
)
GOLD_PREDICTIONS = Table(
    "gold/predictions",
    PREDICTIONS_SCHEMA,
    key=("model_version", "symbol", "ts"),
    description="batch scores of each published model version (holdout block and latest bar per symbol)",
    owner="export_models",
)


def _gold_features_schema() -> T.StructType:
    from lakecontract.feature_spec import FEATURE_NAMES, STATE_COLUMNS

    return T.StructType(
        [
            T.StructField("symbol", T.StringType(), nullable=False),
            T.StructField("ts", T.TimestampType(), nullable=False),
            *[T.StructField(c, T.DoubleType()) for c in ("open", "high", "low", "close", "volume")],
            *[T.StructField(name, T.DoubleType()) for name in FEATURE_NAMES],
            T.StructField("label_up", T.IntegerType()),
            T.StructField("label_ret_1", T.DoubleType()),
            T.StructField("bar_no", T.IntegerType(), nullable=False),
            T.StructField("is_warm", T.BooleanType(), nullable=False),
            *[T.StructField(name, T.DoubleType()) for name in STATE_COLUMNS],
            T.StructField("computed_at", T.TimestampType(), nullable=False),
        ]
    )


def gold_features(interval: str) -> Table:
    """gold/features_<interval>: one row per (symbol, ts) with every feature of the spec."""
    return Table(
        f"gold/features_{interval}",
        _gold_features_schema(),
        key=("symbol", "ts"),
        description=f"{interval} candles with engineered features and next-bar labels (see feature_spec)",
        dictionary_columns=("symbol",),  # ~130 doubles of distinct values: a dictionary is wasted work
        owner="build_features",
    )


REGISTRY: dict[str, Table] = {
    t.name: t
    for t in (
        BRONZE_CANDLES,
        SILVER_CANDLES,
        SILVER_QUARANTINE,
        SILVER_PROCESSED_BATCHES,
        GOLD_DQ_RESULTS,
        GOLD_MODEL_REGISTRY,
        GOLD_PREDICTIONS,
        GOLD_PIPELINE_FAILURES,
    )
}


def every_table() -> tuple[Table, ...]:
    """Every table of the lake: the registry and gold's features table of each supported bar size."""
    from lakecontract.constants import INTERVALS

    return (*REGISTRY.values(), *(gold_features(i) for i in INTERVALS))


def table(name: str) -> Table:
    if name.startswith("gold/features_"):
        return gold_features(name.removeprefix("gold/features_"))
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
