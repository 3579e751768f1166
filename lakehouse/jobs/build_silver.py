"""Job body of build_silver: unprocessed bronze batches → silver/candles (MERGE) + quarantine.

A batch is processed once: `silver/processed_batches` records it with its row accounting,
so a re-run with nothing new in bronze writes nothing. `full_refresh` re-MERGEs every batch
into silver (idempotent); quarantine rows and batch records are appended only for batches
seen for the first time, so a refresh never duplicates them. Appends instead of MERGEs there:
a Delta MERGE costs ~7 s of fixed overhead on 2 cores, an append ~1 s.
The rules that accept or quarantine a row are in lakehouse/silver.py.

A run costs O(new rows), not O(lake) (issue 14):

- **Bronze: the Change Data Feed, from a recorded version.** Bronze is append-only, so the feed of
  the commits after version `v` is exactly the batches appended since `v`, and Delta reads it from
  the files those commits added (appends write no `_change_data` files: nothing extra to store).
  `v` is the bronze version the last run had read up to, stored in the user metadata of the
  `processed_batches` append that records its batches: the marker and the records land in one
  commit, so they cannot disagree. A run that fails anywhere before that append (after the silver
  MERGE, after the quarantine append) leaves the marker where it was, and the re-run reads the same
  commits again. The feed's rows are still anti-joined with `processed_batches` (a table of one row
  per batch: cheap) as a second guard. The fallback is the full read + anti-join the job always did,
  at a pinned version: a lake from before the feed (no marker; the job turns the feed on, one ALTER
  commit), a range the feed does not cover, `full_refresh`. The first such run that records a batch
  writes the marker, so on an old lake it happens once.
  Not file-stats skipping on `batch_id`: it needs the unprocessed ids first, and listing them means
  reading the `batch_id` column of all of bronze (O(lake), however cheap per row) or trusting that
  ids sort by time across sources.
  Measured side by side on 2 shared cores, one more daily bar per symbol
  (tests/benchmarks/bench_silver.py; phases timed by wrapping the job's functions): bronze rows
  read 400,200 → 200 (200 symbols × 2,000 bars) and 1,200,600 → 600 (600 × 2,000); reading and
  classifying them 11.8–14.4 s → 3.1–4.6 s and 20.9 s → 2.7 s; the whole job 24–33 s → 22–26 s
  and 35.6 s → 30.0 s. What is left is fixed: the Great Expectations gate 6–11 s, the MERGE
  3–4 s, two appends 2–4 s. A run with nothing new: 14.2 s → 4.0 s.
- **Silver MERGE: a prune condition** (`delta_io.merge_upsert(prune=...)`): the accepted rows'
  intervals (partition pruning) and, per interval, their ts spans as literal UTC timestamps (file
  skipping on the ts min/max statistics), so the MERGE opens only files that can hold one of the
  keys. Every source row lies inside the condition by construction, so no matching target row is
  excluded (an excluded one would be inserted a second time). Spans are split at the largest gaps
  between the days that hold rows (at most `MAX_SPANS` per interval): a batch that corrects an old
  bar and adds today's does not open every file in between. At the sizes above the unpruned MERGE
  cost no more (3.1 s against 1.2 M silver rows: it reads only the key columns); the prune is for
  tens of millions of rows, and for S3, where every file opened is a request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pyspark import StorageLevel
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io, silver
from lakehouse.config import SUPPORTED_INTERVALS, LakeConfig
from lakehouse.job_summary import JobSummary
from lakehouse.jobs import Log
from lakehouse.tables import BRONZE_CANDLES, SILVER_CANDLES, SILVER_PROCESSED_BATCHES, SILVER_QUARANTINE, Table

JOB = "build_silver"

BRONZE_MARKER = "bronze_version"
"""Key of the processed_batches commit metadata: the bronze version this run read up to."""

MAX_SPANS = 8
"""Most ts spans per interval in the MERGE prune condition (a longer OR buys little)."""

_DAY_MICROS = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def run(
    spark: SparkSession,
    cfg: LakeConfig,
    *,
    run_id: str | None,
    now: datetime,
    log: Log,
    full_refresh: bool = False,
) -> JobSummary:
    """Classify the unprocessed bronze batches (every batch with `full_refresh`), gate and MERGE the
    accepted rows, append the quarantined ones and the batch accounting."""
    from lakehouse.quality.gate import quality_gate
    from lakehouse.quality.rules import silver_candle_rules

    run_id = run_id or f"{now:%Y%m%dT%H%M%SZ}-silver"
    root = cfg.resolved_root
    summary = JobSummary(JOB, details={"run_id": run_id})
    done = delta_io.read(spark, SILVER_PROCESSED_BATCHES, root).select("batch_id")
    done_ids = {r["batch_id"] for r in done.collect()} if full_refresh else set()
    bronze = _bronze_input(spark, root, full_refresh=full_refresh, log=log)
    summary.details.update(bronze_read=bronze.how, bronze_rows_read=bronze.rows)
    bronze_df = bronze.df if full_refresh else bronze.df.join(F.broadcast(done), "batch_id", "left_anti")
    classified = silver.classify(bronze_df, now).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        per_batch, rule_counts = _accounting(classified)
        if not per_batch:
            log(f"[{JOB}] no unprocessed bronze batches: silver unchanged")
        else:
            summary.rows_read = sum(n["rows_in"] for _, n in per_batch)
            summary.rows_quarantined = sum(n["quarantined"] for _, n in per_batch)
            log(
                f"[{JOB}] {len(per_batch)} batch(es), {summary.rows_read} rows ({bronze.rows} bronze rows read "
                f"from the {bronze.how}); quarantined by rule: {rule_counts or 'none'}"
            )
            silver_df = silver.to_silver_candles(silver.latest_per_key(silver.accepted(classified)), now)
            # Halt-tier expectations gate the MERGE: on failure nothing below is written.
            _, summary.details["dq_report"] = quality_gate(
                spark,
                silver_df,
                silver_candle_rules(),
                root=root,
                layer="silver",
                table_name=SILVER_CANDLES.name,
                run_id=run_id,
                s3_endpoint=cfg.s3_endpoint,
            )
            merged = _merge(spark, silver_df, root)
            summary.rows_written = merged.rows_inserted + merged.rows_updated
            summary.details.update(inserted=merged.rows_inserted, updated=merged.rows_updated)
            summary.details["quarantine_rules"] = rule_counts
            _record_new_batches(spark, classified, per_batch, done_ids, root, now, bronze.upto)
        for tbl in (SILVER_CANDLES, SILVER_QUARANTINE):
            delta_io.ensure_table(spark, tbl, root)
            summary.versions[tbl.name] = delta_io.version(spark, tbl, root)
    finally:
        classified.unpersist()
    return summary


@dataclass(frozen=True)
class _BronzeInput:
    df: DataFrame
    """The bronze rows to consider (before the anti-join with processed_batches)."""
    upto: int | None
    """The bronze version they were read at; None when there is no bronze table."""
    how: str
    """How they were found: `change feed`, `snapshot` (the fallback) or `full refresh`."""
    rows: int
    """How many bronze rows the job read."""


def _bronze_input(spark: SparkSession, root: str, *, full_refresh: bool, log: Log) -> _BronzeInput:
    """The bronze rows appended after the recorded marker, from the change feed; else (see the
    module docstring) the whole table at a pinned version, once.

    The count is the job's deliberate action on its input: it reports what was read, and it is
    where Delta raises when the feed does not cover the range (read_changes cannot see that before
    an action: the error comes when the scan is planned)."""
    delta_io.ensure_change_feed(spark, BRONZE_CANDLES, root)
    upto = delta_io.version(spark, BRONZE_CANDLES, root)
    if upto is None:
        return _BronzeInput(delta_io.read(spark, BRONZE_CANDLES, root), None, "snapshot", 0)
    recorded = (
        None if full_refresh else delta_io.last_commit_metadata(spark, SILVER_PROCESSED_BATCHES, root, BRONZE_MARKER)
    )
    after = recorded[BRONZE_MARKER] if recorded else None
    if isinstance(after, int) and after <= upto:
        changes = delta_io.read_changes(spark, BRONZE_CANDLES, root, after=after, upto=upto)
        if changes is not None:
            try:
                return _BronzeInput(changes, upto, "change feed", changes.count())
            except AnalysisException as err:
                log(
                    f"[{JOB}] the change feed of {BRONZE_CANDLES.name} does not cover versions {after + 1}..{upto} "
                    f"({err.getErrorClass()}): reading the whole table"
                )
    snapshot = delta_io.read(spark, BRONZE_CANDLES, root, at_version=upto)
    return _BronzeInput(snapshot, upto, "full refresh" if full_refresh else "snapshot", snapshot.count())


TsSpans = dict[str, list[tuple[int, int]]]  # interval → [(first, last) ts in epoch microseconds], sorted


def _ts_spans(silver_df: DataFrame) -> TsSpans:
    """Per interval, the ts spans (epoch µs, inclusive) that cover every row of `silver_df`: one per
    day that holds rows, merged into at most MAX_SPANS by closing the smallest gaps first.

    Epoch microseconds, not collected datetimes: PySpark turns a timestamp into a naive datetime in
    the driver's local time zone, and the literals must be exact."""
    micros = F.unix_micros("ts")
    days = (
        silver_df.groupBy("interval", F.floor(micros / _DAY_MICROS).alias("day"))
        .agg(F.min(micros).alias("first"), F.max(micros).alias("last"))
        .collect()
    )
    by_interval: dict[str, list[tuple[int, int]]] = {}
    for r in sorted(days, key=lambda r: (r["interval"], r["first"])):
        by_interval.setdefault(r["interval"], []).append((r["first"], r["last"]))
    return {interval: _fewest_spans(spans, MAX_SPANS) for interval, spans in by_interval.items()}


def _fewest_spans(spans: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Sorted, disjoint spans merged into at most `limit`: cut only at the `limit - 1` widest gaps."""
    gaps = sorted(range(1, len(spans)), key=lambda i: spans[i][0] - spans[i - 1][1], reverse=True)
    cuts = sorted(gaps[: limit - 1])
    starts = [0, *cuts]
    ends = [*(c - 1 for c in cuts), len(spans) - 1]
    return [(spans[s][0], spans[e][1]) for s, e in zip(starts, ends, strict=True)]


def merge_prune(spans: TsSpans) -> str | None:
    """The MERGE's extra condition on the target `t`: its interval partitions, and per interval
    its ts spans, all as literals (Delta prunes only on literals). Timestamps carry `+00:00`, so
    the session time zone cannot shift them."""
    if not spans:
        return None
    unknown = sorted(set(spans) - set(SUPPORTED_INTERVALS))
    if unknown:  # accepted rows have a known interval (silver rule unknown_interval): a bug if not
        raise ValueError(f"silver rows with unknown interval(s) {unknown}")
    partitions = ", ".join(f"'{interval}'" for interval in sorted(spans))
    per_interval = [
        f"(t.`interval` = '{interval}' AND ({' OR '.join(_ts_between(a, b) for a, b in ranges)}))"
        for interval, ranges in sorted(spans.items())
    ]
    return f"t.`interval` IN ({partitions}) AND ({' OR '.join(per_interval)})"


def _ts_between(first: int, last: int) -> str:
    return f"(t.`ts` >= {_ts_literal(first)} AND t.`ts` <= {_ts_literal(last)})"


def _ts_literal(micros: int) -> str:
    moment = _EPOCH + timedelta(microseconds=micros)
    return f"TIMESTAMP '{moment:%Y-%m-%d %H:%M:%S.%f}+00:00'"


def _merge(spark: SparkSession, silver_df: DataFrame, root: str) -> delta_io.WriteResult:
    """MERGE the accepted rows, pruned to their intervals and time spans (see `merge_prune`)."""
    prune = merge_prune(_ts_spans(silver_df))
    compare = silver.SILVER_VALUE_COLUMNS
    return delta_io.merge_upsert(spark, silver_df, SILVER_CANDLES, root, compare=compare, prune=prune)


Accounting = list[tuple[str, dict[str, int]]]  # (batch_id, {"rows_in", "accepted", "quarantined"}), by batch_id


def _accounting(classified: DataFrame) -> tuple[Accounting, dict[str, int]]:
    """Rows in, accepted and quarantined per batch, and quarantined rows per rule.

    One aggregation (batch × rule; rule null = accepted) gives both: the job's deliberate action
    on the classified rows."""
    counts = classified.groupBy("batch_id", "rule").agg(F.count(F.lit(1)).alias("n")).collect()
    batches: dict[str, dict[str, int]] = {}
    rule_counts: dict[str, int] = {}
    for r in counts:
        batch = batches.setdefault(r["batch_id"], {"rows_in": 0, "accepted": 0, "quarantined": 0})
        batch["rows_in"] += r["n"]
        batch["accepted" if r["rule"] is None else "quarantined"] += r["n"]
        if r["rule"] is not None:
            rule_counts[r["rule"]] = rule_counts.get(r["rule"], 0) + r["n"]
    return sorted(batches.items()), rule_counts


def _record_new_batches(
    spark: SparkSession,
    classified: DataFrame,
    per_batch: Accounting,
    done_ids: set[str],
    root: str,
    now: datetime,
    bronze_upto: int | None,
) -> None:
    """Append the quarantined rows and the accounting of the batches not processed before (a full
    refresh re-MERGEs every batch but must not record one twice), the accounting last and with the
    bronze marker: until that commit lands, the batches count as unprocessed."""
    first_seen = [(batch_id, n) for batch_id, n in per_batch if batch_id not in done_ids]
    if not first_seen:
        return
    first_ids = [batch_id for batch_id, _ in first_seen]
    if any(n["quarantined"] for _, n in first_seen):
        # A run that failed after its quarantine append and before the accounting left these
        # batches' rows there already; its re-run must not add them a second time.
        present = (
            delta_io.read(spark, SILVER_QUARANTINE, root)
            .where(F.col("batch_id").isin(*first_ids))
            .select("batch_id")
            .distinct()
            .collect()
        )
        missing = sorted(set(first_ids) - {r["batch_id"] for r in present})
        if missing:
            rejected = silver.quarantined(classified, now).where(F.col("batch_id").isin(*missing))
            delta_io.append(spark, rejected, SILVER_QUARANTINE, root)
    batches_df = spark.createDataFrame(
        [(batch_id, n["rows_in"], n["accepted"], n["quarantined"], now) for batch_id, n in first_seen],
        SILVER_PROCESSED_BATCHES.schema,
    )
    _append_with_metadata(spark, batches_df, SILVER_PROCESSED_BATCHES, root, {BRONZE_MARKER: bronze_upto})


def _append_with_metadata(
    spark: SparkSession, df: DataFrame, tbl: Table, root: str, metadata: dict[str, object]
) -> None:
    """`delta_io.append` with `metadata` in its commit's user metadata (read back with
    `delta_io.last_commit_metadata`); delta_io.append takes no `metadata=` yet.

    The table is created before the metadata is set: a creation commit carrying the marker would
    claim batches whose records were never written."""
    delta_io.ensure_table(spark, tbl, root)
    spark.conf.set(_USER_METADATA, json.dumps(metadata, sort_keys=True))
    try:
        delta_io.append(spark, df, tbl, root)
    finally:
        spark.conf.unset(_USER_METADATA)
