"""Job body of train_models: gold/features_<interval> → walk-forward evaluated models, their
artifacts and plots, one gold/model_registry row per model.

Steps: read the warm labeled rows and cut the folds; evaluate every candidate family (all of
`catalogue.candidates`, or the `--models` subset) on the same folds; write each model's artifacts
and registry row; render the plots; append the rows. The pieces live in lakehouse/ml (train.py
for artifacts, registry rows and the leaderboard; evaluate.py for the folds).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lakecontract.objectstore import ObjectStore
from lakehouse.config import LakeConfig
from lakehouse.job_summary import JobSummary
from lakehouse.jobs import Log
from lakehouse.ml import catalogue
from lakehouse.ml.dataset import MODEL_FEATURES, TrainingData
from lakehouse.ml.evaluate import ModelResult, evaluate
from lakehouse.ml.family import ModelFamily
from lakehouse.ml.splits import Fold, walk_forward
from lakehouse.ml.train import (
    ARTIFACTS_DIR,
    TRAINING_REPORTS_DIR,
    TrainingFailed,
    TrainSettings,
    artifact_files,
    hardware,
    leaderboard,
    registry_row,
    training_key,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

JOB = "train_models"
DEFAULT_SETTINGS = TrainSettings()


def run(
    spark: SparkSession,
    cfg: LakeConfig,
    *,
    run_id: str | None,
    now: datetime,
    log: Log,
    settings: TrainSettings = DEFAULT_SETTINGS,
) -> JobSummary:
    """Train and evaluate every candidate on `settings.interval`'s gold features."""
    from lakehouse import delta_io
    from lakehouse.ml import dataset, tracking
    from lakehouse.tables import GOLD_MODEL_REGISTRY

    model_version = f"{now:%Y%m%dT%H%M%S}Z"
    root = cfg.resolved_root
    started = time.monotonic()
    data, folds = _training_rows(spark, cfg, settings, log)
    families = _candidates(settings)
    key = training_key(data, cfg.symbols, settings, [f.name for f in families])
    if (trained := _trained_already(spark, root, key, data, log)) is not None:
        return trained
    with _rows_cached(data, any(f.fits_on_cluster for f in families)):
        results = _evaluated_all(families, data, folds, settings, log)
    rows = _write_artifacts(results, data, cfg, settings, model_version, run_id, now, key)
    pngs, plots_uri = _write_plots(results, cfg, model_version)
    written = delta_io.append(spark, spark.createDataFrame(rows, GOLD_MODEL_REGISTRY.schema), GOLD_MODEL_REGISTRY, root)
    log(f"[train] leaderboard (holdout fold {folds[-1].test_start:%Y-%m-%d}…{folds[-1].test_end:%Y-%m-%d}):")
    log(f"[train] Sharpe and CAGR annualised on {data.calendar.describe()}")
    log(leaderboard(rows))
    log(f"[train] plots: {plots_uri}")
    tracking.log_training(  # MLflow, when MLFLOW_TRACKING_URI is set; the registry above stays the record
        rows,
        pngs,
        model_version=model_version,
        table=data.table,
        table_version=data.table_version,
        settings=asdict(settings),
        log=log,
    )
    peak = dataset.peak_rss_bytes() / 2**20
    log(
        f"[train] driver rows used {len(data.frame):,} of {data.rows_available:,} available "
        f"(--train-max-rows {settings.max_rows:,}); driver peak RSS {peak:,.0f} MiB (Python; the JVM apart)"
    )
    return JobSummary(
        JOB,
        rows_read=len(data.frame),
        rows_written=written.rows_inserted,
        versions={data.table: data.table_version, GOLD_MODEL_REGISTRY.name: written.version},
        details={
            "model_version": model_version,
            "models": len(rows),
            "rows_available": data.rows_available,
            "peak_rss_mib": round(peak),
            "seconds": round(time.monotonic() - started, 1),
        },
    )


def _training_rows(
    spark: SparkSession, cfg: LakeConfig, settings: TrainSettings, log: Log
) -> tuple[TrainingData, list[Fold]]:
    """The warm gold rows of the interval and the walk-forward folds over their labeled part."""
    from lakehouse.ml import dataset

    started = time.monotonic()
    try:
        data = dataset.load(spark, cfg.resolved_root, settings.interval, cfg.symbols, log, settings.max_rows)
    except (FileNotFoundError, dataset.NoRowsForSymbols, ValueError) as exc:
        raise TrainingFailed(str(exc)) from None
    labeled = data.labeled
    log(
        f"[train] {data.table}@v{data.table_version}: {len(labeled):,} labeled warm rows, "
        f"{labeled['symbol'].nunique()} symbol(s), {len(MODEL_FEATURES)} pooled features "
        f"(read in {time.monotonic() - started:.1f}s)"
    )
    try:
        folds = walk_forward(labeled["ts"], settings.folds, settings.test_bars, settings.gap)
    except ValueError as exc:
        raise TrainingFailed(f"{data.table}: {exc} (or raise --train-max-rows)") from None
    for fold in folds:
        log(f"[train] {fold.describe()}")
    return data, folds


def _write_plots(results: list[ModelResult], cfg: LakeConfig, model_version: str) -> tuple[dict[str, bytes], str]:
    """The run's PNG plots under reports/training/<version>/: (the plots, where they are)."""
    from lakehouse.ml import plots

    reports = ObjectStore(cfg.resolved_root, f"{TRAINING_REPORTS_DIR}/{model_version}", endpoint=cfg.s3_endpoint)
    pngs = plots.render(results)
    for name, png in pngs.items():
        reports.write_bytes(name, png, "image/png")
    return pngs, reports.uri()


def _trained_already(spark: SparkSession, root: str, key: str, data: TrainingData, log: Log) -> JobSummary | None:
    """The summary of a run with nothing to train: a model version in gold/model_registry was trained under
    `key` (see train.training_key). None: train."""
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.tables import GOLD_MODEL_REGISTRY

    if not delta_io.exists(spark, GOLD_MODEL_REGISTRY, root):
        return None
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root)
    if "training_key" not in registry.columns:  # a registry from before the key: nothing matches
        return None
    row = registry.where(F.col("training_key") == key).agg(F.max("model_version")).first()
    if row is None or row[0] is None:
        return None
    log(
        f"[train] {data.table}@v{data.table_version} was trained with these settings and this code already, as "
        f"model version {row[0]}: nothing new to train"
    )
    return JobSummary(
        JOB,
        rows_read=len(data.frame),
        rows_written=0,
        versions={data.table: data.table_version},
        details={"model_version": str(row[0]), "models": 0, "skipped": "already trained"},
    )


def _candidates(settings: TrainSettings) -> list[ModelFamily]:
    """Every family of the catalogue, or the ones `settings.models` names (an unknown name is an error)."""
    families = catalogue.candidates(settings.lstm, settings.spark_workers, everything=bool(settings.models))
    if not settings.models:
        return families
    unknown = set(settings.models) - {f.name for f in families}
    if unknown:
        raise TrainingFailed(f"unknown model(s) {sorted(unknown)}; known: {', '.join(f.name for f in families)}")
    return [f for f in families if f.name in settings.models]


@contextmanager
def _rows_cached(data: TrainingData, needed: bool) -> Iterator[None]:
    """Keep the usable rows in the executors' memory (spilling to disk) while the folds of the families that
    fit on the cluster read them: one Delta read instead of one per fit."""
    if not needed or data.rows is None:
        yield
        return
    from pyspark import StorageLevel

    data.rows.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield
    finally:
        data.rows.unpersist()


def _evaluated_all(
    families: list[ModelFamily],
    data: TrainingData,
    folds: list[Fold],
    settings: TrainSettings,
    log: Log,
) -> list[ModelResult]:
    """Every family's result, in `families` order. Families that fit on the cluster are evaluated in a
    thread of their own while the driver fits the others: the driver only waits on their Spark jobs, whose
    barrier stage keeps one core of an executor busy. Even on 2 local cores that pays (bundled data: the
    train job 94 s one after the other, ~70 s overlapped)."""
    from concurrent.futures import ThreadPoolExecutor

    data.labeled  # noqa: B018 — cut the labeled rows once, before two threads ask for them
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cluster-fit") as pool:
        remote = {f.name: pool.submit(_evaluated, f, data, folds, settings, log) for f in families if f.fits_on_cluster}
        local = {f.name: _evaluated(f, data, folds, settings, log) for f in families if not f.fits_on_cluster}
        return [local[f.name] if f.name in local else remote[f.name].result() for f in families]


def _evaluated(
    family: ModelFamily, data: TrainingData, folds: list[Fold], settings: TrainSettings, log: Log
) -> ModelResult:
    result = evaluate(family, data, folds, settings.seed, settings.gap, log=log)
    log(f"[train] {family.name}: {len(folds)} fold(s) in {result.seconds:.1f}s")
    return result


def _write_artifacts(
    results: list[ModelResult],
    data: TrainingData,
    cfg: LakeConfig,
    settings: TrainSettings,
    model_version: str,
    run_id: str | None,
    now: datetime,
    key: str,
) -> list[dict[str, Any]]:
    """Each model's files under gold/model_artifacts/<version>/<name>/, and its registry row."""
    hw = hardware()
    # cfg.s3_endpoint is the endpoint Spark writes the registry to: artifacts must go to the same store.
    artifacts = ObjectStore(cfg.resolved_root, f"{ARTIFACTS_DIR}/{model_version}", endpoint=cfg.s3_endpoint)
    rows = []
    labeled_rows = len(data.labeled)
    for result in results:
        name = result.family.name
        for file, payload in artifact_files(result).items():
            artifacts.write_bytes(f"{name}/{file}", payload)
        uri = artifacts.uri(name)
        rows.append(registry_row(result, data, settings, model_version, run_id, uri, labeled_rows, hw, now, key))
    return rows
