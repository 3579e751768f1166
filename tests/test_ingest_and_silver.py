"""Ingest → silver end to end on local lakes: accounting, incrementality, idempotence."""

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.jobs import build_silver, ingest_candles
from lakehouse.sources import FetchRequest, SourceError, get_source
from lakehouse.sources.yfinance_source import YFinanceSource
from lakehouse.tables import BRONZE_CANDLES, SILVER_CANDLES, SILVER_PROCESSED_BATCHES, SILVER_QUARANTINE
from tests.test_sources import recorded_download

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
AAA,2024-01-12T19:30:00Z,10,11,9,10.5,1000
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
    ("AAA", "2024-01-12"): ["off_interval_grid"],  # a daily bar at 19:30 UTC: a second key for the day
    ("BBB", "2024-01-02"): ["conflicting_duplicate", "conflicting_duplicate"],
    ("BBB", "2024-01-03"): ["duplicate_row"],
}


def test_broken_csv_rows_are_quarantined_with_their_rule_and_none_lost(spark, tmp_path, make_config):
    path = tmp_path / "raw.csv"
    path.write_text(BROKEN_CSV)
    cfg = make_config(source="csv", csv_path=str(path), symbols=())
    ingest = ingest_candles.run(spark, cfg, run_id=None, now=NOW, log=lambda *_: None)
    built = build_silver.run(spark, cfg, run_id=None, now=NOW, log=lambda *_: None)

    rows_in = len(BROKEN_CSV.strip().splitlines()) - 1
    root = cfg.resolved_root
    silver_rows = delta_io.read(spark, SILVER_CANDLES, root)
    quarantine = delta_io.read(spark, SILVER_QUARANTINE, root)
    assert ingest.rows_written == rows_in == 16
    assert silver_rows.count() + quarantine.count() == rows_in
    assert built.rows_read == rows_in and built.rows_quarantined == quarantine.count() == 12
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
    assert [(b.rows_in, b.accepted, b.quarantined) for b in batch] == [(16, 4, 12)]


def test_csv_with_an_unknown_column_is_refused_before_anything_is_written(spark, tmp_path, make_config):
    path = tmp_path / "raw.csv"
    path.write_text("symbol,date,open,high,low,close,volume,exchange\nAAA,2024-01-02,10,11,9,10.5,1000,NYSE\n")
    cfg = make_config(source="csv", csv_path=str(path), symbols=())
    with pytest.raises(SourceError, match="unknown column\\(s\\) \\['exchange'\\]"):
        ingest_candles.run(spark, cfg, run_id=None, now=NOW, log=lambda *_: None)
    assert not delta_io.exists(spark, BRONZE_CANDLES, cfg.resolved_root)


def _silver_frame(spark, root: str) -> pd.DataFrame:
    """silver/candles as plain pandas rows in key order: a copy that later writes cannot change."""
    frame = delta_io.read(spark, SILVER_CANDLES, root).toPandas()
    return frame.sort_values(["symbol", "interval", "ts"]).reset_index(drop=True)


def test_sample_ingest_is_incremental_and_silver_is_idempotent(spark, make_config):
    quiet = {"log": lambda *_: None}
    first = make_config(end="2010-01-01")
    ingest_candles.run(spark, first, run_id=None, now=NOW, **quiet)
    build_silver.run(spark, first, run_id=None, now=NOW, **quiet)
    root = first.resolved_root
    early = delta_io.read(spark, SILVER_CANDLES, root).groupBy("symbol").agg(F.max("ts").alias("last")).collect()
    assert {r.symbol for r in early} == {"^GSPC", "^IXIC", "MSFT"}
    assert all(r.last < datetime(2010, 1, 1) for r in early)

    cfg = make_config()
    catch_up = ingest_candles.run(spark, cfg, run_id=None, now=NOW, **quiet)
    assert catch_up.rows_written > 0
    bronze = delta_io.read(spark, BRONZE_CANDLES, root)
    assert bronze.groupBy("symbol", "interval", "ts").count().where("count > 1").count() == 0, (
        "the catch-up re-fetched bars before the watermark"
    )
    build_silver.run(spark, cfg, run_id=None, now=NOW, **quiet)
    snapshot = _silver_frame(spark, root)
    # Oracle: every bar the bundled files hold (all valid) is in silver once, its close adjusted.
    bundled = get_source("sample").fetch(FetchRequest(cfg.symbols, "1d"))
    bundled = bundled.sort_values(["symbol", "ts"]).reset_index(drop=True)
    assert len(snapshot) == len(bundled)
    assert (snapshot["symbol"] == bundled["symbol"]).all() and (snapshot["interval"] == "1d").all()
    assert (pd.to_datetime(snapshot["ts"]).dt.tz_localize(None) == bundled["ts"].dt.tz_localize(None)).all()
    assert snapshot["close_unadjusted"].tolist() == bundled["close"].tolist()
    assert snapshot["close"].to_numpy() == pytest.approx(bundled["adj_close"].to_numpy(), rel=1e-12)
    versions = {t: delta_io.version(spark, t, root) for t in (BRONZE_CANDLES, SILVER_CANDLES)}

    # Re-runs a day later: a rewritten row would change at least its updated_at.
    later = NOW + timedelta(days=1)
    again = ingest_candles.run(spark, cfg, run_id=None, now=later, **quiet)
    rebuilt = build_silver.run(spark, cfg, run_id=None, now=later, **quiet)
    pd.testing.assert_frame_equal(_silver_frame(spark, root), snapshot, check_exact=True)
    assert again.rows_written == 0 and again.details["new_rows"] == 0
    assert rebuilt.rows_read == 0
    assert {t: delta_io.version(spark, t, root) for t in versions} == versions

    refreshed = build_silver.run(spark, cfg, run_id=None, now=later, full_refresh=True, **quiet)
    pd.testing.assert_frame_equal(_silver_frame(spark, root), snapshot, check_exact=True)
    assert refreshed.details["inserted"] == refreshed.details["updated"] == 0
    assert delta_io.read(spark, SILVER_QUARANTINE, root).count() == 0


def test_backfill_reingests_history_without_duplicating_silver(spark, make_config):
    quiet = {"log": lambda *_: None}
    cfg = make_config(source="synthetic", symbols=(), synthetic_symbols=2, synthetic_bars=30)
    ingest_candles.run(spark, cfg, run_id=None, now=NOW, **quiet)
    build_silver.run(spark, cfg, run_id=None, now=NOW, **quiet)
    again = ingest_candles.run(
        spark,
        make_config(source="synthetic", symbols=(), synthetic_symbols=2, synthetic_bars=30, backfill=True),
        run_id=None,
        now=NOW,
        **quiet,
    )
    built = build_silver.run(spark, cfg, run_id=None, now=NOW, **quiet)
    assert again.rows_written == 60
    assert built.rows_read == 60 and built.rows_written == 0 and built.rows_quarantined == 0
    assert delta_io.read(spark, SILVER_CANDLES, cfg.resolved_root).count() == 60


MULTI_INTERVAL_CSV = """symbol,interval,ts,open,high,low,close,adj_close,volume
AAA,1d,2024-01-02,100,110,90,105,52.5,1000
AAA,1h,2024-01-02T14:30:00Z,100,101,99,100.5,50.25,300
AAA,1h,2024-01-02T15:30:00Z,100.5,102,100,101,50.5,200
AAA,5m,2024-01-02T14:30:00Z,100,100.4,99.8,100.2,50.1,40
AAA,5m,2024-01-02T14:35:00Z,100.2,100.6,100,100.4,100.4,30
BBB,5m,2024-01-02T09:30:00-05:00,20,21,19.5,20.5,20.5,7
"""

# Worked out by hand: prices × adj_close/close; ts in UTC; (symbol, interval, ts) is the key, so
# AAA's 1h and 5m bars at 14:30 are two candles.
EXPECTED_SILVER = [
    ("AAA", "1d", "2024-01-02 00:00", 50.0, 55.0, 45.0, 52.5, 1000.0, 105.0, 0.5),
    ("AAA", "1h", "2024-01-02 14:30", 50.0, 50.5, 49.5, 50.25, 300.0, 100.5, 0.5),
    ("AAA", "1h", "2024-01-02 15:30", 50.25, 51.0, 50.0, 50.5, 200.0, 101.0, 0.5),
    ("AAA", "5m", "2024-01-02 14:30", 50.0, 50.2, 49.9, 50.1, 40.0, 100.2, 0.5),
    ("AAA", "5m", "2024-01-02 14:35", 100.2, 100.6, 100.0, 100.4, 30.0, 100.4, 1.0),
    ("BBB", "5m", "2024-01-02 14:30", 20.0, 21.0, 19.5, 20.5, 7.0, 20.5, 1.0),
]


def _silver_tuples(spark, root: str) -> list[tuple]:
    rows = delta_io.read(spark, SILVER_CANDLES, root).select(
        "symbol",
        "interval",
        F.date_format("ts", "yyyy-MM-dd HH:mm").alias("ts"),
        "open",
        "high",
        "low",
        "close",
        "volume",
        "close_unadjusted",
        "adj_factor",
    )
    return sorted(tuple(r) for r in rows.collect())


def test_hourly_and_five_minute_bars_reach_silver_with_their_interval_and_per_interval_watermark(
    spark, tmp_path, make_config
):
    path = tmp_path / "intraday.csv"
    path.write_text(MULTI_INTERVAL_CSV)
    quiet = {"log": lambda *_: None}
    cfg = make_config(source="csv", csv_path=str(path), symbols=(), intervals=("1d", "1h", "5m"))
    assert ingest_candles.run(spark, cfg, run_id=None, now=NOW, **quiet).rows_written == 6
    built = build_silver.run(spark, cfg, run_id=None, now=NOW, **quiet)
    assert (built.rows_read, built.rows_quarantined) == (6, 0)
    got = _silver_tuples(spark, cfg.resolved_root)
    assert [g[:3] for g in got] == [e[:3] for e in EXPECTED_SILVER]
    for g, e in zip(got, EXPECTED_SILVER, strict=True):
        assert g[3:] == pytest.approx(e[3:], rel=1e-12), g[:3]

    # A later 5m bar of AAA is new although AAA's 1h watermark (15:30) is later still: watermarks are
    # per (symbol, interval). The 5m bar at 14:25 is behind AAA's 5m watermark and is not re-ingested.
    path.write_text(
        MULTI_INTERVAL_CSV
        + "AAA,5m,2024-01-02T14:40:00Z,100.4,100.5,100.1,100.3,100.3,20\n"
        + "AAA,5m,2024-01-02T14:25:00Z,99,99.5,98.5,99.2,99.2,10\n"
    )
    assert ingest_candles.run(spark, cfg, run_id=None, now=NOW, **quiet).rows_written == 1
    build_silver.run(spark, cfg, run_id=None, now=NOW, **quiet)
    added = ("AAA", "5m", "2024-01-02 14:40", 100.4, 100.5, 100.1, 100.3, 20.0, 100.3, 1.0)
    assert _silver_tuples(spark, cfg.resolved_root) == sorted([*EXPECTED_SILVER, added])


def test_a_partial_yfinance_answer_is_written_and_the_missing_symbol_fetched_on_the_next_run(
    spark, make_config, capsys
):
    requests = []

    def download(**kwargs):
        requests.append(kwargs)
        if len(requests) <= 3:  # the first run: MSFT never comes (3 attempts), AAPL does
            if "AAPL" in kwargs["tickers"]:
                return recorded_download(["AAPL"])
            raise ConnectionError("Connection reset by peer")
        return recorded_download(kwargs["tickers"])

    source = YFinanceSource(download=download, attempts=3, initial_wait_s=0, max_wait_s=0)
    cfg = make_config(source="yfinance", symbols=("AAPL", "MSFT"))
    logged: list[str] = []
    first = ingest_candles.run(spark, cfg, source=source, run_id=None, now=NOW, log=logged.append)
    assert first.rows_written == 3 and first.details["missing_symbols"] == "1d:MSFT"
    assert any("returned no rows for MSFT" in line for line in logged)
    assert "missing_symbols=1d:MSFT" in first.line()
    assert capsys.readouterr().out == "", "a job body prints nothing: progress goes to log, the summary to the entry"
    bronze = delta_io.read(spark, BRONZE_CANDLES, cfg.resolved_root)
    assert sorted(r.symbol for r in bronze.select("symbol").distinct().collect()) == ["AAPL"]

    second = ingest_candles.run(spark, cfg, source=source, run_id=None, now=NOW, log=lambda *_: None)
    assert requests[3]["tickers"] == ["AAPL", "MSFT"] and "start" not in requests[3], "MSFT had no watermark"
    assert second.rows_written == 2 and "missing_symbols" not in second.details
    bronze = delta_io.read(spark, BRONZE_CANDLES, cfg.resolved_root)
    assert bronze.groupBy("symbol").count().orderBy("symbol").collect() == [("AAPL", 3), ("MSFT", 2)]
