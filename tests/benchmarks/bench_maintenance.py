"""Benchmark: what 100 daily incremental runs leave behind, and what maintenance gives back.

    python -m tests.benchmarks.bench_maintenance [--symbols 200 --history 300 --days 100]

Not a pytest test (minutes, and it wants the machine to itself). It builds `symbols × (history + days)`
daily bars with the real jobs (ingest → silver → gold features) into a source lake, then replays the
last `days` days into a second lake one day at a time, writing what a daily run writes: the day's new
silver bars (an insert, appended), the day's gold rows MERGEd on the key (the new bar inserted, the
bar before it updated: its label is only known now, as the incremental features job does) and a
day's data-quality results appended. Then, in one run, before and after `maintain_tables`:
files (live: what the current version reads; stored: on disk), bytes, and the best of three timings
of a gold read (a whole-table aggregate) and of the named query `feature_coverage_per_symbol`
(what an analyst runs on Athena, here on Spark).

Every file of the replay is minutes old, so the default VACUUM (7-day retention) deletes none of
them: the second maintenance pass (`--retention-hours 0`, allowed here only) shows what the weekly
VACUUM deletes once the replaced files are a week old. Figures go to build/bench/maintenance.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from lakehouse import delta_io, maintenance, named_queries
from lakehouse.config import LakeConfig
from lakehouse.jobs import build_features, build_silver, ingest_candles
from lakehouse.spark import get_spark
from lakehouse.tables import GOLD_DQ_RESULTS, SILVER_CANDLES, Table, gold_features
from tests.benchmarks.cli import parse_known, write_report

REPO_ROOT = Path(__file__).resolve().parents[2]
QUERY = "feature_coverage_per_symbol"
GOLD = gold_features("1d")
TABLES = (SILVER_CANDLES, GOLD, GOLD_DQ_RESULTS)


def _best_of(times: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.monotonic()
        action()
        best = min(best, time.monotonic() - started)
    return best


def _reads(spark: SparkSession, root: str) -> dict[str, float]:
    def gold_read() -> object:
        frame = delta_io.read(spark, GOLD, root)
        return frame.agg(F.count("*"), F.avg("close"), F.max("ts")).collect()

    def named_query() -> object:
        return named_queries.run(spark, root, QUERY).collect()

    return {"gold_read_s": _best_of(3, gold_read), "named_query_s": _best_of(3, named_query)}


def _footprints(spark: SparkSession, root: str) -> dict[str, maintenance.Footprint]:
    return {t.name: maintenance.footprint(spark, t.path(root)) for t in TABLES}


def _source_lake(spark: SparkSession, root: str, symbols: int, bars: int) -> None:
    cfg = LakeConfig(lake_root=root, source="synthetic", symbols=(), synthetic_symbols=symbols, synthetic_bars=bars)
    quiet = {"log": lambda *_: None, "now": datetime.now(UTC)}
    for job in (ingest_candles, build_silver, build_features):
        started = time.monotonic()
        job.run(spark, cfg, run_id="source", **quiet)  # type: ignore[attr-defined]
        print(f"source lake: {job.JOB} {time.monotonic() - started:.1f}s", flush=True)  # type: ignore[attr-defined]


def _days(frame: DataFrame) -> list[datetime]:
    return sorted({r.ts for r in frame.select("ts").distinct().collect()})


def _replay(spark: SparkSession, source: str, root: str, days: int) -> float:
    """The lake as `days` daily runs leave it: history written once, then one day at a time."""
    silver, gold = delta_io.read(spark, SILVER_CANDLES, source), delta_io.read(spark, GOLD, source)
    dq = delta_io.read(spark, GOLD_DQ_RESULTS, source).limit(20).cache()
    dq.count()
    all_days = _days(gold)
    replayed = all_days[-days:]
    first = replayed[0]
    delta_io.overwrite(spark, silver.where(F.col("ts") < first), SILVER_CANDLES, root)
    # The last history bar is written without its label, as the run of that day wrote it.
    history = gold.where(F.col("ts") < first)
    last_history = all_days[-days - 1]
    unlabelled = {"label_up": F.lit(None).cast("int"), "label_ret_1": F.lit(None).cast("double")}
    delta_io.overwrite(
        spark,
        history.withColumns(
            {k: F.when(F.col("ts") == last_history, v).otherwise(F.col(k)) for k, v in unlabelled.items()}
        ),
        GOLD,
        root,
    )
    started = time.monotonic()
    previous = last_history
    for number, day in enumerate(replayed, 1):
        delta_io.append(spark, silver.where(F.col("ts") == day), SILVER_CANDLES, root)
        today = gold.where(F.col("ts").isin(previous, day)).withColumns(
            {k: F.when(F.col("ts") == day, v).otherwise(F.col(k)) for k, v in unlabelled.items()}
        )
        prune = f"t.ts >= TIMESTAMP '{previous:%Y-%m-%d %H:%M:%S}'"
        delta_io.merge_upsert(spark, today, GOLD, root, prune=prune)
        delta_io.append(spark, dq.withColumn("run_id", F.lit(f"day-{number}")), GOLD_DQ_RESULTS, root)
        previous = day
        if number % 10 == 0:
            print(f"replayed {number}/{len(replayed)} days ({time.monotonic() - started:.0f}s)", flush=True)
    return time.monotonic() - started


def _row(name: str, before: maintenance.Footprint, after: maintenance.Footprint) -> str:
    return (
        f"  {name:<22} {before.live_files:>7} → {after.live_files:<7} "
        f"{before.stored_files:>7} → {after.stored_files:<7}"
        f" {before.stored_bytes / 2**20:>8.1f} → {after.stored_bytes / 2**20:<8.1f}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--history", type=int, default=300, help="bars per symbol before the replayed days")
    parser.add_argument("--days", type=int, default=100, help="daily incremental runs replayed")
    parser.add_argument("--lake", default=str(REPO_ROOT / "build" / "bench" / "maintenance"))
    parser.add_argument("--out", default=str(REPO_ROOT / "build" / "bench" / "maintenance.json"))
    args = parse_known(parser, argv)

    shutil.rmtree(args.lake, ignore_errors=True)
    source, root = f"{args.lake}/source", f"{args.lake}/lake"
    spark = get_spark("bench-maintenance")
    _source_lake(spark, source, args.symbols, args.history + args.days)
    replay_s = _replay(spark, source, root, args.days)
    print(f"{args.days} daily runs replayed in {replay_s:.0f}s", flush=True)

    before, reads_before = _footprints(spark, root), _reads(spark, root)
    tables: list[Table] = list(TABLES)
    started = time.monotonic()
    maintenance.maintain(spark, tables, root, log=lambda *_: None)
    maintain_s = time.monotonic() - started
    after, reads_after = _footprints(spark, root), _reads(spark, root)
    started = time.monotonic()
    maintenance.maintain(spark, tables, root, retention_hours=0, allow_short_retention=True, log=lambda *_: None)
    vacuum_s = time.monotonic() - started
    week_later = _footprints(spark, root)

    print(f"\n{args.symbols} symbols × {args.history} history bars + {args.days} daily runs")
    print(f"  {'table':<22} {'live files':>17} {'stored files':>17} {'stored MiB':>19}")
    for t in TABLES:
        print(_row(t.name, before[t.name], after[t.name]))
    print(f"  maintain_tables (7-day retention): {maintain_s:.1f}s")
    print("  a week later, the VACUUM deletes the replaced files (retention 0 here):")
    for t in TABLES:
        print(_row(t.name, after[t.name], week_later[t.name]))
    print(f"  that VACUUM: {vacuum_s:.1f}s")
    for key, label in (
        ("gold_read_s", "gold read (aggregate of the table)"),
        ("named_query_s", f"named query {QUERY}"),
    ):
        ratio = reads_before[key] / reads_after[key]
        print(f"  {label:<46} {reads_before[key]:6.2f}s → {reads_after[key]:6.2f}s  (before/after {ratio:.2f}×)")
    write_report(
        Path(args.out),
        {
            "symbols": args.symbols,
            "history": args.history,
            "days": args.days,
            "replay_s": replay_s,
            "maintain_s": maintain_s,
            "vacuum_s": vacuum_s,
            "before": {k: v.__dict__ for k, v in before.items()},
            "after": {k: v.__dict__ for k, v in after.items()},
            "week_later": {k: v.__dict__ for k, v in week_later.items()},
            "reads_before": reads_before,
            "reads_after": reads_after,
        },
    )


if __name__ == "__main__":
    main()
