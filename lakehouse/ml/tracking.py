"""Optional MLflow tracking of one training run: a parent run per model version, a nested run per model.

The Delta registry (gold/model_registry) stays the source of truth: MLflow is a browsable copy for comparing
runs, off unless MLFLOW_TRACKING_URI is set, and nothing it does may fail or slow an untracked training.
So mlflow is imported only when tracking is on (the import alone takes seconds), and any error it raises is
reported and swallowed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from mlflow.entities import Metric

EXPERIMENT = "candlelake-training"
# MLflow rejects longer parameter values (mlflow.utils.validation.MAX_PARAM_VAL_LENGTH).
MAX_PARAM_LENGTH = 6000
_ENV = "MLFLOW_TRACKING_URI"


def _local_folder(uri: str) -> Path | None:
    """The folder a plain path or file: URI names; None for a real tracking URI.

    MLflow 3.x refuses a file-store folder (it raises unless MLFLOW_ALLOW_FILE_STORE=true), so such a
    folder gets a SQLite store and an artifacts folder inside it instead.
    """
    parsed = urlparse(uri)
    if uri == "databricks" or parsed.scheme not in ("", "file"):
        return None
    return Path(unquote(parsed.path) if parsed.scheme else uri).expanduser().resolve()


def _store() -> tuple[str, Path | None] | None:
    """(tracking URI, local folder or None) from the environment; None when tracking is off."""
    raw = os.environ.get(_ENV, "").strip()
    if not raw:
        return None
    folder = _local_folder(raw)
    return (f"sqlite:///{folder}/mlflow.db", folder) if folder else (raw, None)


def tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI as MLflow 3 can use it, or None when tracking is off (unset or empty)."""
    store = _store()
    return store[0] if store else None


def _metrics(values: Mapping[str, Any] | None, prefix: str, timestamp: int, step: int = 0) -> list[Metric]:
    from mlflow.entities import Metric

    return [
        Metric(prefix + key, float(value), timestamp, step)
        for key, value in (values or {}).items()
        if isinstance(value, int | float) and math.isfinite(value)
    ]


def _model_metrics(row: Mapping[str, Any], timestamp: int) -> list[Metric]:
    """Holdout metrics under their own names; every fold's under fold_*, one step per fold, for the curves."""
    found = [
        *_metrics(row.get("metrics"), "", timestamp),
        *_metrics(row.get("baselines"), "baseline_", timestamp),
        *_metrics(row.get("metrics_mean"), "mean_", timestamp),
        *_metrics(row.get("baselines_mean"), "mean_baseline_", timestamp),
    ]
    for fold in json.loads(row.get("fold_metrics") or "[]"):
        found += _metrics(fold.get("metrics"), "fold_", timestamp, int(fold["fold"]))
        found += _metrics(fold.get("baselines"), "fold_baseline_", timestamp, int(fold["fold"]))
    return found


_MODEL_TAGS = (
    "task",
    "algorithm",
    "model_id",
    "model_version",
    "key_metric",
    "beats_baseline",
    "feature_spec_hash",
    "training_table",
    "training_table_version",
    "artifact_uri",
)


def _log_model(client: Any, experiment_id: str, parent_id: str, row: Mapping[str, Any]) -> None:
    from mlflow.entities import Param
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    tags = {key: str(row.get(key)) for key in _MODEL_TAGS} | {MLFLOW_PARENT_RUN_ID: parent_id}
    run = client.create_run(experiment_id, tags=tags, run_name=f"{row['task']}_{row['algorithm']}")
    params = [Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in (row.get("params") or {}).items()]
    client.log_batch(run.info.run_id, metrics=_model_metrics(row, int(time.time() * 1000)), params=params)
    client.set_terminated(run.info.run_id)


def _experiment_id(client: Any, folder: Path | None) -> str:
    """A local folder keeps its artifacts beside its database, so `make mlflow-ui` finds both in one place."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return str(experiment.experiment_id)
    artifacts = (folder / "artifacts").as_uri() if folder else None
    return str(client.create_experiment(EXPERIMENT, artifact_location=artifacts))


def log_training(
    rows: list[dict[str, Any]],
    plots: dict[str, bytes],
    *,
    model_version: str,
    table: str,
    table_version: int | None,
    settings: dict[str, Any],
    log: Callable[[str], None],
) -> str | None:
    """The parent run's id, or None when tracking is off or MLflow failed (training goes on either way).

    MlflowClient rather than mlflow.start_run: the fluent API keeps a process-wide active run and rewrites
    MLFLOW_TRACKING_URI in os.environ, which a library called from a job has no business doing.
    """
    store = _store()
    if store is None:
        return None
    uri, folder = store
    # MLflow 3 reports usage to its vendor unless told not to: a training job should not phone home
    # unasked (MLFLOW_DISABLE_TELEMETRY=false in the environment turns it back on).
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if folder:
            folder.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, folder)
        tags = {"model_version": model_version, "training_table": table, "training_table_version": str(table_version)}
        parent = client.create_run(experiment_id, tags=tags, run_name=f"train-{model_version}").info.run_id
        client.log_batch(parent, params=[Param(k, str(v)[:MAX_PARAM_LENGTH]) for k, v in settings.items()])
        for row in rows:
            _log_model(client, experiment_id, parent, row)
        with tempfile.TemporaryDirectory() as scratch:
            for name, png in plots.items():
                (Path(scratch) / name).write_bytes(png)
            client.log_artifacts(parent, scratch)
        client.set_terminated(parent)
    except Exception as error:
        log(f"[train] MLflow logging failed: {error}")
        return None
    log(f"[train] MLflow: run {parent} in {uri} ({len(rows)} models)")
    return str(parent)
