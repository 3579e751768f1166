"""Benchmark: does a rolling feature cost the same at window 5 as at window 250?

    python -m tests.benchmarks.bench_window_sweep [--symbols 500 --bars 10000 --windows 5,20,60,250
                                                   --spark-symbols 100 --out build/bench/window_sweep.json]

Not a pytest test (minutes). One rolling mean and one rolling population std of close per window,
computed three ways:

1. `numpy`: `lakecontract.feature_math.rolling_mean` / `rolling_std(ddof=0)` called per symbol on
   the same arrays, no Spark: the primitives alone (their cost per window, nothing else).
2. `applyInPandas`: the same primitives inside Spark's `groupBy("symbol").applyInPandas(...)`
   on `--symbols` × `--bars` rows (default 5 M), forced with a `noop` write: what the gold job
   pays. A `baseline` pass returns the same columns without computing anything: the fixed cost
   of shuffling, sorting and moving the rows through Arrow, which every window pays alike.
3. `spark_frames`: Spark's own sliding frames, `avg` / `stddev_pop` over
   `rowsBetween(-(w - 1), 0)`, on `--spark-symbols` × `--bars` rows (default 1 M: Spark 3.5
   re-aggregates the whole frame at every row, O(rows × window), see DESIGN.md "Scale facts").
   For contrast only.

Every result is null (NaN) until its window is full, in all three. Goal: slowest / fastest
window ≤ 1.3 for the primitives inside Spark (2.). Each window runs `--repeats` times (windows
alternating) and the fastest time counts. Another process may share the machine: compare the
ratios of one run, not seconds across runs. The data is the synthetic universe of
bench_features, cached as Parquet under build/bench/.

Run with CANDLELAKE_JAVA_OPTS="" (C2 JIT, as `make bench-window-sweep` does).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from lakecontract.feature_math import rolling_mean, rolling_std
from tests.benchmarks.bench_features import candles_parquet, timed_noop
from tests.benchmarks.cli import parse_known, write_report

REPO_ROOT = Path(__file__).resolve().parents[2]
GOAL_RATIO = 1.3
RESULT_SCHEMA = "symbol string, ts timestamp, roll_mean double, roll_std double"
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:8.1f}s] {msg}", flush=True)


# --- the three ways ------------------------------------------------------------------------------


def with_rolling_numpy(df: Any, window: int | None) -> Any:
    """Per symbol, in ts order: the primitives' mean and population std of close (None: no computing)."""

    def per_symbol(pdf: pd.DataFrame) -> pd.DataFrame:
        pdf = pdf.sort_values("ts")
        close = pdf["close"].to_numpy(dtype=np.float64)
        if window is None:
            mean = std = close
        else:
            mean, std = rolling_mean(close, window), rolling_std(close, window, ddof=0)
        return pd.DataFrame({"symbol": pdf["symbol"], "ts": pdf["ts"], "roll_mean": mean, "roll_std": std})

    return df.groupBy("symbol").applyInPandas(per_symbol, schema=RESULT_SCHEMA)


def with_rolling_frames(df: Any, window: int) -> Any:
    """Spark's sliding frames, null until the window is full (as the primitives' NaN)."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    ordered = Window.partitionBy("symbol").orderBy("ts")
    frame = ordered.rowsBetween(-(window - 1), 0)
    full = F.row_number().over(ordered) >= window
    return df.select(
        "symbol",
        "ts",
        F.when(full, F.avg("close").over(frame)).alias("roll_mean"),
        F.when(full, F.stddev_pop("close").over(frame)).alias("roll_std"),
    )


def numpy_only(parquet: Path, windows: list[int], repeats: int) -> dict[int, float]:
    """Seconds of the primitives alone over every symbol's close, fastest of `repeats` per window."""
    table = pq.read_table(parquet, columns=["symbol", "ts", "close"]).to_pandas()
    table = table.sort_values(["symbol", "ts"], kind="stable")
    bounds = np.flatnonzero(np.r_[True, table["symbol"].to_numpy()[1:] != table["symbol"].to_numpy()[:-1], True])
    close = table["close"].to_numpy(dtype=np.float64)
    series = [close[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    best: dict[int, float] = {}
    for _ in range(repeats):
        for w in windows:
            start = time.perf_counter()
            for x in series:
                rolling_mean(x, w)
                rolling_std(x, w, ddof=0)
            seconds = time.perf_counter() - start
            best[w] = min(best.get(w, seconds), seconds)
            log(f"numpy: window {w}: {seconds:.2f} s over {len(series)} series")
    return best


def check_agreement(spark: Any, df: Any, windows: list[int]) -> dict[int, float]:
    """The primitives inside Spark agree with Spark's frames on one symbol (else fail): the sweep
    times the same results both ways. Returns the worst relative difference per window."""
    first = df.select("symbol").limit(1).collect()[0]["symbol"]
    one = df.where(df.symbol == first)
    worst: dict[int, float] = {}
    for w in windows:
        a = with_rolling_numpy(one, w).toPandas().sort_values("ts").reset_index(drop=True)
        b = with_rolling_frames(one, w).toPandas().sort_values("ts").reset_index(drop=True)
        for col in ("roll_mean", "roll_std"):
            x, y = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
            if not np.array_equal(np.isnan(x), np.isnan(y)):
                raise AssertionError(f"window {w} {col}: NaN in different rows than Spark's frames")
            ok = ~np.isnan(y)
            if not np.allclose(x[ok], y[ok], rtol=1e-9, atol=1e-9):
                raise AssertionError(f"window {w} {col}: differs from Spark's frames beyond rtol 1e-9")
            rel = np.abs(x[ok] - y[ok]) / np.maximum(np.abs(y[ok]), 1e-12)
            worst[w] = max(worst.get(w, 0.0), float(rel.max()) if rel.size else 0.0)
    log(f"check: primitives agree with Spark's frames on {first} (worst rel diff {max(worst.values()):.1e})")
    return worst


def sweep(spark: Any, df: Any, windows: list[int], repeats: int, make: Any, label: str) -> dict[int, float]:
    """Fastest noop-forced seconds per window (windows alternate within each repeat)."""
    best: dict[int, float] = {}
    for _ in range(repeats):
        for w in windows:
            seconds = timed_noop(spark, make(df, w), f"{label}, window {w or 'none (baseline)'}")
            assert seconds is not None  # no timeout given
            best[w] = min(best.get(w, seconds), seconds)
    return best


def _spread(times: dict[int, float]) -> float:
    return max(times.values()) / min(times.values())


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--symbols", type=int, default=500, help="symbols for numpy and applyInPandas")
    p.add_argument("--bars", type=int, default=10_000)
    p.add_argument("--windows", default="5,20,60,250")
    p.add_argument("--spark-symbols", type=int, default=100, help="symbols for Spark's sliding frames (0: skip)")
    p.add_argument("--repeats", type=int, default=2, help="rounds over the windows; the fastest of each counts")
    p.add_argument("--partitions", type=int, default=8, help="spark.sql.shuffle.partitions (as bench_features)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="build/bench/window_sweep.json")
    args = parse_known(p, argv)
    try:
        args.window_list = sorted({int(w) for w in args.windows.split(",") if w.strip()})
    except ValueError:
        p.error(f"--windows: expected comma-separated integers, got {args.windows!r}")
    if not args.window_list or min(args.window_list) < 1 or max(args.window_list) > args.bars:
        p.error(f"--windows must lie in 1…{args.bars} (--bars)")
    if args.symbols < 1 or args.spark_symbols < 0 or args.repeats < 1:
        p.error("--symbols and --repeats must be ≥ 1, --spark-symbols ≥ 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out) if Path(args.out).is_absolute() else REPO_ROOT / args.out
    windows, data_dir = args.window_list, REPO_ROOT / "build" / "bench"
    rows = args.symbols * args.bars
    log(f"window sweep: windows {windows}; {args.symbols} × {args.bars} = {rows:,} rows")
    parquet = candles_parquet(args.symbols, args.bars, "1d", args.seed, data_dir)

    import pyspark

    from lakehouse.spark import get_spark

    results: dict[str, Any] = {"rows": rows}
    results["numpy_s"] = numpy_only(parquet, windows, args.repeats)

    spark = get_spark("bench-window-sweep", shuffle_partitions=args.partitions)
    df = spark.read.parquet(str(parquet)).select("symbol", "ts", "close")
    results["check_worst_rel"] = check_agreement(spark, df, windows)  # also warms up both paths
    # Window 0 is the baseline (no computing), timed in the same rounds as the windows.
    timed = sweep(
        spark, df, [0, *windows], args.repeats, lambda d, w: with_rolling_numpy(d, w or None), "applyInPandas"
    )
    results["apply_in_pandas_baseline_s"] = timed.pop(0)
    results["apply_in_pandas_s"] = timed
    if args.spark_symbols:
        small = candles_parquet(args.spark_symbols, args.bars, "1d", args.seed, data_dir)
        small_df = spark.read.parquet(str(small)).select("symbol", "ts", "close")
        results["spark_frames_rows"] = args.spark_symbols * args.bars
        results["spark_frames_s"] = sweep(spark, small_df, windows, args.repeats, with_rolling_frames, "Spark frames")
    for key in ("numpy_s", "apply_in_pandas_s", "spark_frames_s"):
        if key in results:
            results[f"{key[:-2]}_slowest_to_fastest"] = _spread(results[key])
    results["goal_ratio"] = GOAL_RATIO
    results["goal_met"] = results["apply_in_pandas_slowest_to_fastest"] <= GOAL_RATIO
    conf = spark.sparkContext.getConf()
    report = {
        "config": vars(args),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "spark": pyspark.__version__,
            "spark_driver_memory": conf.get("spark.driver.memory"),
            "spark_driver_java_options": conf.get("spark.driver.extraJavaOptions"),
            "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
        "results": results,
    }
    write_report(out, report)
    print_table(results, args)
    log(f"wrote {out}")
    spark.stop()
    return 0


def print_table(r: dict[str, Any], args: argparse.Namespace) -> None:
    windows = args.window_list
    print()
    print(f"window sweep: rolling mean + population std of close, seconds per window (best of {args.repeats})")
    head = "".join(f"{'w=' + str(w):>9}" for w in windows)
    print(f"  {'way':<34}{head}{'slow/fast':>11}")
    lines = [
        (f"numpy primitives ({r['rows']:,} rows)", "numpy_s", "numpy_slowest_to_fastest"),
        (f"applyInPandas ({r['rows']:,} rows)", "apply_in_pandas_s", "apply_in_pandas_slowest_to_fastest"),
    ]
    if "spark_frames_s" in r:
        lines.append(
            (f"Spark frames ({r['spark_frames_rows']:,} rows)", "spark_frames_s", "spark_frames_slowest_to_fastest")
        )
    for label, key, spread in lines:
        print(f"  {label:<34}{''.join(f'{r[key][w]:>9.2f}' for w in windows)}{r[spread]:>11.2f}")
    print(
        f"  (applyInPandas without computing anything: {r['apply_in_pandas_baseline_s']:.1f} s, paid by every window)"
    )
    verdict = "MET" if r["goal_met"] else "NOT met"
    spread = r["apply_in_pandas_slowest_to_fastest"]
    print(f"  goal applyInPandas slowest/fastest ≤ {GOAL_RATIO}: {verdict} ({spread:.2f})")


if __name__ == "__main__":
    sys.exit(main())
