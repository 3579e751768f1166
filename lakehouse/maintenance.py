"""Table maintenance: what a lake that runs every day for a year needs and its first run does not.

Every daily MERGE adds a few small files and logically deletes the ones it rewrote; nothing removes
them. Per table, `maintain` therefore
  1. sets the retention properties (checkpoint interval, how long the log and removed files are
     kept): table properties, so every writer and Athena see the same policy;
  2. compacts small files (`OPTIMIZE`, bin-packing; one OPTIMIZE per partition value where the table
     is partitioned, so each commit is small and touches only the files of one interval, and a
     pipeline writing another interval meanwhile does not conflict with it). Compaction is
     `dataChange=false`: readers and the change data feed see the same rows before and after;
  3. `VACUUM`s the files no version within the retention needs any longer.
It reports the files and bytes of each table before and after: live (what the current version
reads) and stored (every data file under the table's folder, what S3 bills).

Retention is at least 7 days (Delta's own floor, `delta.deletedFileRetentionDuration`'s default):
a VACUUM deletes the files older versions read, so time travel (`versionAsOf`) beyond the retention
stops working, and so does a reader or writer that is still on an older snapshot (a long job that
started before the VACUUM). A shorter retention is refused unless asked for explicitly.

The protocol is left alone: no deletion vectors (Athena's Delta reader is verified on the basic
protocol only, docs/aws.md), and OPTIMIZE and VACUUM need no newer one. Z-ordering is not used:
`executeZOrderBy` is not idempotent (it rewrites every file every week) and the gold reads here are
by symbol and time, which the files' min/max statistics already serve after bin-packing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from lakehouse import delta_io
from lakehouse.tables import Table

DEFAULT_RETENTION_HOURS = 168
"""VACUUM's retention: Delta's default and floor (7 days)."""
LOG_RETENTION_DAYS = 30
"""`delta.logRetentionDuration`: how far back the log (and so the history and time travel metadata) goes."""
CHECKPOINT_INTERVAL = 10
"""`delta.checkpointInterval`: a Parquet checkpoint every N commits, so a reader replays at most N JSON files."""
_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
_LISTING_PARALLELISM = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


class MaintenanceRefused(ValueError):
    """The requested maintenance would lose something the caller did not explicitly give up."""


@dataclass(frozen=True)
class Footprint:
    live_files: int
    live_bytes: int
    stored_files: int
    stored_bytes: int


@dataclass(frozen=True)
class TableMaintenance:
    table: str
    before: Footprint
    after: Footprint
    version_before: int
    version_after: int
    files_compacted: int
    files_written: int
    seconds: float


def table_properties(retention_hours: int) -> dict[str, str]:
    return {
        "delta.checkpointInterval": str(CHECKPOINT_INTERVAL),
        "delta.logRetentionDuration": f"interval {LOG_RETENTION_DAYS} days",
        "delta.deletedFileRetentionDuration": f"interval {retention_hours} hours",
    }


def check_retention(retention_hours: int, *, allow_short: bool) -> str | None:
    """None when `retention_hours` is allowed as is; the warning to print when a short one was asked for.
    Raises MaintenanceRefused for a short one that was not."""
    if retention_hours < 0:
        raise MaintenanceRefused(f"a retention of {retention_hours} hours is negative")
    if retention_hours >= DEFAULT_RETENTION_HOURS:
        return None
    loss = (
        f"VACUUM with a retention of {retention_hours} hours deletes files that versions older than "
        f"{retention_hours} hours read: time travel beyond {retention_hours} hours is lost, and a job that is "
        f"still reading or writing an older snapshot can fail"
    )
    if not allow_short:
        raise MaintenanceRefused(
            f"{loss}. The floor is {DEFAULT_RETENTION_HOURS} hours; pass --allow-short-retention to accept the loss"
        )
    return loss


def footprint(spark: SparkSession, path: str) -> Footprint:
    """Live files and bytes from the Delta log (`DESCRIBE DETAIL`); stored ones by listing the folder
    (every data file, referenced or not, except the log)."""
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").select("numFiles", "sizeInBytes").first()
    if detail is None:
        raise RuntimeError(f"DESCRIBE DETAIL of {path} returned no row")
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)  # type: ignore[union-attr]
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    files = fs.listFiles(hadoop_path, True)
    stored_files = stored_bytes = 0
    while files.hasNext():
        status = files.next()
        relative = status.getPath().toString()[len(hadoop_path.toString()) :]
        if "/_delta_log/" in relative or not relative.endswith(".parquet"):
            continue
        stored_files += 1
        stored_bytes += status.getLen()
    return Footprint(int(detail["numFiles"] or 0), int(detail["sizeInBytes"] or 0), stored_files, stored_bytes)


def _set_properties(spark: SparkSession, path: str, wanted: dict[str, str], log: Callable[[str], object]) -> None:
    """Set the properties that differ (one commit), none when all are set already: a weekly job must
    not add a metadata commit (which conflicts with every concurrent writer) when nothing changes."""
    shown = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()}
    changed = {k: v for k, v in wanted.items() if shown.get(k) != v}
    if changed:
        assignments = ", ".join(f"'{k}' = '{v}'" for k, v in sorted(changed.items()))
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({assignments})")
        log(f"  properties set: {assignments}")


def _partition_values(spark: SparkSession, path: str, columns: Sequence[str]) -> list[dict[str, str]]:
    frame = spark.read.format("delta").load(path).select(*columns).distinct()
    return [r.asDict() for r in frame.collect()]


def _compact(spark: SparkSession, tbl: Table, path: str, log: Callable[[str], object]) -> tuple[int, int]:
    """OPTIMIZE (bin-packing), per partition value where partitioned; (files removed, files added)."""
    scopes: list[str | None] = [None]
    if tbl.partition_by:
        scopes = [
            " AND ".join(f"`{c}` = '{value[c]}'" for c in tbl.partition_by)
            for value in _partition_values(spark, path, tbl.partition_by)
        ]
    removed = added = 0
    for scope in scopes:
        builder = DeltaTable.forPath(spark, path).optimize()
        if scope is not None:
            builder = builder.where(scope)
        metrics = builder.executeCompaction().first()
        if metrics is not None:
            stats = metrics["metrics"]
            removed += int(stats["numFilesRemoved"])
            added += int(stats["numFilesAdded"])
            if scope is not None and stats["numFilesRemoved"]:
                log(f"  compacted {scope}: {stats['numFilesRemoved']} files → {stats['numFilesAdded']}")
    return removed, added


def maintain_table(
    spark: SparkSession,
    tbl: Table,
    root: str,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    allow_short_retention: bool = False,
    log: Callable[[str], object] = print,
) -> TableMaintenance:
    """Properties, compaction and VACUUM of one existing table; see the module docstring."""
    warning = check_retention(retention_hours, allow_short=allow_short_retention)
    path = tbl.path(root)
    started = time.monotonic()
    before = footprint(spark, path)
    version_before = delta_io.version(spark, tbl, root)
    log(f"[maintain] {tbl.name}: {before.live_files} live files, {before.stored_files} stored")
    _set_properties(spark, path, table_properties(retention_hours), log)
    removed, added = _compact(spark, tbl, path, log)
    # VACUUM lists the table's folders in a Spark job of `parallelPartitionDiscovery.parallelism` tasks,
    # 10,000 by default: 81 s for a 20-file table on 2 cores, 5 s with one task per core.
    settings = {_LISTING_PARALLELISM: str(max(2, spark.sparkContext.defaultParallelism))}
    if warning is not None:
        log(f"  WARNING: {warning}")
        settings[_RETENTION_CHECK] = "false"
    with delta_io.session_settings(spark, settings):
        DeltaTable.forPath(spark, path).vacuum(retention_hours)
    after = footprint(spark, path)
    return TableMaintenance(
        tbl.name,
        before,
        after,
        version_before if version_before is not None else -1,
        delta_io.version(spark, tbl, root) or 0,
        removed,
        added,
        time.monotonic() - started,
    )


def maintain(
    spark: SparkSession,
    tables: Sequence[Table],
    root: str,
    *,
    retention_hours: int = DEFAULT_RETENTION_HOURS,
    allow_short_retention: bool = False,
    log: Callable[[str], object] = print,
) -> list[TableMaintenance]:
    """`maintain_table` for each of `tables` that exists (an absent one is skipped, not created).

    The retention is checked before any table is touched: a refused run changes nothing."""
    check_retention(retention_hours, allow_short=allow_short_retention)
    present = [t for t in tables if delta_io.exists(spark, t, root)]
    done = []
    for number, tbl in enumerate(present, 1):
        log(f"[maintain] table {number}/{len(present)}")
        done.append(
            maintain_table(
                spark,
                tbl,
                root,
                retention_hours=retention_hours,
                allow_short_retention=allow_short_retention,
                log=log,
            )
        )
    return done


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def format_report(results: Sequence[TableMaintenance]) -> str:
    """Files and bytes per table, before → after (live: the current version; stored: on disk or S3)."""
    lines = [f"  {'table':<28} {'live files':>15} {'stored files':>15} {'stored bytes':>23} {'versions':>10} {'s':>6}"]
    for r in results:
        b, a = r.before, r.after
        lines.append(
            f"  {r.table:<28} {b.live_files:>6} → {a.live_files:<6} {b.stored_files:>6} → {a.stored_files:<6} "
            f"{_size(b.stored_bytes):>10} → {_size(a.stored_bytes):<10} "
            f"{r.version_before:>4}→{r.version_after:<4} {r.seconds:>6.1f}"
        )
    return "\n".join(lines)
