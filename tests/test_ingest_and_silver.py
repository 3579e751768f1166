"""Ingest → silver end to end on local lakes: accounting, incrementality, idempotence."""

from datetime import UTC, datetime

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse import delta_io
from lakehouse.ingest import run_ingest
from lakehouse.silver_build import run_build_silver
from lakehouse.sources import SourceError
from lakehouse.tables import BRONZE_CANDLES, SILVER_CANDLES, SILVER_PROCESSED_BATCHES, SILVER_QUARANTINE

pytestmark = pytest.mark.spark

NOW = datetime(2025, 1, 1, tzinfo=UTC)

BROKEN_CSV = """symbol,date,open,high,low,close,volume
AAA,2024-01-02,10,11,9,10.5,1000
AAA,2024-01-03,10.5,11.2,10.1,11,1200
AAA,2024-01-04,10,11,10.2,10.8,900
AAA,2024-01-05,10,11,0.5,0,900
AAA,2024-01-08,,11,9,10.5,1000
AAA,2024-01-09,10,NaN,9,10.5,1000
AAA,2024-01-10,10,11,9,10.5,-5
AAA,2024-01-11,10,inf,9,10.5,1000
AAA,2099-01-02,10,11,9,10.5,1000
AAA,yesterday,10,11,9,10.5,1000
BBB,2024-01-02,20,21,19,20.5,500
BBB,2024-01-02,20,21,19,20.7,500
BBB,2024-01-03,20,21,19,20.5,500
BBB,2024-01-03,20,21,19,20.5,500
BBB,2024-01-04,20,21,19,20.2,700
"""

EXPECTED_RULES = {
    ("AAA", "2024-01-04"): ["ohlc_inconsistent"],
    ("AAA", "2024-01-05"): ["non_positive_price"],
    ("AAA", "2024-01-08"): ["missing_value"],
    ("AAA", "2024-01-09"): ["missing_value"],
    ("AAA", "2024-01-10"): ["negative_volume"],
    ("AAA", "2024-01-11"): ["missing_value"],
    ("AAA", "2099-01-02"): ["future_timestamp"],
    ("AAA", None): ["missing_value"],
    ("BBB", "2024-01-02"): ["conflicting_duplicate", "conflicting_duplicate"],
    ("BBB", "2024-01-03"): ["duplicate_row"],
}


def test_broken_csv_rows_are_quarantined_with_their_rule_and_none_lost(spark, tmp_path, make_config):
    path = tmp_path / "raw.csv"
    path.write_text(BROKEN_CSV)
    cfg = make_config(source="csv", csv_path=str(path), symbols=())
    ingest = run_ingest(spark, cfg, now=NOW, log=lambda *_: None)
    built = run_build_silver(spark, cfg, now=NOW, log=lambda *_: None)

    rows_in = len(BROKEN_CSV.strip().splitlines()) - 1
    root = cfg.resolved_root
    silver_rows = delta_io.read(spark, SILVER_CANDLES, root)
    quarantine = delta_io.read(spark, SILVER_QUARANTINE, root)
    assert ingest.rows_written == rows_in == 15
    assert silver_rows.count() + quarantine.count() == rows_in
    assert built.rows_read == rows_in and built.rows_quarantined == quarantine.count() == 11
    assert quarantine.where(F.col("rule").isNull() | (F.size("failed_rules") == 0)).count() == 0

    got: dict[tuple, list[str]] = {}
    for r in quarantine.select("symbol", F.date_format("ts", "yyyy-MM-dd").alias("day"), "rule").collect():
        got.setdefault((r.symbol, r.day), []).append(r.rule)
    assert {k: sorted(v) for k, v in got.items()} == {k: sorted(v) for k, v in EXPECTED_RULES.items()}
    assert sorted((r.symbol, str(r.ts.date())) for r in silver_rows.collect()) == [
        ("AAA", "2024-01-02"),
        ("AAA", "2024-01-03"),
        ("BBB", "2024-01-03"),
        ("BBB", "2024-01-04"),
    ]
    batch = delta_io.read(spark, SILVER_PROCESSED_BATCHES, root).collect()
    assert [(b.rows_in, b.accepted, b.quarantined) for b in batch] == [(15, 4, 11)]


def test_csv_with_an_unknown_column_is_refused_before_anything_is_written(spark, tmp_path, make_config):
    path = tmp_path / "raw.csv"
    path.write_text("symbol,date,open,high,low,close,volume,exchange\nAAA,2024-01-02,10,11,9,10.5,1000,NYSE\n")
    cfg = make_config(source="csv", csv_path=str(path), symbols=())
    with pytest.raises(SourceError, match="unknown column\\(s\\) \\['exchange'\\]"):
        run_ingest(spark, cfg, now=NOW, log=lambda *_: None)
    assert not delta_io.exists(spark, BRONZE_CANDLES, cfg.resolved_root)


def test_sample_ingest_is_incremental_and_silver_is_idempotent(spark, make_config):
    quiet = {"log": lambda *_: None}
    first = make_config(end="2010-01-01")
    run_ingest(spark, first, now=NOW, **quiet)
    run_build_silver(spark, first, now=NOW, **quiet)
    root = first.resolved_root
    early = delta_io.read(spark, SILVER_CANDLES, root).groupBy("symbol").agg(F.max("ts").alias("last")).collect()
    assert {r.symbol for r in early} == {"^GSPC", "^IXIC", "MSFT"}
    assert all(r.last < datetime(2010, 1, 1) for r in early)

    cfg = make_config()
    catch_up = run_ingest(spark, cfg, now=NOW, **quiet)
    assert catch_up.rows_written > 0
    bronze = delta_io.read(spark, BRONZE_CANDLES, root)
    assert bronze.groupBy("symbol", "interval", "ts").count().where("count > 1").count() == 0, (
        "the catch-up re-fetched bars before the watermark"
    )
    run_build_silver(spark, cfg, now=NOW, **quiet)
    snapshot = delta_io.read(spark, SILVER_CANDLES, root).cache()
    versions = {t: delta_io.version(spark, t, root) for t in (BRONZE_CANDLES, SILVER_CANDLES)}

    again = run_ingest(spark, cfg, now=NOW, **quiet)
    rebuilt = run_build_silver(spark, cfg, now=NOW, **quiet)
    assert again.rows_written == 0 and again.details["new_rows"] == 0
    assert rebuilt.rows_read == 0
    assert {t: delta_io.version(spark, t, root) for t in versions} == versions
    after = delta_io.read(spark, SILVER_CANDLES, root)
    assert after.groupBy("symbol", "interval", "ts").count().where("count > 1").count() == 0
    assertDataFrameEqual(after, snapshot)
    assert after.count() == 18045

    refreshed = run_build_silver(spark, cfg, now=NOW, full_refresh=True, **quiet)
    assert refreshed.details["inserted"] == refreshed.details["updated"] == 0
    assertDataFrameEqual(delta_io.read(spark, SILVER_CANDLES, root), snapshot)


def test_backfill_reingests_history_without_duplicating_silver(spark, make_config):
    quiet = {"log": lambda *_: None}
    cfg = make_config(source="synthetic", symbols=(), synthetic_symbols=2, synthetic_bars=30)
    run_ingest(spark, cfg, now=NOW, **quiet)
    run_build_silver(spark, cfg, now=NOW, **quiet)
    again = run_ingest(
        spark,
        make_config(source="synthetic", symbols=(), synthetic_symbols=2, synthetic_bars=30, backfill=True),
        now=NOW,
        **quiet,
    )
    built = run_build_silver(spark, cfg, now=NOW, **quiet)
    assert again.rows_written == 60
    assert built.rows_read == 60 and built.rows_written == 0 and built.rows_quarantined == 0
    assert delta_io.read(spark, SILVER_CANDLES, cfg.resolved_root).count() == 60
