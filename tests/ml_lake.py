"""A small synthetic lake trained and exported once per test session (≈ 1.5–2.5 min on 2 cores).

The ML pipeline tests use the lake itself (and change it: they re-export, corrupt artifacts);
the API tests use `pristine_models`, a copy of `gold/models` taken right after the first export,
so their outcome does not depend on which test module ran first.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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


def build(spark, folder: Path) -> PublishedLake:  # noqa: ANN001
    from lakehouse.gold_build import run_build_features
    from lakehouse.ingest import run_ingest
    from lakehouse.ml.export import run_export
    from lakehouse.ml.train import run_train
    from lakehouse.silver_build import run_build_silver

    root = str(folder / "lake")
    cfg = LakeConfig(lake_root=root, source="synthetic", symbols=(), synthetic_symbols=3, synthetic_bars=700)
    run_ingest(spark, cfg, now=T0, **QUIET)
    run_build_silver(spark, cfg, now=T0, run_id="r1", **QUIET)
    run_build_features(spark, cfg, now=T0, run_id="r1", **QUIET)
    summary = run_train(spark, cfg, SMALL, run_id="r1", now=T0, **QUIET)
    export = run_export(spark, cfg, run_id="r1", now=T0, **QUIET)
    pristine = folder / "pristine_models"
    shutil.copytree(Path(root) / "gold" / "models", pristine)
    return PublishedLake(cfg, summary.details["model_version"], export, pristine)
