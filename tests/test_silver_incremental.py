"""build_silver costs O(new rows): it reads bronze from the change feed after a recorded version and
its MERGE prunes silver to the new rows' intervals and time spans — and it still loses nothing.

Bronze batches are appended here directly (as ingest does: one append per batch, with lineage), so
each test says exactly which rows each batch holds. Every bar has open = close = adj_close,
high = close + 1, low = close − 1, volume 100 (valid, adjustment factor 1) unless it is meant to
be quarantined (volume −5).
"""

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.jobs import build_silver
from lakehouse.tables import (
    BRONZE_CANDLES,
    BRONZE_SCHEMA,
    SILVER_CANDLES,
    SILVER_PROCESSED_BATCHES,
    SILVER_QUARANTINE,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
QUIET = {"log": lambda *_: None}


def _bar(symbol: str, interval: str, ts: str, close: float, volume: float = 100.0) -> tuple:
    return symbol, interval, datetime.fromisoformat(ts).replace(tzinfo=UTC), close, volume


def _append_batch(spark, root: str, batch_id: str, bars: list[tuple], *, tbl=BRONZE_CANDLES) -> None:
    ingested_at = datetime.strptime(batch_id[:8], "%Y%m%d").replace(tzinfo=UTC)
    rows = [
        (s, iv, ts, c, c + 1, c - 1, c, c, vol, "test", batch_id, i, ingested_at)
        for i, (s, iv, ts, c, vol) in enumerate(bars)
    ]
    delta_io.append(spark, spark.createDataFrame(rows, BRONZE_SCHEMA), tbl, root)


def _silver(spark, root: str) -> list[tuple]:
    """silver/candles as (symbol, interval, 'YYYY-MM-DD HH:MM' in UTC, close), in key order."""
    rows = (
        delta_io.read(spark, SILVER_CANDLES, root)
        .select("symbol", "interval", F.date_format("ts", "yyyy-MM-dd HH:mm").alias("ts"), "close")
        .collect()
    )
    return sorted(tuple(r) for r in rows)


def _processed(spark, root: str) -> list[tuple]:
    rows = delta_io.read(spark, SILVER_PROCESSED_BATCHES, root).collect()
    return sorted((r.batch_id, r.rows_in, r.accepted, r.quarantined) for r in rows)


def _run(spark, cfg, **options):
    return build_silver.run(spark, cfg, run_id=None, now=NOW, **QUIET, **options)


def test_a_run_reads_only_the_batches_appended_since_the_last_run_and_full_refresh_reads_all(spark, make_config):
    cfg = make_config()
    root = cfg.resolved_root
    _append_batch(
        spark, root, "20240106-b1", [_bar(s, "1d", f"2024-01-0{d}", 10.0 + d) for s in "AB" for d in (2, 3, 4, 5)]
    )
    first = _run(spark, cfg)
    assert (first.details["bronze_read"], first.details["bronze_rows_read"], first.rows_read) == ("snapshot", 8, 8)

    _append_batch(
        spark, root, "20240109-b2", [_bar("A", "1d", "2024-01-08", 20.0), _bar("B", "1d", "2024-01-08", 21.0)]
    )
    second = _run(spark, cfg)
    assert (second.details["bronze_read"], second.details["bronze_rows_read"], second.rows_read) == (
        "change feed",
        2,
        2,
    )
    assert second.details["inserted"] == 2 and second.details["updated"] == 0

    versions = {t: delta_io.version(spark, t, root) for t in (SILVER_CANDLES, SILVER_PROCESSED_BATCHES)}
    idle = _run(spark, cfg)
    assert (idle.details["bronze_read"], idle.details["bronze_rows_read"], idle.rows_read) == ("change feed", 0, 0)
    assert {t: delta_io.version(spark, t, root) for t in versions} == versions

    refreshed = _run(spark, cfg, full_refresh=True)
    assert (refreshed.details["bronze_read"], refreshed.details["bronze_rows_read"]) == ("full refresh", 10)
    assert refreshed.rows_read == 10 and refreshed.rows_written == 0
    assert _processed(spark, root) == [("20240106-b1", 8, 8, 0), ("20240109-b2", 2, 2, 0)]
    assert _silver(spark, root) == [
        *[("A", "1d", f"2024-01-0{d} 00:00", 10.0 + d) for d in (2, 3, 4, 5)],
        ("A", "1d", "2024-01-08 00:00", 20.0),
        *[("B", "1d", f"2024-01-0{d} 00:00", 10.0 + d) for d in (2, 3, 4, 5)],
        ("B", "1d", "2024-01-08 00:00", 21.0),
    ]


class _AppendFails(RuntimeError):
    pass


def test_a_run_that_fails_after_its_merge_is_redone_whole_and_records_each_batch_once(spark, make_config, monkeypatch):
    cfg = make_config()
    root = cfg.resolved_root
    _append_batch(
        spark, root, "20240106-b1", [_bar("A", "1d", "2024-01-02", 10.0), _bar("A", "1d", "2024-01-03", 11.0)]
    )
    _run(spark, cfg)
    _append_batch(
        spark,
        root,
        "20240109-b2",
        [_bar("A", "1d", "2024-01-08", 20.0), _bar("A", "1d", "2024-01-09", 21.0, volume=-5.0)],
    )

    real_append = delta_io.append

    def append_failing_on_the_accounting(spark_, df, tbl, root_):
        if tbl == SILVER_PROCESSED_BATCHES:
            raise _AppendFails("the batch accounting could not be written")
        return real_append(spark_, df, tbl, root_)

    monkeypatch.setattr(delta_io, "append", append_failing_on_the_accounting)
    with pytest.raises(_AppendFails):
        _run(spark, cfg)
    monkeypatch.undo()
    # The MERGE and the quarantine append had landed; the accounting (with the marker) had not.
    assert ("A", "1d", "2024-01-08 00:00", 20.0) in _silver(spark, root)
    assert delta_io.read(spark, SILVER_QUARANTINE, root).count() == 1
    assert _processed(spark, root) == [("20240106-b1", 2, 2, 0)]

    redone = _run(spark, cfg)
    assert (redone.details["bronze_read"], redone.details["bronze_rows_read"]) == ("change feed", 2)
    assert redone.rows_read == 2 and redone.rows_quarantined == 1
    assert _processed(spark, root) == [("20240106-b1", 2, 2, 0), ("20240109-b2", 2, 1, 1)]
    quarantine = delta_io.read(spark, SILVER_QUARANTINE, root).collect()
    assert [(q.batch_id, q.record_id, q.rule) for q in quarantine] == [("20240109-b2", 1, "negative_volume")]
    assert _silver(spark, root) == [
        ("A", "1d", "2024-01-02 00:00", 10.0),
        ("A", "1d", "2024-01-03 00:00", 11.0),
        ("A", "1d", "2024-01-08 00:00", 20.0),
    ]
    assert _run(spark, cfg).rows_read == 0


def test_a_lake_from_before_the_feed_is_read_whole_once_then_from_the_feed(spark, make_config):
    cfg = make_config()
    root = cfg.resolved_root
    # The lake as the job left it before this change: bronze without the feed, b1 recorded
    # without a marker, b2 ingested since.
    old_bronze = dataclasses.replace(BRONZE_CANDLES, change_feed=False)
    _append_batch(spark, root, "20240106-b1", [_bar("A", "1d", "2024-01-02", 10.0)], tbl=old_bronze)
    _append_batch(spark, root, "20240109-b2", [_bar("A", "1d", "2024-01-08", 20.0)], tbl=old_bronze)
    delta_io.append(
        spark,
        spark.createDataFrame([("20240106-b1", 1, 1, 0, NOW)], SILVER_PROCESSED_BATCHES.schema),
        SILVER_PROCESSED_BATCHES,
        root,
    )

    caught_up = _run(spark, cfg)
    assert (caught_up.details["bronze_read"], caught_up.details["bronze_rows_read"]) == ("snapshot", 2)
    assert caught_up.rows_read == 1  # b2 only: b1 was processed before
    assert _silver(spark, root) == [("A", "1d", "2024-01-08 00:00", 20.0)]

    _append_batch(spark, root, "20240110-b3", [_bar("A", "1d", "2024-01-09", 21.0)])
    fed = _run(spark, cfg)
    assert (fed.details["bronze_read"], fed.details["bronze_rows_read"], fed.rows_read) == ("change feed", 1, 1)
    assert _processed(spark, root) == [("20240106-b1", 1, 1, 0), ("20240109-b2", 1, 1, 0), ("20240110-b3", 1, 1, 0)]


def test_the_merge_prune_keeps_every_matching_row_in_any_session_time_zone(spark, make_config):
    """One batch corrects an old daily and an old hourly bar and adds a new one of each: the prune
    must cover the old bars, in both intervals, even when the session time zone is not UTC (a
    literal read in New York time would start 5 h late and miss the 00:00 UTC daily bar)."""
    cfg = make_config()
    root = cfg.resolved_root
    _append_batch(
        spark,
        root,
        "20240106-b1",
        [
            *[_bar("A", "1d", f"2024-01-0{d}", 10.0 + d) for d in (2, 3, 4, 5)],
            _bar("A", "1h", "2024-01-02 14:30", 50.0),
            _bar("A", "1h", "2024-01-02 15:30", 51.0),
        ],
    )
    _run(spark, cfg)
    _append_batch(
        spark,
        root,
        "20240109-b2",
        [
            _bar("A", "1d", "2024-01-03", 99.0),
            _bar("A", "1d", "2024-01-08", 20.0),
            _bar("A", "1h", "2024-01-02 14:30", 77.0),
            _bar("A", "1h", "2024-01-08 14:30", 60.0),
        ],
    )
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        corrected = _run(spark, cfg)
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
    assert corrected.details["inserted"] == 2 and corrected.details["updated"] == 2
    assert _silver(spark, root) == [
        ("A", "1d", "2024-01-02 00:00", 12.0),
        ("A", "1d", "2024-01-03 00:00", 99.0),
        ("A", "1d", "2024-01-04 00:00", 14.0),
        ("A", "1d", "2024-01-05 00:00", 15.0),
        ("A", "1d", "2024-01-08 00:00", 20.0),
        ("A", "1h", "2024-01-02 14:30", 77.0),
        ("A", "1h", "2024-01-02 15:30", 51.0),
        ("A", "1h", "2024-01-08 14:30", 60.0),
    ]


def _data_files(table_dir: Path) -> set[Path]:
    """The table's data files (not its change-feed files, which a MERGE never reads)."""
    return {f for f in table_dir.rglob("*.parquet") if "_change_data" not in f.parts}


def test_the_merge_opens_no_silver_file_outside_the_new_rows_intervals_and_time_spans(spark, make_config):
    """The files the first build wrote are deleted behind Delta's back: a MERGE that opened one of
    them would fail. The third batch touches only the daily bars of Jan 8 and 9 (files of the
    second build), so it must succeed — and still find the Jan 8 bar to update."""
    cfg = make_config()
    root = cfg.resolved_root
    silver_dir = Path(SILVER_CANDLES.path(root))
    _append_batch(
        spark,
        root,
        "20240106-b1",
        [
            *[_bar("A", "1d", f"2024-01-0{d}", 10.0 + d) for d in (2, 3, 4, 5)],
            _bar("A", "1h", "2024-01-08 00:00", 50.0),  # at a daily ts of the third batch: only its interval differs
        ],
    )
    _run(spark, cfg)
    first_files = _data_files(silver_dir)
    assert {f.parent.name for f in first_files} == {"interval=1d", "interval=1h"}
    _append_batch(spark, root, "20240109-b2", [_bar("A", "1d", "2024-01-08", 20.0)])
    _run(spark, cfg)
    for f in first_files:
        f.unlink()

    _append_batch(
        spark, root, "20240110-b3", [_bar("A", "1d", "2024-01-08", 30.0), _bar("A", "1d", "2024-01-09", 31.0)]
    )
    third = _run(spark, cfg)
    assert third.details["inserted"] == 1 and third.details["updated"] == 1
    survivors = spark.read.parquet(*[str(f) for f in _data_files(silver_dir)])
    assert sorted((str(r.ts.date()), r.close) for r in survivors.where("close >= 20").collect()) == [
        ("2024-01-08", 20.0),  # the second build's file, kept for older versions of the table
        ("2024-01-08", 30.0),
        ("2024-01-09", 31.0),
    ]


def test_ts_spans_are_cut_at_the_widest_gaps_only():
    spans = [(0, 1), (10, 11), (100, 101), (1000, 1001)]
    assert build_silver._fewest_spans(spans, 1) == [(0, 1001)]
    assert build_silver._fewest_spans(spans, 2) == [(0, 101), (1000, 1001)]
    assert build_silver._fewest_spans(spans, 3) == [(0, 11), (100, 101), (1000, 1001)]
    assert build_silver._fewest_spans(spans, 8) == spans


def test_the_prune_condition_names_partitions_and_exact_utc_instants():
    # 1_704_412_800 s after the epoch is 2024-01-05 00:00:00 UTC; 1 µs later keeps its digit.
    prune = build_silver.merge_prune({"1d": [(1_704_412_800_000_000, 1_704_412_800_000_001)]})
    assert prune == (
        "t.`interval` IN ('1d') AND ((t.`interval` = '1d' AND ((t.`ts` >= TIMESTAMP '2024-01-05 00:00:00.000000+00:00'"
        " AND t.`ts` <= TIMESTAMP '2024-01-05 00:00:00.000001+00:00'))))"
    )
    assert build_silver.merge_prune({}) is None
    with pytest.raises(ValueError, match=r"unknown interval\(s\) \['1w'\]"):
        build_silver.merge_prune({"1w": [(0, 0)]})
