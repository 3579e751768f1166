"""Job body of maintain_tables: compaction, retention properties and VACUUM of every lake table
(lakehouse/maintenance.py), run weekly by the maintenance state machine and by `make maintain`.

It is the one job that writes every table, beside each table's owner (lakehouse/tables.py): its
commits are compactions (`dataChange=false`), which conflict with a concurrent owner only when both
touch the same files; the loser retries from its read (lakehouse/conflicts.py)."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import SparkSession

from lakehouse import maintenance
from lakehouse.config import LakeConfig
from lakehouse.job_summary import JobFailed, JobSummary
from lakehouse.jobs import Log
from lakehouse.tables import every_table, table

JOB = "maintain_tables"


def run(
    spark: SparkSession,
    cfg: LakeConfig,
    *,
    run_id: str | None,
    now: datetime,
    log: Log,
    retention_hours: int = maintenance.DEFAULT_RETENTION_HOURS,
    allow_short_retention: bool = False,
    tables: tuple[str, ...] = (),
) -> JobSummary:
    """Maintain `tables` (names such as `silver/candles`; default: every table of the registry that exists)."""
    try:
        chosen = [table(name) for name in tables] if tables else list(every_table())
        done = maintenance.maintain(
            spark,
            chosen,
            cfg.resolved_root,
            retention_hours=retention_hours,
            allow_short_retention=allow_short_retention,
            log=log,
        )
    except (KeyError, maintenance.MaintenanceRefused) as exc:
        raise JobFailed(str(exc).strip('"')) from None
    log(f"[{JOB}] files and bytes per table, before → after:\n{maintenance.format_report(done)}")
    return JobSummary(
        JOB,
        versions={r.table: r.version_after for r in done},
        details={
            "tables": len(done),
            "live_files": f"{sum(r.before.live_files for r in done)}→{sum(r.after.live_files for r in done)}",
            "stored_files": f"{sum(r.before.stored_files for r in done)}→{sum(r.after.stored_files for r in done)}",
            "retention_hours": retention_hours,
        },
    )
