"""The features job on a real lake: incremental rebuilds, quality records, and the halt tier."""

import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import functions as F

from glue_jobs import build_features as build_features_entry
from lakecontract.feature_math import CONTEXT_BARS
from lakecontract.feature_spec import FEATURE_NAMES
from lakehouse import delta_io
from lakehouse.jobs import build_features, build_silver, ingest_candles
from lakehouse.quality.report import latest_report
from lakehouse.tables import GOLD_DQ_RESULTS, SILVER_CANDLES, gold_features

pytestmark = pytest.mark.spark
QUIET = {"log": lambda *_: None}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def synthetic_lake(spark, make_config):
    cfg = make_config(source="synthetic", symbols=(), synthetic_symbols=2, synthetic_bars=200, end="2015-09-01")
    ingest_candles.run(spark, cfg, run_id=None, now=T0, **QUIET)
    build_silver.run(spark, cfg, now=T0, run_id="r1", **QUIET)
    return cfg


def test_features_build_records_quality_and_rebuilds_only_what_changed(spark, synthetic_lake, make_config, tmp_path):
    cfg, root = synthetic_lake, synthetic_lake.resolved_root
    gold = gold_features("1d")
    first = build_features.run(spark, cfg, run_id="r1", now=T0, **QUIET)
    rows = delta_io.read(spark, gold, root)
    n_first = rows.count()
    assert first.rows_written == n_first > 0
    assert set(FEATURE_NAMES) <= set(rows.columns)
    assert rows.where("is_warm").count() > 0

    dq = delta_io.read(spark, GOLD_DQ_RESULTS, root).where("run_id = 'r1'")
    assert {r.table_name for r in dq.select("table_name").distinct().collect()} == {
        "silver/candles",
        "gold/features_1d",
    }
    report = latest_report(root)
    html = Path(report).read_text()
    assert "gold/features_1d" in html and "silver/candles" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html

    # Nothing new in silver → nothing rebuilt, no new version.
    version = delta_io.version(spark, gold, root)
    again = build_features.run(spark, cfg, run_id="r2", now=T0, **QUIET)
    assert again.rows_written == 0 and delta_io.version(spark, gold, root) == version

    # New bars for the symbols: only rows from the bar before the first new one are rewritten.
    later = make_config(source="synthetic", symbols=(), synthetic_symbols=2, synthetic_bars=200)
    ingest_candles.run(spark, later, run_id=None, now=T0, **QUIET)
    build_silver.run(spark, later, now=datetime(2025, 1, 2, tzinfo=UTC), run_id="r3", **QUIET)
    third = build_features.run(spark, later, run_id="r3", now=datetime(2025, 1, 2, tzinfo=UTC), **QUIET)
    silver_rows = delta_io.read(spark, SILVER_CANDLES, root).count()
    new_bars = silver_rows - n_first
    assert new_bars > 0
    assert third.details["1d_inserted"] == new_bars
    assert third.details["1d_updated"] == 2  # each symbol's previous last bar: its label is now known
    # Read from silver: the changed rows (change feed) + per symbol 60 context bars, the bar before
    # the first new one and the new bars — not the table.
    assert third.rows_read == new_bars + 2 * (CONTEXT_BARS + 1) + new_bars < silver_rows
    rebuilt = delta_io.read(spark, gold, root)
    assert rebuilt.count() == silver_rows
    assert rebuilt.where(F.col("label_up").isNull()).count() == 2  # only the two last bars

    # And the values: the incremental table equals a full rebuild of the same silver in a fresh lake.
    full = _full_rebuild(spark, later, tmp_path / "full", now=datetime(2025, 1, 3, tzinfo=UTC))
    incremental = _gold_frame(spark, root)
    assert len(incremental) == len(full) == silver_rows
    pd.testing.assert_frame_equal(incremental, full, check_exact=True)  # bit for bit


def test_a_corrected_old_bar_rebuilds_from_it_and_equals_a_full_rebuild(spark, synthetic_lake, tmp_path):
    """A backfill correcting an old bar: the build resumes from the state just before it, rewrites
    that bar's predecessor (its label) and every later bar, and the table equals a fresh full build."""
    cfg, root = synthetic_lake, synthetic_lake.resolved_root
    build_features.run(spark, cfg, run_id="r1", now=T0, **QUIET)
    silver = delta_io.read(spark, SILVER_CANDLES, root)
    symbol = sorted(r.symbol for r in silver.select("symbol").distinct().collect())[0]
    bars = silver.where(F.col("symbol") == symbol).orderBy("ts").collect()
    old = bars[120]  # bar_no 121: well after every recursion's seed
    corrected = (
        silver.where((F.col("symbol") == symbol) & (F.col("ts") == old.ts))
        .withColumn("close", F.col("close") * 1.02)
        .withColumn("high", F.greatest(F.col("high"), F.col("close")))
        .withColumn("updated_at", F.lit(datetime(2025, 1, 5)))
    )
    delta_io.merge_upsert(spark, corrected, SILVER_CANDLES, root)
    later = datetime(2025, 1, 5, tzinfo=UTC)
    summary = build_features.run(spark, cfg, run_id="fix", now=later, **QUIET)
    assert summary.details["1d_inserted"] == 0
    assert summary.details["1d_updated"] == len(bars) - 119  # from the bar before the corrected one
    assert summary.rows_read == 1 + CONTEXT_BARS + len(bars) - 119  # 1 changed row + the tail
    full = _full_rebuild(spark, cfg, tmp_path / "full", now=later)
    pd.testing.assert_frame_equal(_gold_frame(spark, root), full, check_exact=True)


def _full_rebuild(spark, cfg, root: Path, now: datetime) -> pd.DataFrame:
    """The features job run from scratch on a copy of cfg's silver table: the incremental oracle."""
    shutil.copytree(SILVER_CANDLES.path(cfg.resolved_root), root / SILVER_CANDLES.name)
    fresh = replace(cfg, lake_root=str(root))
    summary = build_features.run(spark, fresh, run_id="full", now=now, **QUIET)
    assert summary.details["1d_updated"] == 0  # a fresh gold table: everything is an insert
    return _gold_frame(spark, fresh.resolved_root)


def _gold_frame(spark, root: str) -> pd.DataFrame:
    """gold/features_1d in (symbol, ts) order, every column but the build time."""
    frame = delta_io.read(spark, gold_features("1d"), root).drop("computed_at").toPandas()
    return frame.sort_values(["symbol", "ts"]).reset_index(drop=True)


def test_a_halt_tier_failure_exits_non_zero_names_it_and_writes_nothing(spark, synthetic_lake, capsys):
    cfg, root = synthetic_lake, synthetic_lake.resolved_root
    gold = gold_features("1d")
    build_features.run(spark, cfg, run_id="ok", now=T0, **QUIET)
    version = delta_io.version(spark, gold, root)
    # Corrupt silver behind the silver job's back (as a bad manual fix would): a non-positive close.
    silver_df = delta_io.read(spark, SILVER_CANDLES, root)
    last = silver_df.orderBy(F.col("ts").desc()).limit(1)
    corrupted = last.withColumn("close", F.lit(-1.0)).withColumn("updated_at", F.current_timestamp())
    delta_io.merge_upsert(spark, corrupted, SILVER_CANDLES, root)

    code = build_features_entry.main(["--lake-root", root, "--source", "synthetic", "--run-id", "bad"])
    err = capsys.readouterr().err
    assert code == 1
    assert "data quality halt on gold/features_1d" in err and "close_positive" in err
    assert delta_io.version(spark, gold, root) == version
    halted = delta_io.read(spark, GOLD_DQ_RESULTS, root).where("run_id = 'bad' AND NOT success AND tier = 'halt'")
    assert [r.expectation for r in halted.collect()] == ["close_positive"]


def test_a_bar_after_a_long_gap_is_found_beyond_the_bounded_lookup(spark, synthetic_lake, tmp_path):
    """The lookup first reads only recent gold (about two bars' worth of calendar time per context
    bar); a symbol whose previous bars lie before that (a two-year halt) is looked up again in full,
    so its predecessor's label is rewritten and the table still equals a full rebuild."""
    cfg, root = synthetic_lake, synthetic_lake.resolved_root
    build_features.run(spark, cfg, run_id="r1", now=T0, **QUIET)
    silver = delta_io.read(spark, SILVER_CANDLES, root)
    symbol = sorted(r.symbol for r in silver.select("symbol").distinct().collect())[0]
    last = silver.where(F.col("symbol") == symbol).orderBy(F.col("ts").desc()).limit(1)
    resumed = last.withColumn("ts", F.col("ts") + F.expr("INTERVAL 730 DAYS")).withColumn(
        "updated_at", F.lit(datetime(2025, 1, 6))
    )
    delta_io.merge_upsert(spark, resumed, SILVER_CANDLES, root)
    later = datetime(2025, 1, 6, tzinfo=UTC)
    summary = build_features.run(spark, cfg, run_id="gap", now=later, **QUIET)
    assert (summary.details["1d_inserted"], summary.details["1d_updated"]) == (1, 1)
    assert summary.rows_read == 1 + CONTEXT_BARS + 2  # resumed from state, not from the first bar
    full = _full_rebuild(spark, cfg, tmp_path / "full", now=later)
    pd.testing.assert_frame_equal(_gold_frame(spark, root), full, check_exact=True)
