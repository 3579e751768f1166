"""Benchmark: the training driver's peak memory and wall time, by how the rows reach the model.

    python -m tests.benchmarks.bench_train [--symbols 1000 --bars 5000 --small-bars 1250 --max-rows 1000000]

Not a pytest test (minutes, gigabytes). It writes a synthetic gold/features_1d of `symbols × bars`
warm rows (every column the models read: 99 inputs, prices, labels; random numbers, so every honest
metric is ≈ 0) and a second one of `symbols × small_bars` rows. Then, each in a process of its own
(peak RSS only grows, so one process per figure):

  (a) `toPandas` of every warm row, as `dataset.load` did before the row cap (float64 frame, then the
      float32 matrix a model takes), with spark.driver.maxResultSize lifted: at its 1 GiB default
      this path fails at 5 M rows;
  (b) `dataset.load` with `--train-max-rows` (float32 filled from Arrow batches, newest rows first);
  (c) one `xgboost.spark` fit (the direction classifier) on every row, at both table sizes.

Each prints wall seconds and the driver's peak RSS (the Python process; the JVM and Spark's Python
workers are processes of their own). Goals (issue 15): (c)'s RSS independent of the table size
(ratio of the two sizes ≤ 1.2) and (b)'s RSS ≤ the cap's estimate (`dataset.driver_bytes_estimate`
plus the process's RSS before it loads).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from tests.benchmarks.cli import parse_known, write_report

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 2**20


def _spark(unlimited_results: bool = False):  # type: ignore[no-untyped-def]
    """The session; `unlimited_results` lifts spark.driver.maxResultSize (1 GiB by default), which the
    toPandas path exceeds at 5 M rows (8 tasks, 1,074.6 MiB): what a user of that path had to do."""
    from pyspark.sql import SparkSession

    from lakehouse.spark import get_spark, local_conf

    if not unlimited_results:
        return get_spark("bench_train")
    builder = SparkSession.builder.appName("bench_train").master("local[2]")
    for key, value in local_conf().items():
        builder = builder.config(key, value)
    return builder.config("spark.driver.maxResultSize", "0").getOrCreate()


def write_gold(root: Path, symbols: int, bars: int, seed: int = 0) -> int:
    """gold/features_1d with the columns training reads, `symbols × bars` warm rows, one file per ~250 k rows."""
    from pyspark.sql import functions as F

    from lakehouse.ml.dataset import LABEL_COLUMNS, MODEL_FEATURES, PRICE_COLUMNS

    spark = _spark()
    n = symbols * bars
    ids = spark.range(n, numPartitions=max(2, n // 250_000)).withColumn("bar", F.floor(F.col("id") / symbols))
    ret = F.when(F.col("bar") == bars - 1, None).otherwise(F.randn(seed + 5) * 0.01)  # the newest bar: no next bar
    frame = ids.select(
        F.format_string("SYN%05d", (F.col("id") % symbols).cast("int")).alias("symbol"),
        F.expr("timestamp'2000-01-01 00:00:00' + make_interval(0, 0, 0, cast(bar as int))").alias("ts"),
        F.lit(True).alias("is_warm"),
        (100 + F.rand(seed)).alias("close"),
        *[(100 + F.rand(seed + 1 + i)).alias(c) for i, c in enumerate(PRICE_COLUMNS)],
        *[F.randn(seed + 10 + i).alias(c) for i, c in enumerate(MODEL_FEATURES)],
        ret.alias("label_ret_1"),
    ).withColumn("label_up", (F.col("label_ret_1") > 0).cast("double"))
    assert set(LABEL_COLUMNS) <= set(frame.columns)
    target = root / "gold" / "features_1d"
    frame.write.format("delta").mode("overwrite").save(str(target))
    return n


def _peak() -> int:
    from lakehouse.ml.dataset import peak_rss_bytes

    return peak_rss_bytes()


def _rss_now() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(path: str, root: str, max_rows: int) -> dict[str, object]:
    """One figure, in this process: `path` is toPandas, bounded or xgboost."""
    import numpy as np
    import pyarrow  # noqa: F401 — imported before the "before" figure, as in a job that has read anything
    from pyspark.sql import functions as F

    from lakehouse.ml import dataset
    from lakehouse.ml.dataset import ID_COLUMNS, LABEL_COLUMNS, MODEL_FEATURES, PRICE_COLUMNS, matrix

    spark = _spark(unlimited_results=path == "topandas")
    table = str(Path(root) / "gold" / "features_1d")
    spark.read.format("delta").load(table).limit(1).collect()  # session and Delta warm before the clock
    before = _rss_now()
    started = time.monotonic()
    out: dict[str, object] = {"path": path, "root": root}
    if path == "topandas":
        columns = list(dict.fromkeys([*ID_COLUMNS, *PRICE_COLUMNS, *MODEL_FEATURES, *LABEL_COLUMNS]))
        frame = spark.read.format("delta").load(table).where(F.col("is_warm")).select(*columns).toPandas()
        x = matrix(frame)
        out["rows"] = len(frame)
        del x
    elif path == "bounded":
        data = dataset.load(spark, root, "1d", log=lambda *_: None, max_rows=max_rows)
        out["rows"] = len(data.frame)
        out["rows_available"] = data.rows_available
        estimate = dataset.driver_bytes_estimate(max_rows)
        out["estimate_mib"] = round((before + estimate) / MIB)
        out["rows_estimate_mib"] = round(estimate / MIB)
    else:
        from lakehouse.ml.spark_xgb import SparkXGBFamily

        rows = spark.read.format("delta").load(table).where(F.col("is_warm") & F.col("label_up").isNotNull())
        fitted = SparkXGBFamily("direction")._fit(rows, seed=7)
        out["rows"] = rows.count()
        out["trees"] = fitted.booster.num_boosted_rounds()
        probe = np.random.default_rng(0).normal(size=(1000, len(MODEL_FEATURES))).astype(np.float32)
        out["prob_up_mean"] = round(float(fitted.booster.inplace_predict(probe).mean()), 4)
    out["seconds"] = round(time.monotonic() - started, 1)
    out["rss_before_mib"] = round(before / MIB)
    out["peak_rss_mib"] = round(_peak() / MIB)
    return out


def _child(path: str, root: Path, max_rows: int) -> dict[str, object]:
    cmd = [sys.executable, "-m", "tests.benchmarks.bench_train", "--measure", path, "--lake", str(root)]
    cmd += ["--max-rows", str(max_rows)]
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        causes = [line for line in done.stderr.splitlines() if "Exception:" in line or "Error:" in line]
        cause = causes[0].strip() if causes else "\n".join(done.stderr.splitlines()[-15:])
        result = {"path": path, "root": str(root), "error": f"exit {done.returncode}: {cause[:400]}"}
        print(json.dumps(result), flush=True)
        return result
    result: dict[str, object] = json.loads(lines[-1])
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=5000, help="bars per symbol of the large table (≥ 5 M rows)")
    parser.add_argument("--small-bars", type=int, default=1250, help="bars per symbol of the small table")
    parser.add_argument("--max-rows", type=int, default=1_000_000, help="the bounded path's --train-max-rows")
    parser.add_argument("--lake", type=Path, default=REPO_ROOT / "build" / "bench" / "train_lake")
    parser.add_argument("--measure", choices=["topandas", "bounded", "xgboost"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "bench" / "train.json")
    args = parse_known(parser, argv)
    if args.measure:
        print(json.dumps(measure(args.measure, str(args.lake), args.max_rows)), flush=True)
        return

    large, small = args.lake / "large", args.lake / "small"
    sizes = {}
    for root, bars in ((large, args.bars), (small, args.small_bars)):
        started = time.monotonic()
        sizes[str(root)] = write_gold(root, args.symbols, bars)
        print(f"wrote {sizes[str(root)]:,} gold rows to {root} in {time.monotonic() - started:.0f}s", flush=True)
    _spark().stop()

    results = [
        _child("topandas", large, args.max_rows),
        _child("bounded", large, args.max_rows),
        _child("xgboost", small, args.max_rows),
        _child("xgboost", large, args.max_rows),
    ]
    report: dict[str, object] = {"symbols": args.symbols, "rows": sizes, "max_rows": args.max_rows, "runs": results}
    by = {(r["path"], r["root"]): r for r in results}
    xs, xl = by[("xgboost", str(small))], by[("xgboost", str(large))]
    bounded = by[("bounded", str(large))]
    if "peak_rss_mib" in xs and "peak_rss_mib" in xl:
        ratio = xl["peak_rss_mib"] / xs["peak_rss_mib"]  # type: ignore[operator]
        report["xgboost_rss_ratio"] = round(ratio, 3)
        print(
            f"(c) xgboost.spark driver peak RSS, {sizes[str(large)]:,} / {sizes[str(small)]:,} rows: "
            f"{ratio:.3f} (goal ≤ 1.2)"
        )
    if "peak_rss_mib" in bounded:
        met = bounded["peak_rss_mib"] <= bounded["estimate_mib"]  # type: ignore[operator]
        report["bounded_within_estimate"] = met
        print(
            f"(b) bounded driver peak RSS {bounded['peak_rss_mib']} MiB vs the cap's estimate "
            f"{bounded['estimate_mib']} MiB: {'within' if met else 'OVER'}"
        )
    print("\n  path       rows         seconds  peak RSS MiB")
    for r in results:
        rows = f"{r['rows']:,}" if "rows" in r else "?"
        print(f"  {r['path']:<10} {rows:>12} {r.get('seconds', '?'):>8} {r.get('peak_rss_mib', r.get('error'))}")
    write_report(args.out, report)


if __name__ == "__main__":
    main()
