"""Benchmark: what build_silver costs for a full build and for one more bar per symbol.

    python -m tests.benchmarks.bench_silver [--symbols 200 --bars 2000 --lake build/bench/silver_lake]

Not a pytest test (minutes, and it wants the machine to itself). It builds a fresh lake from the
synthetic source (`symbols × bars` daily bars), runs build_silver (the full build), ingests one
more bar per symbol (`bars + 1`, same seed: the old bars are identical, so ingest appends only the
new one) and runs build_silver again. It prints, for each silver run, the seconds, the bronze rows
the job read (`details.bronze_rows_read`; jobs from before that counter print `?`), the rows it
wrote and how it found its input (`details.bronze_read`), and writes them as JSON with `--out`.
Timings start after the SparkSession is up; another process may share the machine, so compare
runs taken side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from pyspark.sql import SparkSession

from lakehouse.config import LakeConfig
from lakehouse.jobs import build_silver, ingest_candles
from lakehouse.spark import get_spark
from tests.benchmarks.cli import parse_known

REPO_ROOT = Path(__file__).resolve().parents[2]


def _timed_silver(spark: SparkSession, cfg: LakeConfig, label: str) -> dict[str, object]:
    started = time.monotonic()
    summary = build_silver.run(spark, cfg, run_id=None, now=datetime.now(UTC), log=lambda *_: None)
    seconds = time.monotonic() - started
    result = {
        "run": label,
        "silver_s": round(seconds, 1),
        "bronze_rows_read": summary.details.get("bronze_rows_read", "?"),
        "bronze_read": summary.details.get("bronze_read", "?"),
        "rows_written": summary.rows_written,
        "inserted": summary.details.get("inserted"),
        "updated": summary.details.get("updated"),
    }
    print(json.dumps(result), flush=True)
    return result


def _ingest(spark: SparkSession, cfg: LakeConfig) -> float:
    started = time.monotonic()
    ingest_candles.run(spark, cfg, run_id=None, now=datetime.now(UTC), log=lambda *_: None)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--bars", type=int, default=2_000)
    parser.add_argument("--lake", default=str(REPO_ROOT / "build" / "bench" / "silver_lake"))
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parse_known(parser, argv)

    shutil.rmtree(args.lake, ignore_errors=True)
    spark = get_spark("bench-silver")
    base = {"lake_root": args.lake, "source": "synthetic", "symbols": (), "synthetic_symbols": args.symbols}
    results = []
    ingest_s = _ingest(spark, LakeConfig(**base, synthetic_bars=args.bars))
    print(f"ingest {args.symbols} x {args.bars}: {ingest_s:.1f}s", flush=True)
    results.append(_timed_silver(spark, LakeConfig(**base, synthetic_bars=args.bars), "full build"))
    ingest_s = _ingest(spark, LakeConfig(**base, synthetic_bars=args.bars + 1))
    print(f"ingest one more bar per symbol: {ingest_s:.1f}s", flush=True)
    results.append(_timed_silver(spark, LakeConfig(**base, synthetic_bars=args.bars + 1), "one more bar"))
    results.append(_timed_silver(spark, LakeConfig(**base, synthetic_bars=args.bars + 1), "nothing new"))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"symbols": args.symbols, "bars": args.bars, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
