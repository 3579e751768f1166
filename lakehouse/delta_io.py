"""Every read and write of a lake table goes through these few functions.

Writers take a registry `Table` rather than a path so that schemas, keys and partitioning
cannot drift between jobs. Delta tables are created with the basic protocol (no deletion
vectors, no column mapping) because Athena's Delta reader does not need anything newer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from delta.tables import DeltaTable
from py4j.protocol import Py4JJavaError
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from lakehouse.tables import Table

_BASIC_PROTOCOL = {"delta.enableDeletionVectors": "false"}
# Writer protocol 4; readers (Athena included) are unaffected, they ignore the _change_data folder.
_CHANGE_FEED = "delta.enableChangeDataFeed"
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
_PARQUET_DICTIONARY = "parquet.enable.dictionary"


@dataclass(frozen=True)
class WriteResult:
    table: str
    version: int
    rows_inserted: int
    rows_updated: int = 0


def exists(spark: SparkSession, tbl: Table, root: str) -> bool:
    return DeltaTable.isDeltaTable(spark, tbl.path(root))


def read(spark: SparkSession, tbl: Table, root: str, *, at_version: int | None = None) -> DataFrame:
    """The table's current snapshot (or the one at `at_version`), or an empty frame of its schema
    if it was never written."""
    if not exists(spark, tbl, root):
        return spark.createDataFrame([], tbl.schema)
    reader = spark.read.format("delta")
    if at_version is not None:
        reader = reader.option("versionAsOf", at_version)
    return reader.load(tbl.path(root))


def read_changes(spark: SparkSession, tbl: Table, root: str, *, after: int, upto: int) -> DataFrame | None:
    """The rows the commits after version `after` up to `upto` inserted or updated (their new
    values), from the Delta Change Data Feed; None where the feed does not cover that range (it
    was turned on later), so the caller falls back to reading the snapshot.

    Reads only the files those commits wrote, not the table: the point of the feed."""
    if after >= upto:
        return spark.createDataFrame([], tbl.schema)
    try:
        changes = (
            spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", after + 1)
            .option("endingVersion", upto)
            .load(tbl.path(root))
        )
        # Planning (no job) is where an uncovered range raises DELTA_MISSING_CHANGE_DATA.
        changes._jdf.queryExecution().executedPlan()
    except (AnalysisException, Py4JJavaError):
        return None
    return changes.where(F.col("_change_type").isin("insert", "update_postimage")).select(tbl.schema.fieldNames())


def ensure_change_feed(spark: SparkSession, tbl: Table, root: str) -> None:
    """Turn the change feed on for a table created before the registry asked for it (one commit);
    the feed covers the commits after that one."""
    if not tbl.change_feed or not exists(spark, tbl, root):
        return
    # SHOW TBLPROPERTIES reads the table's metadata only; DeltaTable.detail() lists every file (seconds).
    shown = spark.sql(f"SHOW TBLPROPERTIES delta.`{tbl.path(root)}` ('{_CHANGE_FEED}')").first()
    if shown is None or shown["value"] != "true":
        spark.sql(f"ALTER TABLE delta.`{tbl.path(root)}` SET TBLPROPERTIES ('{_CHANGE_FEED}' = 'true')")


@contextmanager
def _user_metadata(spark: SparkSession, metadata: dict[str, Any] | None) -> Iterator[None]:
    """Attach `metadata` (JSON) to the commits made inside: it lands atomically with the data,
    so what a job records about its input can never disagree with what it wrote."""
    settings = {} if metadata is None else {_USER_METADATA: json.dumps(metadata, sort_keys=True)}
    with session_settings(spark, settings):
        yield


@contextmanager
def writing(spark: SparkSession, tbl: Table, metadata: dict[str, Any] | None = None) -> Iterator[None]:
    """The session settings of one write into `tbl`: its commit metadata and its Parquet encoding.

    Spark copies session settings into the Hadoop configuration each write builds, so a
    `parquet.*` key set here reaches Parquet's writer for this write only. A table with
    `dictionary_columns` writes every other column without dictionary encoding: for gold's ~130
    double columns, nearly all values distinct, Parquet builds each dictionary only to drop it
    when the page overflows (measured: 2 M gold rows written in 47–53 s instead of 64–69 s, with
    files 2 % larger; see docs/development.md#benchmarks).
    """
    settings: dict[str, str] = {}
    if tbl.dictionary_columns is not None:
        settings[_PARQUET_DICTIONARY] = "false"
        settings.update({f"{_PARQUET_DICTIONARY}#{c}": "true" for c in tbl.dictionary_columns})
    with session_settings(spark, settings), _user_metadata(spark, metadata):
        yield


@contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Set session settings for the block and put back what was there before (set or unset)."""
    before = {k: spark.conf.get(k, None) for k in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, old in before.items():
            if old is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, old)


def last_commit_metadata(
    spark: SparkSession,
    tbl: Table,
    root: str,
    key: str,
    *,
    where: Callable[[dict[str, Any]], bool] | None = None,
    within: int = 200,
) -> dict[str, Any] | None:
    """The user metadata of the newest commit (among the last `within`) that holds `key` and
    satisfies `where`, else None."""
    if not exists(spark, tbl, root):
        return None
    history = DeltaTable.forPath(spark, tbl.path(root)).history(within).select("version", "userMetadata")
    for row in sorted(history.collect(), key=lambda r: r["version"], reverse=True):
        try:
            found = json.loads(row["userMetadata"] or "{}")
        except json.JSONDecodeError:
            continue
        if isinstance(found, dict) and key in found and (where is None or where(found)):
            return found
    return None


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
    if tbl.change_feed:
        builder = builder.property(_CHANGE_FEED, "true")
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


def append(
    spark: SparkSession, df: DataFrame, tbl: Table, root: str, *, metadata: dict[str, Any] | None = None
) -> WriteResult:
    """Append; an empty frame makes no commit, and then reports 0 rows at the unchanged version.

    A table made before a column joined the registry gains it on the next append (Delta's
    mergeSchema; the earlier rows read null there): the registry is the schema, and `_conform`
    sends exactly its columns, so nothing else can be added this way."""
    ensure_table(spark, tbl, root)
    before = version(spark, tbl, root)
    with writing(spark, tbl, metadata):
        _conform(df, tbl).write.format("delta").mode("append").option("mergeSchema", "true").save(tbl.path(root))
    ver, metrics = _last_operation_metrics(spark, tbl, root)
    return WriteResult(tbl.name, ver, int(metrics.get("numOutputRows", 0)) if ver != before else 0)


def merge_upsert(
    spark: SparkSession,
    df: DataFrame,
    tbl: Table,
    root: str,
    *,
    compare: tuple[str, ...] = (),
    prune: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> WriteResult:
    """MERGE `df` into the table on its key: insert new keys, update matched rows.

    With `compare`, a matched row is only rewritten when one of those columns differs, so a
    re-run over the same data writes nothing new (the commit still happens, with zero rows).
    `prune` is an extra condition on the target `t` with literal values (partition values, a
    time range): Delta skips the partitions and files it excludes instead of scanning the table.
    `metadata` is stored in the commit (see `last_commit_metadata`).
    `df` must hold at most one row per key; Delta raises on ambiguous matches.
    A table that does not exist yet is created and appended to: a MERGE into an empty table inserts
    every row anyway, and costs seconds more (it scans the source twice and plans a join).
    """
    if not exists(spark, tbl, root):
        written = append(spark, df, tbl, root, metadata=metadata)
        return WriteResult(tbl.name, written.version, written.rows_inserted, 0)
    source = _conform(df, tbl)
    condition = " AND ".join([*(f"t.`{k}` = s.`{k}`" for k in tbl.key), *([f"({prune})"] if prune else [])])
    changed = " OR ".join(f"NOT (t.`{c}` <=> s.`{c}`)" for c in compare) or None
    with writing(spark, tbl, metadata):
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


def overwrite(
    spark: SparkSession, df: DataFrame, tbl: Table, root: str, *, metadata: dict[str, Any] | None = None
) -> WriteResult:
    """Replace the table's content and schema in one commit (readers of older versions keep theirs)."""
    ensure_table(spark, tbl, root)
    writer = _conform(df, tbl).write.format("delta").mode("overwrite").option("overwriteSchema", "true")
    if tbl.partition_by:  # overwriteSchema replaces the partitioning too: without this, a partitioned table loses it
        writer = writer.partitionBy(*tbl.partition_by)
    with writing(spark, tbl, metadata):
        writer.save(tbl.path(root))
    ver, metrics = _last_operation_metrics(spark, tbl, root)
    return WriteResult(tbl.name, ver, int(metrics.get("numOutputRows", 0)))
