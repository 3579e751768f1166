"""A real Delta commit race, forced rather than hoped for, and the job-level retry that survives it.

The race: a MERGE's source carries a Python UDF that, the first time it runs, signals and then waits
until another writer (a thread of the same driver) has committed to the target table. The MERGE's
transaction began before its source was evaluated, so its commit meets the other commit and Delta
raises a conflict, every time. The retry then runs the whole job body again, from its read.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as st

from lakehouse import conflicts, delta_io
from lakehouse.jobs import build_silver
from lakehouse.tables import BRONZE_CANDLES, SILVER_CANDLES

pytestmark = pytest.mark.spark
QUIET = {"log": lambda *_: None}
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def racing(df, signals: Path, rival, spark):
    """`df`, evaluated once through a UDF that holds the first evaluation until `rival()` (run in a driver
    thread as soon as the UDF starts) has committed. One partition: the held task takes one of the two
    local cores, the rival's write the other."""
    started, released = signals / "started", signals / "released"

    def hold(value):
        if not started.exists():
            started.touch()
            deadline = time.monotonic() + 120
            while not released.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return value

    def rival_thread() -> None:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            rival()
        finally:
            released.touch()

    threading.Thread(target=rival_thread, daemon=True).start()
    held = F.udf(hold, st.StringType())
    return df.coalesce(1).withColumn("symbol", held("symbol"))


def _row(spark, symbol: str, day: int, close: float):
    t = datetime(2024, 1, day)
    return spark.createDataFrame(
        [(symbol, "1d", t, close, close, close, close, 1.0, close, 1.0, "s", "b", t, t)], SILVER_CANDLES.schema
    )


def test_a_merge_that_meets_another_commit_raises_one_of_the_conflicts_the_retry_catches(spark, tmp_path):
    root = str(tmp_path / "lake")
    delta_io.merge_upsert(spark, _row(spark, "A", 1, 1.0), SILVER_CANDLES, root)
    signals = tmp_path / "signals"
    signals.mkdir()

    def rival() -> None:  # another driver's backfill of a symbol the MERGE never touches
        delta_io.append(spark, _row(spark, "B", 1, 9.0), SILVER_CANDLES, root)

    source = racing(_row(spark, "A", 2, 2.0), signals, rival, spark)
    with pytest.raises(conflicts.CONFLICTS) as raised:
        delta_io.merge_upsert(spark, source, SILVER_CANDLES, root)
    assert type(raised.value).__name__ == "ConcurrentAppendException"

    assert delta_io.read(spark, SILVER_CANDLES, root).count() == 2, "the rival's row, not the MERGE's"


def test_the_retry_is_bounded_and_leaves_other_errors_alone(spark):  # a Delta exception needs the JVM
    lost = []

    def always_conflicting():
        from delta.exceptions import ConcurrentDeleteReadException

        lost.append(1)
        raise ConcurrentDeleteReadException("files were removed by a concurrent OPTIMIZE", "")

    with pytest.raises(conflicts.ConflictsExhausted, match="lost 3 commit race.*ConcurrentDeleteReadException"):
        conflicts.retry_on_conflict(
            always_conflicting, what="job", log=lambda *_: None, attempts=3, sleep=lambda s: None
        )
    assert len(lost) == 3

    def broken():
        lost.append(2)
        raise ValueError("not a conflict")

    with pytest.raises(ValueError):
        conflicts.retry_on_conflict(broken, what="job", log=lambda *_: None, sleep=lambda s: None)
    assert lost.count(2) == 1


def test_a_silver_build_that_loses_its_merge_to_a_backfill_reruns_from_its_read_and_loses_nothing(
    spark, copy_unbuilt_batch_lake, tmp_path, monkeypatch
):
    later = copy_unbuilt_batch_lake()
    root = later.resolved_root
    signals = tmp_path / "signals"
    signals.mkdir()
    real_merge = delta_io.merge_upsert
    calls: list[int] = []

    def merge_meeting_a_backfill(spark_, df, tbl, root_, **kw):
        calls.append(1)
        if len(calls) == 1:  # the first MERGE races a manual backfill of another symbol into silver
            backfill = lambda: delta_io.append(spark, _row(spark, "BACKFILL", 1, 5.0), SILVER_CANDLES, root)  # noqa: E731
            df = racing(df, signals, backfill, spark)
        return real_merge(spark_, df, tbl, root_, **kw)

    monkeypatch.setattr(delta_io, "merge_upsert", merge_meeting_a_backfill)
    lines: list[str] = []
    summary = conflicts.retry_on_conflict(
        lambda: build_silver.run(spark, later, run_id="r2", now=T0, log=lines.append),
        what="build_silver",
        log=lines.append,
        base_delay_s=0.01,
    )
    assert len(calls) == 2, "the job ran again from its read and MERGEd once more"
    assert any("lost a commit race (ConcurrentAppendException" in line for line in lines)
    assert summary.rows_written > 0

    silver = delta_io.read(spark, SILVER_CANDLES, root)
    keys = silver.groupBy("symbol", "interval", "ts").count()
    assert keys.where("count > 1").count() == 0, "no key twice"
    per_symbol = {r.symbol: r["count"] for r in silver.groupBy("symbol").count().collect()}
    bronze_keys = delta_io.read(spark, BRONZE_CANDLES, root).select("symbol", "ts").distinct()
    expected = {r.symbol: r["count"] for r in bronze_keys.groupBy("symbol").count().collect()}
    assert per_symbol == {**expected, "BACKFILL": 1}
