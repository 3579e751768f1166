"""Job body of export_models: publish the best model per task of a training run under gold/models/<version>/.

Steps, in the order that keeps `latest` honest (lakehouse/ml/export.py says why): read the
version's registry rows and choose the best per task; read the feature snapshot and the chart
bars (chart/<symbol>.json: 250 bars with overlays, for the dashboard); gather each
chosen model's artifacts and describe it; build the manifest; check every ONNX graph against its
native model; write the files and read them back against their sha256; switch `latest`; mark the
promoted rows in the registry; score gold/predictions. Any failure before the switch leaves
`latest` naming the previous version.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lakecontract.artifacts import (
    CHART_COLUMNS,
    CHART_ROWS,
    FEATURES,
    LATEST,
    MANIFEST,
    MODELS_DIR,
    QUALITY_HTML,
    QUALITY_JSON,
    REGISTRY,
    sha256,
)
from lakecontract.constants import TASKS
from lakecontract.objectstore import ObjectStore
from lakehouse.config import LakeConfig
from lakehouse.job_summary import JobSummary
from lakehouse.jobs import Log
from lakehouse.ml.dataset import TrainingData
from lakehouse.ml.export import (
    ExportFailed,
    PublishedModel,
    chart_files,
    choose,
    family_of,
    latest_version,
    manifest_of,
    model_doc,
    prediction_records,
    snapshot,
    verify_models,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.delta_io import WriteResult

JOB = "export_models"


def run(
    spark: SparkSession,
    cfg: LakeConfig,
    *,
    run_id: str | None,
    now: datetime,
    log: Log,
    model_version: str | None = None,
) -> JobSummary:
    """Publish `model_version` (default: the newest in gold/model_registry; nothing when `latest` already names
    it and nothing it was published from has changed, as after a training run that found nothing to train)."""
    root, endpoint = cfg.resolved_root, cfg.s3_endpoint  # artifacts and tables live in the same store
    started = time.monotonic()
    asked = model_version
    model_version, rows = _registry_rows(spark, root, model_version)
    if asked is None and _published_as_is(spark, cfg, model_version, rows):
        log(f"[export] {model_version} is published already from these very rows: nothing to export")
        return JobSummary(
            JOB, rows_read=0, rows_written=0, details={"model_version": model_version, "skipped": "published"}
        )
    chosen = _best_per_task(rows, model_version)
    data, snap = _snapshot(spark, cfg, rows[0]["interval"], chosen, log)
    artifacts, models = _gather(chosen, endpoint)
    docs = {task: _described(task, chosen[task], models[task], log) for task in chosen}
    promoted_ids = sorted(doc["model_id"] for doc in docs.values() if doc["promoted"])
    registry = [{**row, "promoted": row["model_id"] in promoted_ids} for row in rows]
    files = {
        FEATURES: json.dumps(snap).encode(),
        **artifacts,
        REGISTRY: json.dumps(registry, default=str, indent=1).encode(),
    }
    manifest = manifest_of(model_version, docs, chosen, files, snap, run_id, now)
    loaded = verify_models(models, files, snap, log)
    records, columns = _prediction_records(data.frame, manifest, loaded, now)
    calls = pd.DataFrame.from_records(records, columns=columns)
    files.update(chart_files(_chart_frame(spark, cfg, snap["interval"]), snap["interval"], calls))
    files.update(_quality_files(cfg, run_id, log))
    manifest = manifest_of(model_version, docs, chosen, files, snap, run_id, now)  # the charts listed too
    store = ObjectStore(root, f"{MODELS_DIR}/{model_version}", endpoint=endpoint)
    manifest_bytes = _write_verified(store, files, manifest)
    _switch_latest(root, endpoint, model_version, manifest_bytes, now, log)
    _mark_promoted(spark, root, model_version, promoted_ids)
    written = _write_predictions(spark, root, records)
    return JobSummary(
        JOB,
        rows_read=len(data.frame),
        rows_written=written.rows_inserted + written.rows_updated,
        versions={"gold/predictions": written.version},
        details={
            "model_version": model_version,
            "promoted": ",".join(promoted_ids) or "none",
            "seconds": round(time.monotonic() - started, 1),
        },
    )


def _published_as_is(spark: SparkSession, cfg: LakeConfig, model_version: str, rows: list[dict[str, Any]]) -> bool:
    """Whether `latest` names `model_version` and publishing it again would publish the same thing: the same
    registry rows (a promotion rule applied to edited rows publishes anew), the same gold table version for the
    snapshot, the same symbols."""
    from lakehouse import delta_io
    from lakehouse.tables import gold_features

    root, endpoint = cfg.resolved_root, cfg.s3_endpoint
    if latest_version(root, s3_endpoint=endpoint) != model_version:
        return False
    store = ObjectStore(root, f"{MODELS_DIR}/{model_version}", endpoint=endpoint)
    try:
        manifest, published = json.loads(store.read(MANIFEST)), json.loads(store.read(REGISTRY))
        symbols = set(json.loads(store.read(FEATURES))["symbols"])
    except FileNotFoundError:
        return False

    def canonical(registry: list[dict[str, Any]]) -> str:
        return json.dumps(sorted(registry, key=lambda r: r["model_id"]), default=str, sort_keys=True)

    table_version = delta_io.version(spark, gold_features(manifest["interval"]), root)
    return (
        canonical(published) == canonical(json.loads(json.dumps(rows, default=str)))
        and manifest["lineage"]["snapshot_table_version"] == table_version
        and (not cfg.symbols or set(cfg.symbols) == symbols)
        and _predictions_written(spark, root, model_version)
    )


def _predictions_written(spark: SparkSession, root: str, model_version: str) -> bool:
    """Whether gold/predictions holds the version's scores: the last write of a publish, so a run killed
    after `latest` moved (and after the registry's promoted flags, which `canonical` compares) is finished
    by the next one instead of being taken for complete."""
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.tables import GOLD_PREDICTIONS

    scored = delta_io.read(spark, GOLD_PREDICTIONS, root).where(F.col("model_version") == model_version)
    return bool(scored.limit(1).count())


def _registry_rows(spark: SparkSession, root: str, model_version: str | None) -> tuple[str, list[dict[str, Any]]]:
    """(the version to publish, its registry rows): `model_version`, or the newest trained one."""
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.tables import GOLD_MODEL_REGISTRY

    if not delta_io.exists(spark, GOLD_MODEL_REGISTRY, root):
        raise ExportFailed(f"{GOLD_MODEL_REGISTRY.path(root)} does not exist: run train_models first")
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root)
    if model_version is None:
        newest = registry.agg(F.max("model_version")).first()
        if newest is None or newest[0] is None:
            raise ExportFailed("gold/model_registry is empty: run train_models first")
        model_version = str(newest[0])
    rows = [r.asDict(recursive=True) for r in registry.where(F.col("model_version") == model_version).collect()]
    if not rows:
        raise ExportFailed(f"no model of version {model_version!r} in gold/model_registry")
    return model_version, rows


def _best_per_task(rows: list[dict[str, Any]], model_version: str) -> dict[str, dict[str, Any]]:
    chosen = choose(rows)
    missing = [t for t in TASKS if t not in chosen]
    if missing:
        raise ExportFailed(f"version {model_version} has no usable model for task(s) {missing}")
    return chosen


def _snapshot(
    spark: SparkSession, cfg: LakeConfig, interval: str, chosen: dict[str, dict[str, Any]], log: Log
) -> tuple[TrainingData, dict[str, Any]]:
    """The gold rows of the interval and features.json: each symbol's newest rows, with every column
    a chosen model reads."""
    from lakehouse.ml import dataset

    try:
        # float64: features.json keeps gold's numbers exactly (the models cast to float32 themselves)
        data = dataset.load(spark, cfg.resolved_root, interval, cfg.symbols, log, dtype=np.float64)
    except (FileNotFoundError, dataset.NoRowsForSymbols) as exc:
        raise ExportFailed(str(exc)) from None
    features = tuple(name for row in chosen.values() for name in row["features"])
    snap = snapshot(data.frame, features=features)
    snap.update(interval=interval, table=data.table, table_version=data.table_version)
    return data, snap


def _chart_frame(spark: SparkSession, cfg: LakeConfig, interval: str) -> pd.DataFrame:
    """Each symbol's newest CHART_ROWS gold rows with the chart's columns (a window per symbol in
    Spark: the driver gets 250 rows a symbol, not the table)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.tables import gold_features

    gold = delta_io.read(spark, gold_features(interval), cfg.resolved_root)
    if cfg.symbols:
        gold = gold.where(F.col("symbol").isin(list(cfg.symbols)))
    newest = Window.partitionBy("symbol").orderBy(F.col("ts").desc())
    tail = (
        gold.select("symbol", "ts", *CHART_COLUMNS)
        .withColumn("_n", F.row_number().over(newest))
        .where(F.col("_n") <= CHART_ROWS)
        .drop("_n")
    )
    return tail.toPandas()


def _gather(
    chosen: dict[str, dict[str, Any]], endpoint: str | None
) -> tuple[dict[str, bytes], dict[str, PublishedModel]]:
    """Each chosen model's files (as `<task>/<file>`) from its training artifacts, and its family."""
    files: dict[str, bytes] = {}
    models: dict[str, PublishedModel] = {}
    for task, row in chosen.items():
        source = ObjectStore(row["artifact_uri"], endpoint=endpoint)
        io_bytes = source.read_bytes("io.json")
        models[task] = published = family_of(task, io_bytes)
        for name in ("model.onnx", published.family.native_file):
            files[f"{task}/{name}"] = source.read_bytes(name)
        files[f"{task}/io.json"] = io_bytes
    return files, models


def _described(task: str, row: dict[str, Any], published: PublishedModel, log: Log) -> dict[str, Any]:
    doc = model_doc(task, row, published)
    outcome = "PROMOTED" if doc["promoted"] else "not promoted; serving uses the baseline"
    log(f"[export] {task}: {doc['reason']} → {outcome}")
    return doc


def _write_verified(store: ObjectStore, files: dict[str, bytes], manifest: dict[str, Any]) -> bytes:
    """Write every file and the manifest, then read each file back against the manifest's sha256:
    what is in storage is checked, not what is in memory. Returns the manifest's bytes."""
    for name, payload in files.items():
        store.write_bytes(name, payload)
    manifest_bytes = json.dumps(manifest, indent=1, default=str).encode()
    store.write_bytes(MANIFEST, manifest_bytes, "application/json")
    for name, meta in manifest["files"].items():
        if sha256(store.read_bytes(name)) != meta["sha256"]:
            raise ExportFailed(f"{store.uri(name)}: sha256 mismatch after writing; latest not switched")
    return manifest_bytes


def _switch_latest(
    root: str, endpoint: str | None, model_version: str, manifest_bytes: bytes, now: datetime, log: Log
) -> None:
    """Point gold/models/latest at the new version, atomically: the last step serving can see."""
    previous = latest_version(root, s3_endpoint=endpoint)
    pointer = {"version": model_version, "manifest_sha256": sha256(manifest_bytes), "published_at": now.isoformat()}
    ObjectStore(root, MODELS_DIR, endpoint=endpoint).replace(LATEST, json.dumps(pointer))
    log(f"[export] {MODELS_DIR}/{LATEST}: {previous} → {model_version}")


def _mark_promoted(spark: SparkSession, root: str, model_version: str, promoted_ids: list[str]) -> None:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from lakehouse.tables import GOLD_MODEL_REGISTRY

    DeltaTable.forPath(spark, GOLD_MODEL_REGISTRY.path(root)).update(
        F.col("model_version") == model_version,
        {"promoted": F.col("model_id").isin(*promoted_ids) if promoted_ids else F.lit(False)},
    )


def _quality_files(cfg: LakeConfig, run_id: str | None, log: Log) -> dict[str, bytes]:
    """The data-quality report of this run (silver's and gold's validations), or of the newest run that
    validated anything, published with the version; the report names its run."""
    from lakehouse.quality.report import run_report

    report = run_report(cfg.resolved_root, run_id or "", s3_endpoint=cfg.s3_endpoint)
    if report is None:
        log("[export] no run has validated this lake yet: the version is published without a data-quality report")
        return {}
    validated_by, document, page = report
    if validated_by != run_id:
        log(f"[export] run {run_id!r} validated no new rows: publishing the newest report, run {validated_by!r}")
    return {QUALITY_JSON: document, QUALITY_HTML: page}


def _prediction_records(
    frame: pd.DataFrame, manifest: dict[str, Any], models: dict[str, PublishedModel], now: datetime
) -> tuple[list[tuple[Any, ...]], list[str]]:
    """gold/predictions rows (and their column names): the holdout block and each symbol's newest bar,
    scored by the published models; the chart files show the same scores."""
    from lakehouse.tables import GOLD_PREDICTIONS

    columns = [f.name for f in GOLD_PREDICTIONS.schema.fields]
    return prediction_records(frame, manifest, models, now, columns), columns


def _write_predictions(spark: SparkSession, root: str, records: list[tuple[Any, ...]]) -> WriteResult:
    """MERGE on (model_version, symbol, ts) so exporting the same version again rewrites, not duplicates."""
    from lakehouse import delta_io
    from lakehouse.tables import GOLD_PREDICTIONS

    df = spark.createDataFrame(records, GOLD_PREDICTIONS.schema)
    return delta_io.merge_upsert(spark, df, GOLD_PREDICTIONS, root)
