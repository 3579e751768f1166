"""The quality gate every writing job runs just before its write: validate, record, report, halt."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame, SparkSession

from lakehouse.quality.report import write_report
from lakehouse.quality.results import record
from lakehouse.quality.rules import Rule
from lakehouse.quality.validate import ValidationRun, raise_if_halted, validate


def quality_gate(
    spark: SparkSession,
    df: DataFrame,
    rules: Sequence[Rule],
    *,
    root: str,
    layer: str,
    table_name: str,
    run_id: str,
    s3_endpoint: str | None = None,
) -> tuple[ValidationRun, str]:
    """Validate `df` (the rows about to be written), append the outcomes to gold/dq_results, add
    them to the run's HTML report, then raise `QualityHalt` if a halt-tier expectation failed.

    Results are recorded before the halt so a stopped pipeline still shows why it stopped; the
    caller writes its table only after this returns. Returns the run and the report's path.
    `s3_endpoint` is the job's configured endpoint, so the report goes where the tables go."""
    run = validate(
        df, rules, layer=layer, table_name=table_name, suite=f"{table_name.replace('/', '.')}.suite", run_id=run_id
    )
    record(spark, [run], root)
    report_path = write_report([run], root, s3_endpoint=s3_endpoint)
    raise_if_halted(run)
    return run, report_path
