"""Job body of build_features: silver/candles → gold/features_<interval>, incremental, quality-gated.

Which rows are rebuilt: a symbol is affected when silver holds a row of it updated after the
symbol's last gold build (or the symbol is new to gold). EMA and Wilder recursions depend on the
whole history, so an affected symbol's features are recomputed from its first bar — recomputing
only a tail would give values that differ from a full rebuild — but only the rows from the bar
before its first changed bar onward (that bar's label changes) are validated and MERGEd.
Unaffected symbols are not read past the change check.

Quality: the rows about to be written are validated with the gold suite (Great Expectations)
before the MERGE; a failed halt-tier expectation raises `QualityHalt`, so the table's Delta
version does not move. Every validation is recorded in gold/dq_results and in an HTML report.
The features themselves are computed in lakehouse/features.py.
"""

from __future__ import annotations

from datetime import datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.feature_spec import FEATURE_NAMES
from lakehouse.features import with_features
from lakehouse.job_summary import JobSummary
from lakehouse.jobs import Log
from lakehouse.tables import SILVER_CANDLES, Table, gold_features

JOB = "build_features"


def run(spark: SparkSession, cfg: LakeConfig, *, run_id: str | None, now: datetime, log: Log) -> JobSummary:
    """Rebuild, validate and MERGE the features of the symbols changed since their last build, per interval."""
    from lakehouse.quality.gate import quality_gate
    from lakehouse.quality.rules import gold_feature_rules

    run_id = run_id or f"{now:%Y%m%dT%H%M%SZ}-features"
    root = cfg.resolved_root
    summary = JobSummary(JOB, details={"run_id": run_id})
    silver_all = delta_io.read(spark, SILVER_CANDLES, root)
    for interval in cfg.intervals:
        target: Table = gold_features(interval)
        silver_df = silver_all.where(F.col("interval") == interval)
        if cfg.symbols:
            silver_df = silver_df.where(F.col("symbol").isin(*cfg.symbols))
        bounds = _rebuild_bounds(silver_df, delta_io.read(spark, target, root))
        if not bounds:
            log(f"[{JOB}] {target.name}: up to date, nothing to rebuild")
            summary.versions[target.name] = delta_io.version(spark, target, root)
            continue
        log(f"[{JOB}] {target.name}: rebuilding {len(bounds)} symbol(s): {', '.join(sorted(bounds))}")
        rows = _gold_rows(spark, silver_df, bounds, now).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            _, summary.details["dq_report"] = quality_gate(
                spark,
                rows,
                gold_feature_rules(FEATURE_NAMES),
                root=root,
                layer="gold",
                table_name=target.name,
                run_id=run_id,
                s3_endpoint=cfg.s3_endpoint,
            )
            merged = delta_io.merge_upsert(spark, rows, target, root)
        finally:
            rows.unpersist()
        log(f"[{JOB}] data-quality report: {summary.details['dq_report']}")
        summary.rows_read += merged.rows_inserted + merged.rows_updated
        summary.rows_written += merged.rows_inserted + merged.rows_updated
        summary.versions[target.name] = merged.version
        summary.details[f"{interval}_inserted"] = merged.rows_inserted
        summary.details[f"{interval}_updated"] = merged.rows_updated
    return summary


def _rebuild_bounds(silver_df: DataFrame, gold_df: DataFrame) -> dict[str, datetime]:
    """symbol → first ts to (re)write, for symbols changed since their last gold build."""
    built = gold_df.groupBy("symbol").agg(F.max("computed_at").alias("_built_at"))
    changed = (
        silver_df.join(built, "symbol", "left")
        .where(F.col("_built_at").isNull() | (F.col("updated_at") > F.col("_built_at")))
        .groupBy("symbol")
        .agg(F.min("ts").alias("_first_changed"))
    )
    bounds = (
        silver_df.join(changed, "symbol")
        .groupBy("symbol")
        .agg(
            F.min("_first_changed").alias("first_changed"),
            F.max(F.when(F.col("ts") < F.col("_first_changed"), F.col("ts"))).alias("bar_before"),
        )
        .collect()  # one row per affected symbol: the job's deliberate planning action
    )
    return {r["symbol"]: r["bar_before"] or r["first_changed"] for r in bounds}


def _gold_rows(spark: SparkSession, silver_df: DataFrame, bounds: dict[str, datetime], now: datetime) -> DataFrame:
    """Features of the affected symbols, restricted to the rows from each symbol's bound."""
    bounds_df = spark.createDataFrame(list(bounds.items()), "symbol string, _from_ts timestamp")
    candles = silver_df.join(F.broadcast(bounds_df.select("symbol")), "symbol")
    return (
        with_features(candles)
        .join(F.broadcast(bounds_df), "symbol")
        .where(F.col("ts") >= F.col("_from_ts"))
        .drop("_from_ts")
        .withColumn("computed_at", F.lit(now).cast("timestamp"))
    )
