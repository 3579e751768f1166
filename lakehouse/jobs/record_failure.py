"""Job body of record_failure: the state machine's Catch path appends the failed states of an
execution to gold/pipeline_failures. The rows (and what becomes of input that is not the Catch
shape) are built in lakehouse/failures.py; this job never fails on its input, because a crash here
would lose the one record of what went wrong."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import SparkSession

from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.failures import failure_rows
from lakehouse.job_summary import JobSummary
from lakehouse.jobs import Log
from lakehouse.tables import GOLD_PIPELINE_FAILURES

JOB = "record_failure"


def run(
    spark: SparkSession,
    cfg: LakeConfig,
    *,
    run_id: str | None,
    now: datetime,
    log: Log,
    failures: str = "",
    execution_id: str = "local",
) -> JobSummary:
    """Append one row per failed state in `failures` (the Catch output as JSON text), stamped `now`."""
    rows = failure_rows(failures, execution_id, run_id, now)
    failures_df = spark.createDataFrame(rows, GOLD_PIPELINE_FAILURES.schema)
    written = delta_io.append(spark, failures_df, GOLD_PIPELINE_FAILURES, cfg.resolved_root).rows_inserted
    return JobSummary(JOB, rows_written=written, details={"execution_id": execution_id})
