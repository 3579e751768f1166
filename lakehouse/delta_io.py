"""Every read and write of a lake table goes through these few functions.

Writers take a registry `Table` rather than a path so that schemas, keys and partitioning
cannot drift between jobs. Delta tables are created with the basic protocol (no deletion
vectors, no column mapping) because Athena's Delta reader does not need anything newer.
"""

from __future__ import annotations

from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lakehouse.tables import Table

_BASIC_PROTOCOL = {"delta.enableDeletionVectors": "false"}


@dataclass(frozen=True)
class WriteResult:
    table: str
    version: int
    rows_inserted: int
    rows_updated: int = 0


def exists(spark: SparkSession, tbl: Table, root: str) -> bool:
    return DeltaTable.isDeltaTable(spark, tbl.path(root))


def read(spark: SparkSession, tbl: Table, root: str) -> DataFrame:
    """The table's current snapshot, or an empty frame of its schema if it was never written."""
    if not exists(spark, tbl, root):
        return spark.createDataFrame([], tbl.schema)
    return spark.read.format("delta").load(tbl.path(root))


def _newest_commit(spark: SparkSession, tbl: Table, root: str) -> Row:
    """The newest entry of the table's history; a Delta table always has one (its creation)."""
    row = DeltaTable.forPath(spark, tbl.path(root)).history(1).select("version", "operationMetrics").first()
    if row is None:
        raise RuntimeError(f"{tbl.name} at {tbl.path(root)} has an empty Delta history")
    return row


def version(spark: SparkSession, tbl: Table, root: str) -> int | None:
    if not exists(spark, tbl, root):
        return None
    return _newest_commit(spark, tbl, root)["version"]


def ensure_table(spark: SparkSession, tbl: Table, root: str) -> None:
    """Create an empty table with the registry schema if there is none yet (idempotent)."""
    if exists(spark, tbl, root):
        return
    builder = DeltaTable.createIfNotExists(spark).location(tbl.path(root)).addColumns(tbl.schema)
    if tbl.partition_by:
        builder = builder.partitionedBy(*tbl.partition_by)
    for key, value in _BASIC_PROTOCOL.items():
        builder = builder.property(key, value)
    if tbl.description:
        builder = builder.comment(tbl.description)
    builder.execute()


def _conform(df: DataFrame, tbl: Table) -> DataFrame:
    """Select the registry columns in registry order with registry types; a missing column is a bug."""
    missing = [f.name for f in tbl.schema.fields if f.name not in df.columns]
    if missing:
        raise ValueError(f"{tbl.name}: frame lacks columns {missing}")
    return df.select([F.col(f.name).cast(f.dataType).alias(f.name) for f in tbl.schema.fields])


def _last_operation_metrics(spark: SparkSession, tbl: Table, root: str) -> tuple[int, dict[str, str]]:
    row = _newest_commit(spark, tbl, root)
    return row["version"], dict(row["operationMetrics"] or {})


def append(spark: SparkSession, df: DataFrame, tbl: Table, root: str) -> WriteResult:
    """Append; an empty frame makes no commit, and then reports 0 rows at the unchanged version."""
    ensure_table(spark, tbl, root)
    before = version(spark, tbl, root)
    _conform(df, tbl).write.format("delta").mode("append").save(tbl.path(root))
    ver, metrics = _last_operation_metrics(spark, tbl, root)
    return WriteResult(tbl.name, ver, int(metrics.get("numOutputRows", 0)) if ver != before else 0)


def merge_upsert(
    spark: SparkSession, df: DataFrame, tbl: Table, root: str, *, compare: tuple[str, ...] = ()
) -> WriteResult:
    """MERGE `df` into the table on its key: insert new keys, update matched rows.

    With `compare`, a matched row is only rewritten when one of those columns differs, so a
    re-run over the same data writes nothing new (the commit still happens, with zero rows).
    `df` must hold at most one row per key; Delta raises on ambiguous matches.
    """
    ensure_table(spark, tbl, root)
    source = _conform(df, tbl)
    condition = " AND ".join(f"t.`{k}` = s.`{k}`" for k in tbl.key)
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in compare) or None
    (
        DeltaTable.forPath(spark, tbl.path(root))
        .alias("t")
        .merge(source.alias("s"), condition)
        .whenMatchedUpdateAll(condition=changed)
        .whenNotMatchedInsertAll()
        .execute()
    )
    ver, metrics = _last_operation_metrics(spark, tbl, root)
    return WriteResult(
        tbl.name,
        ver,
        int(metrics.get("numTargetRowsInserted", 0)),
        int(metrics.get("numTargetRowsUpdated", 0)),
    )
