"""A small synthetic lake trained and exported once per test session (≈ 1.5–2.5 min on 2 cores).

The published lake is read-only for every test: a test that changes a lake (re-exports, corrupts
artifacts, edits the registry) works on `copy_lake(...)`, and the API tests use `pristine_models`,
a copy of `gold/models` taken right after the first export. So no test's outcome depends on which
test module ran before it (`pytest -p randomly` checks that).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from lakehouse.config import LakeConfig
from lakehouse.job_summary import JobSummary
from lakehouse.ml.lstm import LSTMSettings
from lakehouse.ml.train import TrainSettings

QUIET = {"log": lambda *_: None}
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SMALL = TrainSettings(folds=2, test_bars=60, gap=2, lstm=LSTMSettings(window=10, epochs=3, hidden=8))


@dataclass(frozen=True)
class PublishedLake:
    cfg: LakeConfig
    version: str
    export: JobSummary
    pristine_models: Path  # gold/models as the first export left it
    # gold/predictions of `version` as the batch export wrote them (native models on the training
    # frame): the API's independent oracle. Columns as in tables.PREDICTIONS_SCHEMA.
    predictions: pd.DataFrame


def copy_lake(published: PublishedLake, folder: Path) -> LakeConfig:
    """A private copy of the whole published lake (Delta logs use relative paths, so a copied
    table is a table); the registry's artifact URIs still name the original, read-only files."""
    root = folder / "lake"
    shutil.copytree(published.cfg.resolved_root, root)
    return replace(published.cfg, lake_root=str(root))


def build(spark, folder: Path) -> PublishedLake:
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.jobs import build_features, build_silver, export_models, ingest_candles, train_models
    from lakehouse.tables import GOLD_PREDICTIONS

    root = str(folder / "lake")
    cfg = LakeConfig(lake_root=root, source="synthetic", symbols=(), synthetic_symbols=3, synthetic_bars=700)
    ingest_candles.run(spark, cfg, run_id="r1", now=T0, **QUIET)
    build_silver.run(spark, cfg, run_id="r1", now=T0, **QUIET)
    build_features.run(spark, cfg, run_id="r1", now=T0, **QUIET)
    summary = train_models.run(spark, cfg, run_id="r1", now=T0, settings=SMALL, **QUIET)
    export = export_models.run(spark, cfg, run_id="r1", now=T0, **QUIET)
    pristine = folder / "pristine_models"
    shutil.copytree(Path(root) / "gold" / "models", pristine)
    version = summary.details["model_version"]
    predictions = (
        delta_io.read(spark, GOLD_PREDICTIONS, cfg.resolved_root).where(F.col("model_version") == version).toPandas()
    )
    return PublishedLake(cfg, version, export, pristine, predictions)


def unpublish(root: Path, prefix: str) -> None:
    """Make the version `latest` names look published before its files under `prefix` existed (an
    older export): drop them from its manifest and re-point `latest` at the rewritten manifest."""
    import hashlib
    import json

    models = root / "gold" / "models"
    pointer = json.loads((models / "latest").read_text())
    path = models / pointer["version"] / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.startswith(prefix)}
    path.write_bytes(json.dumps(manifest).encode())
    pointer["manifest_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (models / "latest").write_text(json.dumps(pointer))
