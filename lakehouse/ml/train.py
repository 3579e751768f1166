"""The training job body: gold/features_<interval> → models, metrics beside baselines, registry rows.

Every model family is evaluated walk-forward on the same folds (pooled across symbols). The
model kept for each family is the one fitted on the holdout fold's training rows, so the
numbers in the registry are the numbers of the artifact that may be exported — no refit on
data the holdout metrics did not cover. Artifacts (native + ONNX) go under
`gold/model_artifacts/<model_version>/<task>_<algorithm>/`, plots under
`reports/training/<model_version>/`.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from lakecontract.objectstore import ObjectStore
from lakehouse.config import LakeConfig
from lakehouse.feature_spec import spec_hash
from lakehouse.job_summary import JobFailed, JobSummary
from lakehouse.ml.dataset import MODEL_FEATURES, TrainingData
from lakehouse.ml.evaluate import ModelResult, evaluate, lstm_spec
from lakehouse.ml.lstm import FittedLSTM, LSTMSettings
from lakehouse.ml.models import SKLEARN_MODELS, params_of, to_onnx_bytes
from lakehouse.ml.splits import walk_forward

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
    """model.joblib or model.pt (native), model.onnx, io.json (how to call the ONNX graph)."""
    if isinstance(result.model, FittedLSTM):
        onnx_bytes, io_spec = result.model.onnx()
        native = {"model.pt": result.model.state()}
        io_spec["features"] = list(result.model.settings.features)
        io_spec["window"] = result.model.settings.window
    else:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(result.model, buffer)
        native = {"model.joblib": buffer.getvalue()}
        onnx_bytes, io_spec = to_onnx_bytes(result.model, result.spec.task, len(MODEL_FEATURES))
        io_spec["features"] = list(MODEL_FEATURES)
        io_spec["window"] = None
    io_spec.update(task=result.spec.task, algorithm=result.spec.algorithm, kind=result.spec.kind)
    return {**native, "model.onnx": onnx_bytes, "io.json": json.dumps(io_spec, indent=1).encode()}


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
) -> dict[str, Any]:
    key, value, base, beats = result.key
    params = (
        params_of(result.model)
        if result.spec.kind == "sklearn"
        else {k: repr(v) for k, v in asdict(settings.lstm).items()}
    )
    features = list(settings.lstm.features) if result.spec.kind == "lstm" else list(MODEL_FEATURES)
    return {
        "model_id": f"{model_version}:{result.spec.name}",
        "model_version": model_version,
        "run_id": run_id,
        "task": result.spec.task,
        "algorithm": result.spec.algorithm,
        "interval": data.interval,
        "horizon_bars": 1,
        "params": params,
        "features": features,
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
        "artifact_uri": artifact_uri,
        "promoted": False,
        "train_seconds": result.seconds,
        **hw,
        "trained_at": now,
    }


def leaderboard(rows: list[dict[str, Any]]) -> str:
    """Each model's holdout key metric beside its baseline, plus accuracy and Sharpe."""
    lines = [
        f"  {'model':<28} {'holdout metric':<16} {'model':>9} {'baseline':>9}  {'beats':<5} "
        f"{'dir.acc':>7} {'vs':>6}  {'sharpe':>6} {'B&H':>6}"
    ]
    for r in sorted(rows, key=lambda r: (r["task"], r["key_value"])):
        m, b = r["metrics"], r["baselines"]
        acc_key = "accuracy" if r["task"] == "direction" else "directional_accuracy"
        base_acc = b["accuracy"] if r["task"] == "direction" else b.get("directional_accuracy", float("nan"))
        lines.append(
            f"  {r['task'] + '_' + r['algorithm']:<28} {r['key_metric'] + ' (lower=better)':<16} "
            f"{r['key_value']:>9.5f} {r['baseline_value']:>9.5f}  {'yes' if r['beats_baseline'] else 'no':<5} "
            f"{m[acc_key]:>7.3f} {base_acc:>6.3f}  {m['bt_sharpe']:>6.2f} {b['bt_sharpe']:>6.2f}"
        )
    return "\n".join(lines)


def run_train(
    spark,  # noqa: ANN001
    cfg: LakeConfig,
    settings: TrainSettings,
    *,
    run_id: str | None = None,
    now: datetime | None = None,
    log=print,
) -> JobSummary:
    from lakehouse import delta_io
    from lakehouse.ml import dataset, plots
    from lakehouse.tables import GOLD_MODEL_REGISTRY

    now = now or datetime.now(UTC)
    model_version = f"{now:%Y%m%dT%H%M%S}Z"
    root = cfg.resolved_root
    summary = JobSummary("train_models", details={"model_version": model_version})
    started = time.monotonic()
    try:
        data = dataset.load(spark, root, settings.interval, cfg.symbols)
    except FileNotFoundError as exc:
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
        raise TrainingFailed(f"{data.table}: {exc}") from None
    for fold in folds:
        log(f"[train] {fold.describe()}")
    specs = [*SKLEARN_MODELS, lstm_spec()]
    if settings.models:
        unknown = set(settings.models) - {s.name for s in specs}
        if unknown:
            raise TrainingFailed(f"unknown model(s) {sorted(unknown)}; known: {', '.join(s.name for s in specs)}")
        specs = [s for s in specs if s.name in settings.models]
    results = []
    for spec in specs:
        result = evaluate(spec, labeled, folds, data.interval, settings.seed, settings.lstm, settings.gap, log=log)
        log(f"[train] {spec.name}: {len(folds)} fold(s) in {result.seconds:.1f}s")
        results.append(result)

    hw = hardware()
    # cfg.s3_endpoint is the endpoint Spark writes the registry to: artifacts must go to the same store.
    artifacts = ObjectStore(root, f"{ARTIFACTS_DIR}/{model_version}", endpoint=cfg.s3_endpoint)
    rows = []
    for result in results:
        for name, payload in artifact_files(result).items():
            artifacts.write_bytes(f"{result.spec.name}/{name}", payload)
        rows.append(
            registry_row(
                result, data, settings, model_version, run_id, artifacts.uri(result.spec.name), len(labeled), hw, now
            )
        )
    reports = ObjectStore(root, f"{TRAINING_REPORTS_DIR}/{model_version}", endpoint=cfg.s3_endpoint)
    for name, png in plots.render(results).items():
        reports.write_bytes(name, png, "image/png")
    written = delta_io.append(spark, spark.createDataFrame(rows, GOLD_MODEL_REGISTRY.schema), GOLD_MODEL_REGISTRY, root)
    log(f"[train] leaderboard (holdout fold {folds[-1].test_start:%Y-%m-%d}…{folds[-1].test_end:%Y-%m-%d}):")
    log(leaderboard(rows))
    log(f"[train] plots: {reports.uri()}")
    summary.rows_read = len(data.frame)
    summary.rows_written = written.rows_inserted
    summary.versions = {data.table: data.table_version, GOLD_MODEL_REGISTRY.name: written.version}
    summary.details.update(models=len(rows), seconds=round(time.monotonic() - started, 1))
    print(summary.line(), file=sys.stdout)
    return summary
