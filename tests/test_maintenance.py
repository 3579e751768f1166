"""Table maintenance on a small lake of many small files: fewer files, the same rows, history kept,
and a retention that would lose time travel refused unless asked for."""

from __future__ import annotations

import hashlib
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from glue_jobs import maintain_tables as maintain_entry
from lakehouse import delta_io, maintenance
from lakehouse.tables import SILVER_CANDLES
from step_functions import definitions, run_local

pytestmark = pytest.mark.spark
T = datetime(2024, 1, 1)


def _day(spark, day: int, interval: str = "1d"):
    """One bar for each of three symbols: one small MERGE, as a daily run makes."""
    ts = T + timedelta(days=day)
    rows = [
        (s, interval, ts, 1.0 + day, 2.0 + day, 0.5, 1.5 + day, 10.0, 1.5 + day, 1.0, "syn", f"b{day}", ts, ts)
        for s in ("A", "B", "C")
    ]
    return spark.createDataFrame(rows, SILVER_CANDLES.schema)


def _content(spark, root: str, version: int | None = None) -> str:
    frame = delta_io.read(spark, SILVER_CANDLES, root, at_version=version)
    rows = sorted(tuple(str(v) for v in r) for r in frame.collect())
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _protocol(spark, root: str) -> tuple[int, int]:
    row = spark.sql(f"DESCRIBE DETAIL delta.`{SILVER_CANDLES.path(root)}`").first()
    return row["minReaderVersion"], row["minWriterVersion"]


@pytest.fixture(scope="module")
def fragmented_template(spark, tmp_path_factory):
    """Daily writes of a few rows each (appends: a MERGE costs seconds more and leaves the same small
    files), then one MERGE that corrects a bar: it rewrites a file, the old one stays on disk for the
    versions that read it. Built once; each test maintains its own copy (Delta logs hold relative paths)."""
    root = str(tmp_path_factory.mktemp("fragmented") / "lake")
    for day in range(5):
        delta_io.append(spark, _day(spark, day), SILVER_CANDLES, root)
    for day in range(2):
        delta_io.append(spark, _day(spark, day, "1h"), SILVER_CANDLES, root)
    delta_io.merge_upsert(spark, _day(spark, 2).withColumn("close", F.col("close") + 1), SILVER_CANDLES, root)
    return root


@pytest.fixture
def fragmented(fragmented_template, tmp_path):
    root = tmp_path / "lake"
    shutil.copytree(fragmented_template, root)
    return str(root)


def test_maintenance_compacts_per_partition_and_keeps_rows_history_and_protocol(spark, fragmented, capsys):
    root = fragmented
    content, protocol = _content(spark, root), _protocol(spark, root)
    first_write = _content(spark, root, version=1)
    lines: list[str] = []

    [done] = maintenance.maintain(spark, [SILVER_CANDLES], root, log=lines.append)

    assert done.before.live_files >= 7 and done.after.live_files == 2, "one file per interval partition"
    assert done.files_compacted == done.before.live_files and done.files_written == 2
    assert any("compacted `interval` = '1d'" in line for line in lines)
    assert any("compacted `interval` = '1h'" in line for line in lines)
    assert _content(spark, root) == content, "the same rows"
    assert _protocol(spark, root) == protocol, "no newer protocol (Athena reads what it read before)"
    # The default retention (7 days) keeps every young file: time travel to the first version still works.
    assert done.after.stored_files == done.before.stored_files + 2
    assert _content(spark, root, version=1) == first_write
    properties = {
        r.key: r.value for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{SILVER_CANDLES.path(root)}`").collect()
    }
    assert properties["delta.checkpointInterval"] == "10"
    assert properties["delta.deletedFileRetentionDuration"] == "interval 168 hours"
    assert properties["delta.logRetentionDuration"] == "interval 30 days"
    assert properties["delta.enableDeletionVectors"] == "false"
    history = spark.sql(f"DESCRIBE HISTORY delta.`{SILVER_CANDLES.path(root)}`").collect()
    operations = [r.operation for r in sorted(history, key=lambda r: r.version)]
    assert operations[: done.version_before + 1].count("WRITE") == 7, "the history before is intact"
    assert operations[done.version_before + 1 :] == ["SET TBLPROPERTIES", "OPTIMIZE", "OPTIMIZE", *operations[-2:]]

    # Once more, as `make maintain` runs it: the maintenance state machine through the local runner, its
    # Glue job on every table that exists (absent ones are skipped, not created). Nothing to compact,
    # properties already set: no new data commit and no property commit.
    code = run_local.main(
        [
            "--definition",
            str(definitions.MAINTENANCE),
            "--lake-root",
            root,
            "--retry-wait-scale",
            "0",
            "--name",
            "weekly",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    history = json.loads(Path(root, "runs", "weekly.json").read_text())
    assert [(s["state"], s["status"]) for s in history["states"]][-2:] == [
        ("MaintainTables", "SUCCEEDED"),
        ("Succeeded", "SUCCEEDED"),
    ]
    assert "[maintain_tables] rows read=0" in out and "tables=1 " in out and "live_files=2→2" in out
    report = out.split("before → after:")[1].split("[maintain_tables] rows read")[0]
    assert "silver/candles" in report and "gold/features_1d" not in report
    after_again = spark.sql(f"DESCRIBE HISTORY delta.`{SILVER_CANDLES.path(root)}`").collect()
    assert {r.operation for r in after_again if r.version > done.version_after} <= {"VACUUM START", "VACUUM END"}
    assert _content(spark, root) == content


def test_a_short_retention_is_refused_unless_asked_for_and_then_time_travel_is_lost(spark, fragmented, capsys):
    root = fragmented
    version = delta_io.version(spark, SILVER_CANDLES, root)

    code = maintain_entry.main(["--lake-root", root, "--retention-hours", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "time travel beyond 1 hours is lost" in err and "--allow-short-retention" in err
    assert delta_io.version(spark, SILVER_CANDLES, root) == version, "a refused run changes nothing"

    content = _content(spark, root)
    lines: list[str] = []
    [done] = maintenance.maintain(
        spark, [SILVER_CANDLES], root, retention_hours=0, allow_short_retention=True, log=lines.append
    )
    assert any("WARNING: VACUUM with a retention of 0 hours" in line for line in lines)
    assert done.after.stored_files == done.after.live_files == 2, "every unreferenced file deleted"
    assert _content(spark, root) == content
    with pytest.raises(Exception, match="(?i)file|not found|vacuum"):
        _content(spark, root, version=1)  # version 0 is the empty table's creation: no file to lose
