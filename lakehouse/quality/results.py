"""Persist validation outcomes to gold/dq_results: one row per rule per validation.

The table is the queryable history of data quality (Athena: "which rule failed most this
month?"); the HTML report (`report.py`) is the human view of one pipeline run.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession

from lakehouse import delta_io
from lakehouse.quality.validate import ValidationRun
from lakehouse.tables import DQ_RESULTS_SCHEMA, GOLD_DQ_RESULTS


def result_rows(runs: Sequence[ValidationRun]) -> list[tuple]:
    """The rows of `runs` as tuples in DQ_RESULTS_SCHEMA column order."""
    return [
        (
            run.run_id,
            run.layer,
            run.table_name,
            run.suite,
            outcome.rule,
            outcome.expectation_type,
            outcome.tier,
            outcome.success,
            outcome.observed_value,
            outcome.unexpected_count,
            outcome.unexpected_percent,
            outcome.element_count,
            run.started_at,
            run.ended_at,
        )
        for run in runs
        for outcome in run.outcomes
    ]


def results_frame(spark: SparkSession, runs: Sequence[ValidationRun]) -> DataFrame:
    """The outcomes of `runs` as a frame of the gold/dq_results schema."""
    return spark.createDataFrame(result_rows(runs), DQ_RESULTS_SCHEMA)


def record(spark: SparkSession, runs: Sequence[ValidationRun], root: str) -> None:
    """Append the outcomes of `runs` to gold/dq_results under `root` (no commit when there are none)."""
    delta_io.append(spark, results_frame(spark, runs), GOLD_DQ_RESULTS, root)
