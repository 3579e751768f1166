"""Job body of build_features: silver/candles → gold/features_<interval>, incremental, quality-gated.

What a run reads is bounded by what changed, not by the history:
- **Which bars changed**: the Delta Change Data Feed of silver/candles between the silver version
  the table's last build consumed (stored in that gold commit's user metadata, so it commits
  atomically with the rows) and the current one. A lake without that record (first build, a
  table from before this scheme, a feed that does not cover the range) is built in full once.
- **Per changed symbol**: the first changed bar f, the bar a before it (its label changes), and
  the stored recursive state of the bar before a (`feature_math.RESUME_COLUMNS`: EMAs, MACD
  signal, Wilder averages, ATR, bar number) from gold; silver is read only from `CONTEXT_BARS`
  bars before a. `feature_math` then recomputes a, f and everything after them exactly as a full
  rebuild would (bit for bit: blocks aligned to the bar number, the same recursion steps). A
  correction of an old bar (a backfill) resumes from the state just before it.
  A symbol with no earlier gold bar, or one whose bar before a is earlier than every recursion's
  seed (`RESUME_FROM_BAR`), is recomputed from its first bar; only its rows from a are written.
- **The MERGE** names the earliest rewritten bar as a literal, so Delta skips gold files that hold
  only older bars.

Quality: the rows about to be written are validated with the gold suite (Great Expectations)
before the MERGE; a failed halt-tier expectation raises `QualityHalt`, so the table's Delta
version does not move (nor the consumed silver version). Every validation is recorded in
gold/dq_results and in an HTML report.

Each gold commit records the silver version it consumed and the symbols it built (all: null). A
run for some symbols resumes from the newest commit that covered them; a later run for all symbols
goes back to the newest all-symbol commit and re-reads the changes since (correct, not free).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakecontract.constants import BAR_SECONDS
from lakecontract.feature_math import CONTEXT_BARS, RESUME_COLUMNS, RESUME_FROM_BAR
from lakecontract.feature_spec import FEATURE_NAMES, STATE_COLUMNS
from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.features import KEEP_FROM, RESUME_PREFIX, with_features, with_resumed_features
from lakehouse.job_summary import JobSummary
from lakehouse.jobs import Log
from lakehouse.tables import SILVER_CANDLES, Table, gold_features

JOB = "build_features"
CONSUMED, SYMBOLS = "silver_version", "symbols"  # user metadata of each gold commit


@dataclass
class Plan:
    """What one interval's build computes: the candles to feed the UDF and how many silver rows
    that took (change feed rows + tail rows)."""

    mode: str  # "full", "incremental" or "up to date"
    symbols: list[str] = field(default_factory=list)
    candles: DataFrame | None = None
    silver_rows: int = 0
    earliest_write: datetime | None = None


def run(spark: SparkSession, cfg: LakeConfig, *, run_id: str | None, now: datetime, log: Log) -> JobSummary:
    """Build, validate and MERGE the features of the bars changed since the last build, per interval."""
    run_id = run_id or f"{now:%Y%m%dT%H%M%SZ}-features"
    root = cfg.resolved_root
    summary = JobSummary(JOB, details={"run_id": run_id})
    delta_io.ensure_change_feed(spark, SILVER_CANDLES, root)
    silver_version = delta_io.version(spark, SILVER_CANDLES, root)
    for interval in cfg.intervals:
        target: Table = gold_features(interval)
        plan = _plan(spark, cfg, interval, target, silver_version)
        summary.rows_read += plan.silver_rows
        summary.details[f"{interval}_silver_rows"] = plan.silver_rows
        if plan.candles is None:
            log(f"[{JOB}] {target.name}: up to date, nothing to rebuild")
            summary.versions[target.name] = delta_io.version(spark, target, root)
            continue
        log(
            f"[{JOB}] {target.name}: {plan.mode} build of {len(plan.symbols)} symbol(s) from "
            f"{plan.silver_rows} silver rows: {_names(plan.symbols)}"
        )
        written = _write(spark, cfg, plan, target, run_id=run_id, now=now, consumed=silver_version, summary=summary)
        log(f"[{JOB}] data-quality report: {summary.details['dq_report']}")
        summary.rows_written += written.rows_inserted + written.rows_updated
        summary.versions[target.name] = written.version
        summary.details[f"{interval}_inserted"] = written.rows_inserted
        summary.details[f"{interval}_updated"] = written.rows_updated
    return summary


def _names(symbols: list[str], shown: int = 12) -> str:
    head = ", ".join(sorted(symbols)[:shown])
    return head + (f" … (+{len(symbols) - shown})" if len(symbols) > shown else "")


def _silver(spark: SparkSession, cfg: LakeConfig, interval: str, version: int | None) -> DataFrame:
    df = delta_io.read(spark, SILVER_CANDLES, cfg.resolved_root, at_version=version)
    df = df.where(F.col("interval") == interval)
    return df.where(F.col("symbol").isin(*cfg.symbols)) if cfg.symbols else df


def _plan(spark: SparkSession, cfg: LakeConfig, interval: str, target: Table, silver_version: int | None) -> Plan:
    root = cfg.resolved_root
    silver = _silver(spark, cfg, interval, silver_version)
    consumed = _consumed_version(spark, cfg, target)
    changes = (
        None
        if consumed is None or silver_version is None
        else delta_io.read_changes(spark, SILVER_CANDLES, root, after=consumed, upto=silver_version)
    )
    if changes is None:
        candles = silver.persist(StorageLevel.MEMORY_AND_DISK)
        symbols = [r["symbol"] for r in candles.select("symbol").distinct().collect()]
        return Plan("full", symbols, candles if symbols else None, candles.count())
    changes = changes.where(F.col("interval") == interval)
    if cfg.symbols:
        changes = changes.where(F.col("symbol").isin(*cfg.symbols))
    first_changed = {
        r["symbol"]: (r["first_changed"], r["n"])
        for r in changes.groupBy("symbol").agg(F.min("ts").alias("first_changed"), F.count("*").alias("n")).collect()
    }
    change_rows = sum(n for _, n in first_changed.values())
    if not first_changed:
        return Plan("up to date", silver_rows=change_rows)
    starts = _resume_points(spark, delta_io.read(spark, target, root), first_changed, interval)
    tail = _tail(spark, silver, starts).persist(StorageLevel.MEMORY_AND_DISK)
    earliest: datetime = min(s[KEEP_FROM] for s in starts)  # type: ignore[type-var,assignment]
    return Plan("incremental", sorted(first_changed), tail, change_rows + tail.count(), earliest)


def _consumed_version(spark: SparkSession, cfg: LakeConfig, target: Table) -> int | None:
    """The silver version up to which the table reflects every change of the symbols this run
    builds: that of the newest build whose symbols covered them (a build of all symbols covers
    any). None where it must be built in full (never built, or built before the state columns)."""
    root = cfg.resolved_root
    if not delta_io.exists(spark, target, root):
        return None
    if not set(STATE_COLUMNS) <= set(delta_io.read(spark, target, root).columns):
        return None
    wanted = set(cfg.symbols)

    def covers(metadata: dict[str, object]) -> bool:
        built = metadata.get(SYMBOLS)
        return built is None or (bool(wanted) and wanted <= set(built))  # type: ignore[call-overload]

    found = delta_io.last_commit_metadata(spark, target, root, CONSUMED, where=covers)
    return None if found is None else int(found[CONSUMED])


_START_SCHEMA = T.StructType(
    [
        T.StructField("symbol", T.StringType()),
        T.StructField("_tail_from", T.TimestampType()),
        T.StructField(KEEP_FROM, T.TimestampType()),
        *[T.StructField(f"{RESUME_PREFIX}{c}", T.DoubleType()) for c in RESUME_COLUMNS],
    ]
)


Changes = dict[str, tuple[datetime, int]]  # symbol → (first changed ts, changed rows)
Anchors = dict[str, tuple[int, datetime]]  # symbol → (bar_no, ts) of the bar a before the first change
Found = dict[tuple[str, str], dict[str, object]]  # (symbol, "state" | "tail") → that gold row


def _resume_points(
    spark: SparkSession, gold: DataFrame, first_changed: dict[str, tuple[datetime, int]], interval: str
) -> list[dict[str, object]]:
    """Per changed symbol: where its tail of silver starts, the first bar to write, and the
    state to resume from (None: recompute from the first bar).

    Looks in the gold rows of a bounded time range first (`_LOOKBACK`: Delta skips the files of
    older bars, gold being written in time order); a symbol whose bars were not all found there (a
    new symbol, a long gap) is looked up again over its whole history."""
    lower = _lookback_bound(interval, min(ts for ts, _ in first_changed.values()))
    bounded = gold if lower is None else gold.where(F.col("ts") >= F.lit(lower))
    anchors, found = _lookup(spark, bounded, first_changed)
    missing = [s for s in first_changed if not _complete(s, anchors, found)]
    if missing and lower is not None:
        more_anchors, more_found = _lookup(spark, gold, {s: first_changed[s] for s in missing})
        anchors.update(more_anchors)
        found.update(more_found)
    starts = []
    for symbol, (first_ts, _) in first_changed.items():
        a_no, a_ts = anchors.get(symbol, (None, None))
        state, tail = found.get((symbol, "state")), found.get((symbol, "tail"))
        start: dict[str, object] = {"symbol": symbol, "_tail_from": None, KEEP_FROM: a_ts or first_ts}
        start.update({f"{RESUME_PREFIX}{c}": None for c in RESUME_COLUMNS})
        if state is not None and tail is not None and a_no is not None:
            start["_tail_from"] = tail["ts"]
            start.update({f"{RESUME_PREFIX}{c}": _float(state[c]) for c in RESUME_COLUMNS})
        starts.append(start)
    return starts


# Calendar time that surely holds CONTEXT_BARS + 2 bars of a series (weekends, holidays, nights).
def _lookback_bound(interval: str, first: datetime) -> datetime | None:
    seconds = BAR_SECONDS.get(interval)
    return None if seconds is None else first - (CONTEXT_BARS + 2) * timedelta(seconds=seconds) * 2 - timedelta(days=10)


def _complete(symbol: str, anchors: Anchors, found: Found) -> bool:
    """Whether the lookup found everything a resume needs (or the symbol is too short to resume)."""
    if symbol not in anchors:
        return False
    a_no = anchors[symbol][0]
    return a_no - 1 < RESUME_FROM_BAR or ((symbol, "state") in found and (symbol, "tail") in found)


def _lookup(
    spark: SparkSession, gold: DataFrame, first_changed: dict[str, tuple[datetime, int]]
) -> tuple[Anchors, Found]:
    """Two narrow scans of the changed symbols' gold rows, each collected as ≤ 2 rows per symbol."""
    firsts = [(symbol, ts) for symbol, (ts, _) in first_changed.items()]
    changed = spark.createDataFrame(firsts, "symbol string, _first timestamp")
    before = gold.join(F.broadcast(changed), "symbol").where(F.col("ts") < F.col("_first"))
    anchors = {
        r["symbol"]: (r["a_no"], r["a_ts"])
        for r in before.groupBy("symbol").agg(F.max("bar_no").alias("a_no"), F.max("ts").alias("a_ts")).collect()
    }
    wanted = []  # (symbol, bar_no, role): the state bar (before a) and the tail's first bar
    for symbol, (a_no, _) in anchors.items():
        if a_no - 1 >= RESUME_FROM_BAR:
            wanted += [(symbol, a_no - 1, "state"), (symbol, a_no - min(CONTEXT_BARS, a_no - 1), "tail")]
    found: Found = {}
    if wanted:
        keys = spark.createDataFrame(wanted, "symbol string, bar_no int, _role string")
        picked = gold.join(F.broadcast(keys), ["symbol", "bar_no"]).select("symbol", "_role", "ts", *RESUME_COLUMNS)
        found = {(r["symbol"], r["_role"]): r.asDict() for r in picked.collect()}
    return anchors, found


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _tail(spark: SparkSession, silver: DataFrame, starts: list[dict[str, object]]) -> DataFrame:
    """Silver bars of the changed symbols from each tail start (all bars where no resume)."""
    bounds = spark.createDataFrame([tuple(s[f.name] for f in _START_SCHEMA.fields) for s in starts], _START_SCHEMA)
    tail_starts = [s["_tail_from"] for s in starts]
    if all(t is not None for t in tail_starts):  # a literal bound lets Delta skip older files
        silver = silver.where(F.col("ts") >= F.lit(min(tail_starts)))  # type: ignore[type-var]
    return (
        silver.join(F.broadcast(bounds), "symbol")
        .where(F.col("_tail_from").isNull() | (F.col("ts") >= F.col("_tail_from")))
        .drop("_tail_from")
    )


def _write(
    spark: SparkSession,
    cfg: LakeConfig,
    plan: Plan,
    target: Table,
    *,
    run_id: str,
    now: datetime,
    consumed: int | None,
    summary: JobSummary,
) -> delta_io.WriteResult:
    """Compute, gate and write the plan's rows; the consumed silver version commits with them."""
    from lakehouse.quality.gate import quality_gate
    from lakehouse.quality.rules import gold_feature_rules

    root = cfg.resolved_root
    assert plan.candles is not None
    features = with_features(plan.candles) if plan.mode == "full" else with_resumed_features(plan.candles)
    rows = features.withColumn("computed_at", F.lit(now).cast("timestamp")).persist(StorageLevel.MEMORY_AND_DISK)
    metadata = None if consumed is None else {CONSUMED: consumed, SYMBOLS: sorted(cfg.symbols) or None}
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
        replace_all = (
            not cfg.symbols or not delta_io.exists(spark, target, root) or _predates_state(spark, target, root)
        )
        if plan.mode == "full" and replace_all:  # nothing of other symbols to keep
            return delta_io.overwrite(spark, _in_time_order(rows, plan.silver_rows), target, root, metadata=metadata)
        prune = f"t.ts >= timestamp'{_sql_literal(spark, plan.earliest_write)}'" if plan.earliest_write else None
        return delta_io.merge_upsert(spark, rows, target, root, prune=prune, metadata=metadata)
    finally:
        rows.unpersist()
        plan.candles.unpersist()


ROWS_PER_FILE = 250_000


def _in_time_order(rows: DataFrame, n_rows: int) -> DataFrame:
    """A full build written as time slices (files of ≤ ROWS_PER_FILE rows, each a range of ts):
    the next run's bounded lookup and its MERGE then touch only the newest files, so a daily
    append rewrites one slice, not the table (measured: unsorted, one appended bar per symbol
    made the MERGE rewrite all of gold)."""
    slices = max(1, -(-n_rows // ROWS_PER_FILE))
    return rows.repartitionByRange(slices, "ts").sortWithinPartitions("ts", "symbol")


def _sql_literal(spark: SparkSession, ts: datetime) -> str:
    """A collected timestamp as Spark renders it in the session time zone, so that the SQL literal
    names the same instant whatever the driver process's local time zone is."""
    row = spark.range(1).select(F.lit(ts).cast("string").alias("ts")).first()
    assert row is not None
    return str(row["ts"])


def _predates_state(spark: SparkSession, target: Table, root: str) -> bool:
    """A table written before the state columns existed: a MERGE cannot add them, an overwrite can."""
    return delta_io.exists(spark, target, root) and not set(STATE_COLUMNS) <= set(
        delta_io.read(spark, target, root).columns
    )
