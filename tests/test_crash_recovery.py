"""A job killed with SIGKILL mid-write leaves the lake as it was, and the next run finishes the work:
the result equals, by content, that of a run that was never interrupted.

The job runs as Glue runs it, in a process of its own (`python -m glue_jobs.<job>`, its own JVM). The
test watches the folder the job writes and kills the whole process group the moment the first file
of the write appears: after that instant the MERGE's (or the publish's) files exist, before it the
commit (or the `latest` switch) has not happened. Each test checks that it really hit that window,
so a kill that came too late fails loudly instead of proving nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.jobs import build_silver, export_models
from lakehouse.tables import (
    GOLD_MODEL_REGISTRY,
    GOLD_PREDICTIONS,
    SILVER_CANDLES,
    SILVER_PROCESSED_BATCHES,
    SILVER_QUARANTINE,
)
from tests.ml_lake import copy_lake

pytestmark = pytest.mark.spark
QUIET = {"log": lambda *_: None}
T0 = datetime(2025, 1, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent


def _files(folder: Path, suffix: str) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob(f"*{suffix}")} if folder.exists() else set()


def kill_when(argv: list[str], folder: Path, suffix: str, before: set[str], timeout_s: float = 240) -> set[str]:
    """Run `python -m <argv>` in a new process group; SIGKILL the group as soon as a file ending in `suffix`
    that is not in `before` appears under `folder`. Returns the new files seen at the kill."""
    job = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "CANDLELAKE_SPARK_LOG_LEVEL": "ERROR"},
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            new = _files(folder, suffix) - before
            if new:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait(30)
                return new
            if job.poll() is not None:
                out = job.stdout.read().decode() if job.stdout else ""
                pytest.fail(f"{argv[0]} ended (exit {job.returncode}) before writing: {out[-2000:]}")
            time.sleep(0.005)
        pytest.fail(f"{argv[0]} wrote nothing under {folder} in {timeout_s:.0f}s")
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
            job.wait(30)
    raise AssertionError("unreachable")


def _digest(frame) -> str:
    rows = sorted(json.dumps(r.asDict(), default=str, sort_keys=True) for r in frame.collect())
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def silver_content(spark, root: str) -> dict[str, str]:
    """What silver holds, without the run's own clock (`updated_at`, `quarantined_at`, `processed_at`)."""
    return {
        "candles": _digest(delta_io.read(spark, SILVER_CANDLES, root).drop("updated_at")),
        "quarantine": _digest(delta_io.read(spark, SILVER_QUARANTINE, root).drop("quarantined_at")),
        "batches": _digest(delta_io.read(spark, SILVER_PROCESSED_BATCHES, root).drop("processed_at")),
    }


def test_a_silver_build_killed_mid_merge_leaves_silver_as_it_was_and_the_rerun_equals_an_uninterrupted_one(
    spark, copy_unbuilt_batch_lake
):
    cfg, twin = copy_unbuilt_batch_lake("killed"), copy_unbuilt_batch_lake("twin")
    root = cfg.resolved_root

    versions = {t.name: delta_io.version(spark, t, root) for t in (SILVER_CANDLES, SILVER_PROCESSED_BATCHES)}
    table = Path(SILVER_CANDLES.path(root))
    committed = _files(table, ".parquet")

    written = kill_when(
        ["glue_jobs.build_silver", "--lake-root", root, "--run-id", "killed"], table, ".parquet", committed
    )

    assert written, "the kill came after the MERGE had written files"
    assert {t.name: delta_io.version(spark, t, root) for t in (SILVER_CANDLES, SILVER_PROCESSED_BATCHES)} == versions
    referenced = {
        r[0] for r in spark.read.format("delta").load(str(table)).select(F.input_file_name()).distinct().collect()
    }
    assert not any(name.split("/")[-1] in "".join(referenced) for name in written), "orphans, not data"

    build_silver.run(spark, cfg, run_id="after-the-kill", now=T0, **QUIET)
    build_silver.run(spark, twin, run_id="uninterrupted", now=T0, **QUIET)
    assert silver_content(spark, root) == silver_content(spark, twin.resolved_root)
    keys = delta_io.read(spark, SILVER_CANDLES, root).groupBy("symbol", "interval", "ts").count()
    assert keys.where("count > 1").count() == 0


def _new_version_to_publish(spark, root: str, version: str) -> str:
    """Registry rows of a second version (the first one's models, trained a second later): what a
    training run leaves for export to publish."""
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root).where(F.col("model_version") == version)
    second = f"{version}-b"
    rows = (
        registry.withColumn("model_version", F.lit(second))
        .withColumn("model_id", F.concat("model_id", F.lit("-b")))
        .withColumn("promoted", F.lit(False))
        .withColumn("trained_at", F.col("trained_at") + F.expr("INTERVAL 1 SECOND"))
    )
    delta_io.append(spark, rows, GOLD_MODEL_REGISTRY, root)
    return second


def published_content(spark, root: str, version: str) -> dict[str, object]:
    """The published version without its clock: the model files' digests, the pointer's target, the
    registry's promoted flags, the version's predictions (without `scored_at`)."""
    models = Path(root) / "gold" / "models"
    manifest = json.loads((models / version / "manifest.json").read_text())
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root).where(F.col("model_version") == version)
    predictions = delta_io.read(spark, GOLD_PREDICTIONS, root).where(F.col("model_version") == version)
    return {
        "latest": json.loads((models / "latest").read_text())["version"],
        "files": {n: f["sha256"] for n, f in manifest["files"].items() if not n.startswith(("charts/", "quality/"))},
        "promoted": sorted((r.model_id, r.promoted) for r in registry.collect()),
        "predictions": _digest(predictions.drop("scored_at")),
    }


def test_an_export_killed_mid_publish_leaves_latest_alone_and_the_rerun_equals_an_uninterrupted_one(
    spark, published_lake, tmp_path
):
    cfg = copy_lake(published_lake, tmp_path / "killed")
    twin = copy_lake(published_lake, tmp_path / "twin")
    root = cfg.resolved_root
    second = _new_version_to_publish(spark, root, published_lake.version)
    assert _new_version_to_publish(spark, twin.resolved_root, published_lake.version) == second
    pointer = Path(root) / "gold" / "models" / "latest"
    before = pointer.read_bytes()

    folder = Path(root) / "gold" / "models" / second
    argv = ["glue_jobs.export_models", "--lake-root", root, "--source", "synthetic", "--synthetic-symbols", "3"]
    written = kill_when([*argv, "--run-id", "killed"], folder, "", set())

    assert written, "the kill came after the publish had written files"
    assert pointer.read_bytes() == before, "latest still names the previous version: killed before the switch"
    assert json.loads(before)["version"] == published_lake.version

    export_models.run(spark, cfg, run_id="after-the-kill", now=T0 + timedelta(days=1), **QUIET)
    export_models.run(spark, twin, run_id="uninterrupted", now=T0 + timedelta(days=1), **QUIET)
    recovered = published_content(spark, root, second)
    assert recovered["latest"] == second
    assert recovered == published_content(spark, twin.resolved_root, second)
