"""Benchmark: the cost of appending ONE bar per symbol to a lake with a short and a long history.

    python -m tests.benchmarks.bench_incremental [--symbols 200 --bars 1000,10000 --interval 1d
                                                  --repeats 1 --out build/bench/incremental.json]

Not a pytest test (the full builds take minutes). The daily pipeline appends one bar per symbol
to a history that only grows, so its cost must not grow with the history: the goal is
T(append | 10,000 bars) / T(append | 1,000 bars) ≤ 1.3, for ingest → silver → features together.

For each history length N:

1. a lake of `--symbols` synthetic symbols × N bars, built by the job bodies themselves
   (`lakehouse.jobs.<job>.run`, as glue_jobs/_entry.py calls them) in one Spark session, and
   cached under build/bench/incremental/ keyed by size (a `complete.json` marks a finished
   build; `--rebuild` ignores the cache). The synthetic source is asked for N + 1 bars and the
   build's `end` stops it one bar short: the appended bar then continues the same random walk.
2. the append, timed job by job, on a fresh copy of that lake (the cache stays pristine): the
   same config without `end`, so the watermark leaves exactly one new bar per symbol. The jobs'
   `now` is one hour after the newest bar (synthetic daily bars run to 2053 at N = 10,000: a
   wall-clock `now` would quarantine them as future bars).
3. per job: seconds, the JobSummary's figures (rows_read, rows_written, details), the rows
   Spark's file scans returned per table (the "number of output rows" of every `Scan parquet`
   node of the job's SQL executions, grouped by the table path it read; Delta log files
   excluded), which shows whether a job reads the whole history of silver or gold, and the
   Delta commits it made with their operation metrics (a MERGE's numTargetRowsCopied shows
   whether it rewrote the whole table to change a few rows).
4. checks (untimed): every symbol has its new bar in silver and in gold, and gold holds
   symbols × (N + 1) rows.

Before the timed appends an untimed warm-up append runs on the smallest lake, so the first
timed append does not pay for JIT compilation the others do not. `--repeats k` runs each append
k times (alternating sizes, each from a fresh copy) and keeps each job's fastest time. Another
process may share the machine: compare the ratios of one run, not seconds across runs.

Run with CANDLELAKE_JAVA_OPTS="" (C2 JIT, as `make bench-incremental` does).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from lakecontract.constants import INTERVALS
from lakehouse.config import LakeConfig
from lakehouse.sources.synthetic import bar_times, synthetic_symbols
from tests.benchmarks.cli import parse_known, write_report

REPO_ROOT = Path(__file__).resolve().parents[2]
JOBS = ("ingest_candles", "build_silver", "build_features")
TOTALS = ("total", "total_excl_source")
GOAL_RATIO = 1.3
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:8.1f}s] {msg}", flush=True)


# --- what a job read -----------------------------------------------------------------------------

_LOCATION = re.compile(r"Location: \w+\((\d+) paths?\)\[([^\]]*)\]")
_CDF_PATH = re.compile(r"Snapshot\(path=([^,]*?)/_delta_log")


def _scanned_table(name: str, desc: str) -> str | None:
    """The table path a scan node read (`… (change feed)` for a Delta CDF read), None for Delta's
    own log files and anything that is not a file scan."""
    if name.startswith("Scan parquet"):
        found = _LOCATION.search(desc)
        if not found or "_delta_log" in found.group(2):
            return None
        return found.group(2).split(",")[0].strip()
    if name.startswith("Scan DeltaCDFRelation"):
        found = _CDF_PATH.search(desc)
        return f"{found.group(1)} (change feed)" if found else None
    return None


class ScanMeter:
    """Rows returned by Spark's Parquet scans, per table, for the SQL executions after a mark.

    Reads Spark's SQL status store through py4j (the UI is off, the store is not). A scan node's
    description names its location (`…FileIndex(1 paths)[file:/…/silver/candles]`); the lake root
    is cut off so the key is the table (`silver/candles`). Scans of `_delta_log` are Delta's own
    bookkeeping and left out; a Change Data Feed read (`Scan DeltaCDFRelation`) counts as
    `<table> (change feed)`. Rows are those the reader returned, after Parquet/Delta skipping and
    before any Filter: what the job really had to read."""

    def __init__(self, spark: Any) -> None:
        self._store = spark._jsparkSession.sharedState().statusStore()

    def mark(self) -> int:
        executions = self._store.executionsList()
        ids = [executions.apply(i).executionId() for i in range(executions.length())]
        return max(ids, default=-1)

    def rows_since(self, mark: int, root: str) -> dict[str, int]:
        executions = self._store.executionsList()
        per_table: dict[str, int] = {}
        prefix = re.sub(r"^file:", "", root).rstrip("/") + "/"
        for i in range(executions.length()):
            eid = executions.apply(i).executionId()
            if eid <= mark:
                continue
            values = self._store.executionMetrics(eid)
            nodes = self._store.planGraph(eid).allNodes()
            for j in range(nodes.length()):
                node = nodes.apply(j)
                table = _scanned_table(node.name(), node.desc())
                if table is None:
                    continue
                table = re.sub(r"^file:", "", table)
                table = table[len(prefix) :] if table.startswith(prefix) else table
                metrics = node.metrics()
                for k in range(metrics.length()):
                    metric = metrics.apply(k)
                    if metric.name() == "number of output rows":
                        value = values.get(metric.accumulatorId())
                        rows = int(value.get().replace(",", "")) if value.isDefined() else 0
                        per_table[table] = per_table.get(table, 0) + rows
        return dict(sorted(per_table.items()))


# --- the lake ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Size:
    symbols: int
    bars: int
    interval: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.symbols}x{self.bars}_{self.interval}_seed{self.seed}"

    @property
    def times(self) -> pd.DatetimeIndex:
        """The bars' times: N of history and the one appended."""
        return bar_times(self.interval, self.bars + 1)

    def config(self, root: Path, *, full_build: bool, request_all: bool) -> LakeConfig:
        """The source holds N + 1 bars; the full build ends before the last one, the append does not.

        Symbols are named unless `request_all`: with an empty request the ingest cannot use the
        watermarks to narrow the fetch (lakehouse/jobs/ingest_candles.py `_fetch_start`)."""
        return LakeConfig(
            lake_root=str(root),
            source="synthetic",
            symbols=() if request_all else synthetic_symbols(self.symbols),
            intervals=(self.interval,),
            end=self.times[self.bars].isoformat() if full_build else None,
            synthetic_symbols=self.symbols,
            synthetic_bars=self.bars + 1,
            seed=self.seed,
        )

    def now(self, *, full_build: bool) -> dt.datetime:
        last = self.times[self.bars - 1] if full_build else self.times[self.bars]
        return (last + pd.Timedelta(hours=1)).to_pydatetime()


def run_jobs(
    spark: Any, cfg: LakeConfig, now: dt.datetime, run_id: str, meter: ScanMeter, say: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """The three job bodies in pipeline order, each timed apart, with its summary and scans."""
    from lakehouse.jobs import build_features, build_silver, ingest_candles

    bodies = {"ingest_candles": ingest_candles, "build_silver": build_silver, "build_features": build_features}
    out: dict[str, dict[str, Any]] = {}
    for name in JOBS:
        lines: list[str] = []

        def job_log(msg: str, lines: list[str] = lines) -> None:
            lines.append(msg)
            say(f"  {msg}")

        mark = meter.mark()
        before = table_versions(spark, cfg)
        say(f"{name} …")
        start = time.perf_counter()
        summary = bodies[name].run(spark, cfg, run_id=f"{run_id}-{name}", now=now, log=job_log)
        seconds = time.perf_counter() - start
        scans = meter.rows_since(mark, cfg.resolved_root)
        commits = delta_commits(spark, cfg, before)
        fetch = [float(m.group(1)) for line in lines for m in [re.search(r"rows fetched in ([\d.]+)s", line)] if m]
        say(f"{name} done in {seconds:.1f} s: {summary.line()}")
        say(f"{name} scanned rows per table: {scans or 'none'}")
        for table, entries in commits.items():
            for c in entries:
                shown = {k: c["metrics"][k] for k in _SHOWN_METRICS if k in c["metrics"]}
                say(f"{name} committed {table}@v{c['version']} {c['operation']}: {shown}")
        out[name] = {
            "seconds": seconds,
            "summary": json.loads(summary.to_json()),
            "scan_rows": scans,
            "delta_commits": commits,
            "source_fetch_s": sum(fetch) if fetch else None,
        }
    return out


_SHOWN_METRICS = (
    "numOutputRows",
    "numTargetRowsInserted",
    "numTargetRowsUpdated",
    "numTargetRowsCopied",
    "numTargetFilesRemoved",
    "numTargetFilesAdded",
    "numFiles",
    "executionTimeMs",
    "scanTimeMs",
    "rewriteTimeMs",
)


def _lake_tables(cfg: LakeConfig) -> list[Any]:
    from lakehouse import tables

    return [
        tables.BRONZE_CANDLES,
        tables.SILVER_CANDLES,
        tables.SILVER_QUARANTINE,
        tables.SILVER_PROCESSED_BATCHES,
        tables.GOLD_DQ_RESULTS,
        *(tables.gold_features(i) for i in cfg.intervals),
    ]


def table_versions(spark: Any, cfg: LakeConfig) -> dict[str, int | None]:
    from lakehouse import delta_io

    return {t.name: delta_io.version(spark, t, cfg.resolved_root) for t in _lake_tables(cfg)}


def delta_commits(spark: Any, cfg: LakeConfig, before: dict[str, int | None]) -> dict[str, list[dict[str, Any]]]:
    """The commits a job made, per table, with Delta's operation metrics (how many rows a MERGE
    copied into rewritten files tells whether it touched the whole table)."""
    from delta.tables import DeltaTable

    from lakehouse import delta_io

    out: dict[str, list[dict[str, Any]]] = {}
    for tbl in _lake_tables(cfg):
        if not delta_io.exists(spark, tbl, cfg.resolved_root):
            continue
        since = before.get(tbl.name)
        history = DeltaTable.forPath(spark, tbl.path(cfg.resolved_root)).history()
        if since is not None:
            history = history.where(history["version"] > since)
        rows = history.select("version", "operation", "operationMetrics").orderBy("version").collect()
        if rows:
            out[tbl.name] = [
                {"version": r["version"], "operation": r["operation"], "metrics": dict(r["operationMetrics"] or {})}
                for r in rows
            ]
    return out


def cached_lake(spark: Any, size: Size, cache_dir: Path, args: argparse.Namespace, meter: ScanMeter) -> Path:
    """The pristine full build of `size`, built once and reused (a complete.json marks it finished)."""
    lake = cache_dir / f"lake_{size.key}"
    marker = lake / "complete.json"
    code = code_fingerprint()
    if marker.exists() and not args.rebuild:
        built = json.loads(marker.read_text())
        if built.get("code") == code or args.reuse_stale:
            log(f"lake {size.key}: reusing {lake.relative_to(REPO_ROOT)} (built {built['built']})")
            return lake
        log(f"lake {size.key}: lakehouse/ changed since the cached build: rebuilding (--reuse-stale keeps it)")
    shutil.rmtree(lake, ignore_errors=True)
    lake.mkdir(parents=True)
    rows = size.symbols * size.bars
    log(f"lake {size.key}: full build of {size.symbols} × {size.bars} = {rows:,} rows (minutes at 2 M rows) …")
    cfg = size.config(lake, full_build=True, request_all=args.request_all)
    start = time.perf_counter()
    jobs = run_jobs(spark, cfg, size.now(full_build=True), "full", meter, log)
    seconds = time.perf_counter() - start
    built = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    record = {"built": built, "code": code, "seconds": seconds, "jobs": jobs}
    marker.write_text(json.dumps(record, indent=2, default=str))
    log(f"lake {size.key}: built in {seconds:.0f} s, {_du(lake) / 2**20:.0f} MiB")
    return lake


def code_fingerprint() -> str:
    """A hash of the package's sources: a lake built by other code (another gold schema or state)
    is not the lake this code would append to."""
    digest = hashlib.sha256()
    for path in sorted((REPO_ROOT / "lakehouse").rglob("*.py")):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def append_one_bar(
    spark: Any, size: Size, lake: Path, work: Path, args: argparse.Namespace, meter: ScanMeter, label: str
) -> dict[str, Any]:
    """Copy the pristine lake, append the next bar of every symbol, time each job, check the result."""
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    shutil.copytree(lake, work)
    log(f"append {size.key} ({label}): copied the lake in {time.perf_counter() - start:.1f} s")
    cfg = size.config(work, full_build=False, request_all=args.request_all)
    jobs = run_jobs(spark, cfg, size.now(full_build=False), label, meter, log)
    total = sum(j["seconds"] for j in jobs.values())
    log(f"append {size.key} ({label}): {total:.1f} s in all")
    checks = check_append(spark, size, cfg)
    return {"jobs": jobs, "total_s": total, "checks": checks}


def check_append(spark: Any, size: Size, cfg: LakeConfig) -> dict[str, int]:
    """Every symbol's new bar is in silver and gold, and gold holds every bar: else fail."""
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.tables import SILVER_CANDLES, gold_features

    new_ts = size.times[size.bars].to_pydatetime()
    silver = delta_io.read(spark, SILVER_CANDLES, cfg.resolved_root).where(F.col("interval") == size.interval)
    gold = delta_io.read(spark, gold_features(size.interval), cfg.resolved_root)
    checks = {
        "silver_new_bar_symbols": silver.where(F.col("ts") == F.lit(new_ts)).count(),
        "gold_new_bar_symbols": gold.where(F.col("ts") == F.lit(new_ts)).count(),
        "gold_rows": gold.count(),
    }
    expected = {"silver_new_bar_symbols": size.symbols, "gold_new_bar_symbols": size.symbols}
    expected["gold_rows"] = size.symbols * (size.bars + 1)
    if checks != expected:
        raise AssertionError(f"append of {size.key} left the lake wrong: {checks}, expected {expected}")
    return checks


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=200)
    p.add_argument("--bars", default="1000,10000", help="comma-separated history lengths; the ratio is last / first")
    p.add_argument("--interval", default="1d", choices=INTERVALS)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeats", type=int, default=1, help="timed appends per size (each job's fastest is kept)")
    p.add_argument("--partitions", type=int, default=4, help="spark.sql.shuffle.partitions (the jobs' default: 4)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached full lakes")
    p.add_argument("--reuse-stale", action="store_true", help="reuse cached lakes built by other lakehouse/ code")
    p.add_argument(
        "--request-all",
        action="store_true",
        help="ask the source for every symbol (empty --symbols, the synthetic/CSV default), not for each by name",
    )
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up append")
    p.add_argument("--cache-dir", default="build/bench/incremental")
    p.add_argument("--out", default="build/bench/incremental.json")
    args = parse_known(p, argv)
    try:
        args.sizes = sorted({int(b) for b in args.bars.split(",") if b.strip()})
    except ValueError:
        p.error(f"--bars: expected comma-separated integers, got {args.bars!r}")
    if not args.sizes or min(args.sizes) < 30 or args.symbols < 1 or args.repeats < 1:
        p.error("--bars needs history lengths ≥ 30 (the longest feature window), --symbols and --repeats ≥ 1")
    return args


def _abs(path: str) -> Path:
    return Path(path) if Path(path).is_absolute() else REPO_ROOT / path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cache_dir, out = _abs(args.cache_dir), _abs(args.out)
    sizes = [Size(args.symbols, n, args.interval, args.seed) for n in args.sizes]
    log(f"benchmark: append one bar to {args.symbols} symbols with {', '.join(map(str, args.sizes))} bars of history")

    import pyspark

    from lakehouse.spark import get_spark

    start = time.perf_counter()
    spark = get_spark("bench-incremental", shuffle_partitions=args.partitions)
    log(f"spark: session up in {time.perf_counter() - start:.1f} s")
    spark.conf.set("spark.sql.maxMetadataStringLength", "100000")  # whole table paths in the scan nodes
    meter = ScanMeter(spark)

    lakes = {s.bars: cached_lake(spark, s, cache_dir, args, meter) for s in sizes}
    builds = {s.bars: json.loads((lakes[s.bars] / "complete.json").read_text()) for s in sizes}
    if not args.no_warmup:
        log("warm-up append (untimed) …")
        append_one_bar(spark, sizes[0], lakes[sizes[0].bars], cache_dir / "work_warmup", args, meter, "warm-up")
        shutil.rmtree(cache_dir / "work_warmup", ignore_errors=True)
    runs: dict[int, list[dict[str, Any]]] = {s.bars: [] for s in sizes}
    for r in range(args.repeats):
        for s in sizes:
            work = cache_dir / f"work_{s.key}"
            runs[s.bars].append(append_one_bar(spark, s, lakes[s.bars], work, args, meter, f"append-{r + 1}"))
            shutil.rmtree(work, ignore_errors=True)

    best = {n: {job: min(run["jobs"][job]["seconds"] for run in rs) for job in JOBS} for n, rs in runs.items()}
    for n in best:
        best[n]["total"] = min(run["total_s"] for run in runs[n])
        # The synthetic source draws its whole universe on every fetch (clipping after): a cost of
        # the stand-in source, not of the pipeline; a real source asked from the watermark is not.
        best[n]["total_excl_source"] = min(
            run["total_s"] - (run["jobs"][JOBS[0]]["source_fetch_s"] or 0) for run in runs[n]
        )
    small, large = min(args.sizes), max(args.sizes)
    ratios = {k: best[large][k] / best[small][k] for k in (*JOBS, *TOTALS)} if large != small else {}
    report = {
        "config": {k: v for k, v in vars(args).items()},
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "spark": pyspark.__version__,
            "spark_driver_memory": spark.sparkContext.getConf().get("spark.driver.memory"),
            "spark_driver_java_options": spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"),
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "full_builds": {n: {"seconds": b["seconds"], "built": b["built"]} for n, b in builds.items()},
        "appends": runs,
        "best_s": best,
        "ratio_large_to_small": ratios,
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratios["total"] <= GOAL_RATIO if ratios else None,
    }
    write_report(out, report)
    print_table(report, args)
    log(f"wrote {out}")
    spark.stop()
    return 0


def print_table(report: dict[str, Any], args: argparse.Namespace) -> None:
    best, ratios = report["best_s"], report["ratio_large_to_small"]
    small, large = min(args.sizes), max(args.sizes)
    print()
    print(f"incremental benchmark: append 1 bar × {args.symbols} symbols ({args.interval}), best of {args.repeats}")
    head = "".join(f"{f'{n:,} bars':>14}" for n in args.sizes)
    print(f"  {'job':<18}{head}{f'{large:,}/{small:,}':>14}")
    for job in (*JOBS, *TOTALS):
        cells = "".join(f"{best[n][job]:>13.1f}s" for n in args.sizes)
        ratio = f"{ratios[job]:>14.2f}" if ratios else f"{'–':>14}"
        print(f"  {job:<18}{cells}{ratio}")
    for n in args.sizes:
        first = report["appends"][n][0]["jobs"]
        for job in JOBS:
            s = first[job]["summary"]
            details = {k: v for k, v in s["details"].items() if k not in ("dq_report", "run_id", "batch_id")}
            if first[job]["source_fetch_s"] is not None:
                details["source_fetch_s"] = round(first[job]["source_fetch_s"], 1)
            print(
                f"  {n:>6,} bars {job:<15} rows_read={s['rows_read']:<8} rows_written={s['rows_written']:<8}"
                f" details={details} scanned={first[job]['scan_rows']}"
            )
    if ratios:
        verdict = "MET" if report["goal_met"] else "NOT met"
        print(
            f"  goal T({large:,})/T({small:,}) ≤ {GOAL_RATIO} for the whole append: {verdict} ({ratios['total']:.2f})"
        )


if __name__ == "__main__":
    sys.exit(main())
