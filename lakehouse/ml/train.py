"""What a training run is made of: its settings, each model's artifacts, its registry row, the leaderboard.

The job body that runs it is `lakehouse/jobs/train_models.py`. Every model family is evaluated
walk-forward on the same folds (pooled across symbols). The model kept for each family is the one
fitted on the holdout fold's training rows, so the numbers in the registry are the numbers of the
artifact that may be exported — no refit on data the holdout metrics did not cover. Artifacts
(native + ONNX) go under `gold/model_artifacts/<model_version>/<task>_<algorithm>/`, plots under
`reports/training/<model_version>/`. Nothing here asks which family a model is: the
`ModelFamily` interface answers (lakehouse/ml/family.py).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from lakecontract.feature_spec import spec_hash
from lakehouse.job_summary import JobFailed
from lakehouse.ml.dataset import DEFAULT_MAX_ROWS, TrainingData
from lakehouse.ml.evaluate import ModelResult
from lakehouse.ml.lstm import LSTMSettings

ARTIFACTS_DIR = "gold/model_artifacts"
TRAINING_REPORTS_DIR = "reports/training"


class TrainingFailed(JobFailed):
    """Training cannot start on this lake (no features yet, too little history, unknown model)."""


@dataclass(frozen=True)
class TrainSettings:
    interval: str = "1d"
    folds: int = 3
    test_bars: int = 252
    gap: int = 5
    seed: int = 7
    models: tuple[str, ...] = ()  # empty: all; else names like direction_logistic, return_lstm
    lstm: LSTMSettings = field(default_factory=LSTMSettings)
    max_rows: int = DEFAULT_MAX_ROWS  # rows on the driver for the driver-side models, newest first per symbol
    spark_workers: int = 1  # xgboost.spark workers (≤ Spark's task slots)


def training_key(data: TrainingData, symbols: tuple[str, ...], settings: TrainSettings, families: list[str]) -> str:
    """What a training run is a function of: the table version it read, the symbols, every setting, the
    candidate families, the feature spec and the training code itself. A run whose key is in gold/model_registry
    already would fit the same models on the same rows again (a CSV dropped twice, a schedule firing on a
    day with no new bars), so it does not; a deployment of new training code changes the key and retrains."""
    import hashlib

    basis = {
        "table": data.table,
        "table_version": data.table_version,
        "symbols": sorted(symbols),
        "settings": asdict(settings),
        "families": families,
        "feature_spec": spec_hash(),
        "code": _code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _code_fingerprint() -> str:
    """sha256 of the sources of lakehouse.ml's modules, read through their loaders (a zip on Glue, files here)."""
    import hashlib
    import importlib.util
    import pkgutil

    import lakehouse.ml

    digest = hashlib.sha256()
    for module in sorted(m.name for m in pkgutil.iter_modules(lakehouse.ml.__path__, "lakehouse.ml.")):
        spec = importlib.util.find_spec(module)
        loader = spec.loader if spec else None
        source = loader.get_source(module) if loader is not None and hasattr(loader, "get_source") else None
        digest.update(f"{module}\n{source or ''}".encode())
    return digest.hexdigest()


def hardware() -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        ram = float("nan")
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {
        "cpu_count": cpus,
        "ram_gib": round(ram, 1),
        "gpu": gpu,
        "hardware": f"{cpus} CPU, {ram:.0f} GiB RAM, GPU {gpu}",
    }


def artifact_files(result: ModelResult) -> dict[str, bytes]:
    """The native artifact (model.joblib, model.pt, …), model.onnx, io.json (how to call the ONNX graph)."""
    family, model = result.family, result.model
    native = family.dump(model)
    onnx_bytes, io_spec = family.to_onnx(model)
    io_spec.update(task=family.task, algorithm=family.algorithm, kind=family.kind)
    return {family.native_file: native, "model.onnx": onnx_bytes, "io.json": json.dumps(io_spec, indent=1).encode()}


def registry_row(
    result: ModelResult,
    data: TrainingData,
    settings: TrainSettings,
    model_version: str,
    run_id: str | None,
    artifact_uri: str,
    rows: int,
    hw: dict[str, Any],
    now: datetime,
    trained_on: str | None = None,
) -> dict[str, Any]:
    """`trained_on` is the run's `training_key`."""
    key, value, base, beats = result.key
    family = result.family
    return {
        "model_id": f"{model_version}:{family.name}",
        "model_version": model_version,
        "run_id": run_id,
        "task": family.task,
        "algorithm": family.algorithm,
        "interval": data.interval,
        "calendar": data.calendar.name,
        "bars_per_year": data.calendar.bars_per_year,
        "horizon_bars": 1,
        "params": family.params(result.model),
        "features": list(family.features),
        "key_metric": key,
        "key_value": value,
        "baseline_value": base,
        "beats_baseline": beats,
        "metrics": result.holdout.metrics,
        "baselines": result.holdout.baselines,
        "metrics_mean": result.mean("metrics"),
        "baselines_mean": result.mean("baselines"),
        "fold_metrics": json.dumps([asdict(f) for f in result.folds], default=str),
        "n_folds": settings.folds,
        "gap_bars": settings.gap,
        "test_bars": settings.test_bars,
        "feature_spec_hash": spec_hash(),
        "training_table": data.table,
        "training_table_version": data.table_version,
        "training_rows": rows,
        "training_key": trained_on,
        "artifact_uri": artifact_uri,
        "promoted": False,
        "train_seconds": result.seconds,
        **hw,
        "trained_at": now,
    }


def leaderboard(rows: list[dict[str, Any]]) -> str:
    """Each model's holdout key metric beside its baseline, plus accuracy, Sharpe and (return models, dates with
    ≥ 10 symbols) the mean daily rank IC and its t-stat beside the baseline's 0."""

    def number(value: float | None, width: int, digits: int) -> str:
        return f"{'–':>{width}}" if value is None or math.isnan(value) else f"{value:>{width}.{digits}f}"

    lines = [
        f"  {'model':<28} {'holdout metric':<16} {'model':>9} {'baseline':>9}  {'beats':<5} "
        f"{'dir.acc':>7} {'vs':>6}  {'sharpe':>6} {'B&H':>6}  {'rank IC':>7} {'t':>5} {'vs':>4}"
    ]
    for r in sorted(rows, key=lambda r: (r["task"], r["key_value"])):
        m, b = r["metrics"], r["baselines"]
        acc_key = "accuracy" if r["task"] == "direction" else "directional_accuracy"
        base_acc = b["accuracy"] if r["task"] == "direction" else b.get("directional_accuracy", float("nan"))
        lines.append(
            f"  {r['task'] + '_' + r['algorithm']:<28} {r['key_metric'] + ' (lower=better)':<16} "
            f"{r['key_value']:>9.5f} {r['baseline_value']:>9.5f}  {'yes' if r['beats_baseline'] else 'no':<5} "
            f"{m[acc_key]:>7.3f} {base_acc:>6.3f}  {m['bt_sharpe']:>6.2f} {b['bt_sharpe']:>6.2f}  "
            f"{number(m.get('rank_ic'), 7, 4)} {number(m.get('rank_ic_t'), 5, 1)} {number(b.get('rank_ic'), 4, 0)}"
        )
    ic_days = [r["metrics"].get("rank_ic_days") for r in rows if r["task"] == "return"]
    if ic_days and not any(ic_days):
        lines.append("  rank IC: – (no holdout date has ≥ 10 symbols to rank)")
    return "\n".join(lines)
