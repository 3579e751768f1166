"""The export job body: publish the best model per task as a versioned, verified artifact set.

    gold/models/<version>/direction/{model.onnx, model.joblib|model.pt, io.json}
    gold/models/<version>/return/{…}
    gold/models/<version>/features.json   the newest rows per symbol (what serving predicts from)
    gold/models/<version>/registry.json   every registry row of the version (all candidates, metrics)
    gold/models/<version>/manifest.json   spec, input schema, metrics, baselines, lineage, sha256 of every file
    gold/models/latest                    {"version": …, "manifest_sha256": …} — switched last, atomically

Order matters: each ONNX graph is run against its native model on the exported rows (≤ 1e-5)
before anything is written — re-exporting the published version must not overwrite the files
`latest` vouches for with ones that then fail — and every file is then written, read back and
checked against its sha256 before `latest` moves. A failure anywhere leaves `latest` naming the
previous version.

Promotion: the best model of a task (by its holdout key metric) is promoted only if it beats
its baseline on that metric; otherwise the manifest says so and serving answers with the
baseline (base rate for direction, persistence for the close).
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from lakecontract.artifacts import (  # the API builds its inputs with the same functions
    FEATURES,
    LATEST,
    MANIFEST,
    MODELS_DIR,
    REGISTRY,
    SIGNAL_THRESHOLDS,
    SNAPSHOT_ROWS,
    output_column,
    sha256,
    signal,
    snapshot_inputs,
)
from lakecontract.constants import DIRECTION, RETURN, TASKS
from lakecontract.objectstore import ObjectStore
from lakehouse.config import LakeConfig
from lakehouse.feature_spec import FEATURE_NAMES, LABELS, spec_hash
from lakehouse.job_summary import JobFailed, JobSummary
from lakehouse.ml.dataset import LSTM_FEATURES, MODEL_FEATURES, TrainingData
from lakehouse.ml.evaluate import KEY_METRIC

ONNX_TOLERANCE = 1e-5


class ExportFailed(JobFailed):
    """The new version could not be verified; `latest` was not switched."""


def _better(task: str, a: float, b: float) -> bool:
    return a < b if KEY_METRIC[task][1] == "lower" else a > b


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def beats_baseline(row: dict[str, Any]) -> bool:
    """Decided here from the two numbers, not read from the registry's flag."""
    v, b = row["key_value"], row["baseline_value"]
    return _finite(v) and _finite(b) and _better(row["task"], v, b)


def choose(candidates: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """task → the registry row with the best holdout key metric."""
    best: dict[str, dict[str, Any]] = {}
    for row in candidates:
        if not _finite(row["key_value"]):
            continue
        task = row["task"]
        if task not in best or _better(task, row["key_value"], best[task]["key_value"]):
            best[task] = row
    return best


def snapshot(frame: pd.DataFrame, rows: int = SNAPSHOT_ROWS) -> dict[str, Any]:
    """The newest `rows` rows per symbol, columnar, JSON-ready (numbers or null)."""
    columns = ["open", "high", "low", "close", "volume", *dict.fromkeys([*MODEL_FEATURES, *LSTM_FEATURES])]
    symbols = {}
    for symbol, group in frame.sort_values("ts").groupby("symbol", sort=True):
        tail = group.tail(rows)
        values = tail[columns].to_numpy(np.float64)
        symbols[symbol] = {
            "ts": [t.isoformat() for t in tail["ts"]],
            "values": [[None if not math.isfinite(v) else float(v) for v in row] for row in values],
        }
    return {"columns": columns, "symbols": symbols}


def run_onnx(onnx_bytes: bytes, io_spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    out = session.run([io_spec["output"]], {io_spec["input"]: x.astype(np.float32)})[0]
    return output_column(out, io_spec)


def load_native(files: dict[str, bytes]) -> Any:
    if "model.pt" in files:
        from lakehouse.ml.lstm import load_state

        return load_state(files["model.pt"])
    import joblib

    return joblib.load(io.BytesIO(files["model.joblib"]))


def run_native(model: Any, task: str, x: np.ndarray) -> np.ndarray:
    from lakehouse.ml.lstm import FittedLSTM
    from lakehouse.ml.models import predict

    if isinstance(model, FittedLSTM):
        return model.predict(x)
    return predict(model, task, x)


def verify_models(
    models_doc: dict[str, Any], files: dict[str, bytes], snap: dict[str, Any], log=print
) -> dict[str, Any]:
    """task → its loaded native model, once its ONNX graph reproduces it on the snapshot rows.

    Runs on the bytes about to be written, before anything is written: a failed re-export of the
    published version must leave that version's files (and so the manifest `latest` names) alone."""
    natives: dict[str, Any] = {}
    for task, doc in models_doc.items():
        payload = {n.split("/", 1)[1]: files[n] for n in doc["files"].values()}
        symbols, x = snapshot_inputs(snap, doc["input"])
        try:
            natives[task] = load_native(payload)
            native = run_native(natives[task], task, x)
            onnx = run_onnx(payload["model.onnx"], doc["input"], x)
        except Exception as exc:  # a corrupt or incompatible artifact: refuse to publish it
            raise ExportFailed(f"{task}: cannot run the exported model: {exc}; latest not switched") from exc
        worst = float(np.max(np.abs(native - onnx))) if len(x) else 0.0
        if not worst <= ONNX_TOLERANCE:
            raise ExportFailed(f"{task}: ONNX differs from the native model by {worst:.2e} > {ONNX_TOLERANCE}")
        log(f"[export] {task}: ONNX matches native on {len(symbols)} latest row(s) (max |Δ| {worst:.1e})")
    return natives


def latest_version(root: str, *, s3_endpoint: str | None = None) -> str | None:
    """The published version the `latest` pointer names, or None; `s3_endpoint` is the job's endpoint."""
    store = ObjectStore(root, MODELS_DIR, endpoint=s3_endpoint)
    return json.loads(store.read(LATEST))["version"] if store.exists(LATEST) else None


def run_export(
    spark,  # noqa: ANN001
    cfg: LakeConfig,
    *,
    model_version: str | None = None,
    run_id: str | None = None,
    now: datetime | None = None,
    log=print,
) -> JobSummary:
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.ml import dataset
    from lakehouse.tables import GOLD_MODEL_REGISTRY

    now = now or datetime.now(UTC)
    root = cfg.resolved_root
    started = time.monotonic()
    if not delta_io.exists(spark, GOLD_MODEL_REGISTRY, root):
        raise ExportFailed(f"{GOLD_MODEL_REGISTRY.path(root)} does not exist: run train_models first")
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root)
    if model_version is None:
        newest = registry.agg(F.max("model_version")).first()[0]
        if newest is None:
            raise ExportFailed("gold/model_registry is empty: run train_models first")
        model_version = newest
    rows = [r.asDict(recursive=True) for r in registry.where(F.col("model_version") == model_version).collect()]
    if not rows:
        raise ExportFailed(f"no model of version {model_version!r} in gold/model_registry")
    chosen = choose(rows)
    missing = [t for t in TASKS if t not in chosen]
    if missing:
        raise ExportFailed(f"version {model_version} has no usable model for task(s) {missing}")
    interval = rows[0]["interval"]
    try:
        data: TrainingData = dataset.load(spark, root, interval, cfg.symbols)
    except FileNotFoundError as exc:
        raise ExportFailed(str(exc)) from None
    snap = snapshot(data.frame)
    snap.update(interval=interval, table=data.table, table_version=data.table_version)

    endpoint = cfg.s3_endpoint  # the one Spark uses: artifacts and tables live in the same store
    store = ObjectStore(root, f"{MODELS_DIR}/{model_version}", endpoint=endpoint)
    files: dict[str, bytes] = {FEATURES: json.dumps(snap).encode()}
    models_doc: dict[str, Any] = {}
    for task, row in chosen.items():
        source = ObjectStore(row["artifact_uri"], endpoint=endpoint)
        native_name = "model.pt" if row["algorithm"] == "lstm" else "model.joblib"
        for name in ("model.onnx", native_name, "io.json"):
            files[f"{task}/{name}"] = source.read_bytes(name)
        io_spec = json.loads(files[f"{task}/io.json"])
        promoted = beats_baseline(row)
        verdict = "beats" if promoted else "does not beat"
        reason = (
            f"{row['algorithm']} holdout {row['key_metric']} {row['key_value']:.5f} {verdict} "
            f"baseline {row['baseline_value']:.5f}"
        )
        holdout_fold = json.loads(row["fold_metrics"])[-1]
        models_doc[task] = {
            "model_id": row["model_id"],
            "algorithm": row["algorithm"],
            "promoted": promoted,
            "serve": "model" if promoted else "baseline",
            "reason": reason,
            "key_metric": row["key_metric"],
            "holdout": row["metrics"],
            "baseline": row["baselines"],
            "holdout_block": {"test_start": holdout_fold["test_start"], "test_end": holdout_fold["test_end"]},
            "mean_over_folds": row["metrics_mean"],
            "baseline_mean_over_folds": row["baselines_mean"],
            "files": {"onnx": f"{task}/model.onnx", "native": f"{task}/{native_name}", "io": f"{task}/io.json"},
            "input": io_spec,
        }
        log(f"[export] {task}: {reason} → {'PROMOTED' if promoted else 'not promoted; serving uses the baseline'}")

    promoted_ids = {doc["model_id"] for doc in models_doc.values() if doc["promoted"]}
    files[REGISTRY] = json.dumps(
        [{**row, "promoted": row["model_id"] in promoted_ids} for row in rows], default=str, indent=1
    ).encode()
    direction_row = chosen[DIRECTION]
    manifest = {
        "version": model_version,
        "created_at": now.isoformat(),
        "interval": interval,
        "horizon_bars": 1,
        "feature_spec_hash": spec_hash(),
        "feature_spec": {"features": list(FEATURE_NAMES), "labels": LABELS},
        "signal_thresholds": SIGNAL_THRESHOLDS,
        "models": models_doc,
        "baselines": {
            DIRECTION: {"kind": "base_rate", "prob_up": direction_row["baselines"]["base_rate"]},
            RETURN: {"kind": "persistence", "predicted_return": 0.0},
        },
        "lineage": {
            "training_table": direction_row["training_table"],
            "training_table_version": direction_row["training_table_version"],
            "snapshot_table_version": data.table_version,
            "model_version": model_version,
            "run_id": run_id,
            "trained_run_id": direction_row["run_id"],
        },
        "files": {name: {"sha256": sha256(data_), "bytes": len(data_)} for name, data_ in sorted(files.items())},
    }
    natives = verify_models(models_doc, files, snap, log)
    for name, payload in files.items():
        store.write_bytes(name, payload)
    manifest_bytes = json.dumps(manifest, indent=1, default=str).encode()
    store.write_bytes(MANIFEST, manifest_bytes, "application/json")

    # Verify what is in storage, not what is in memory: equal bytes are the graphs checked above.
    for name, meta in manifest["files"].items():
        if sha256(store.read_bytes(name)) != meta["sha256"]:
            raise ExportFailed(f"{store.uri(name)}: sha256 mismatch after writing; latest not switched")

    previous = latest_version(root, s3_endpoint=endpoint)
    pointer = {"version": model_version, "manifest_sha256": sha256(manifest_bytes), "published_at": now.isoformat()}
    ObjectStore(root, MODELS_DIR, endpoint=endpoint).replace(LATEST, json.dumps(pointer))
    log(f"[export] {MODELS_DIR}/{LATEST}: {previous} → {model_version}")

    _mark_promoted(spark, root, model_version, sorted(promoted_ids))
    written = _write_predictions(spark, root, data, manifest, natives, now)
    summary = JobSummary(
        "export_models",
        rows_read=len(data.frame),
        rows_written=written.rows_inserted + written.rows_updated,
        versions={"gold/predictions": written.version},
        details={"model_version": model_version, "promoted": ",".join(sorted(promoted_ids)) or "none"},
    )
    summary.details["seconds"] = round(time.monotonic() - started, 1)
    print(summary.line(), file=sys.stdout)
    return summary


def _mark_promoted(spark, root: str, model_version: str, promoted_ids: list[str]) -> None:  # noqa: ANN001
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from lakehouse.tables import GOLD_MODEL_REGISTRY

    DeltaTable.forPath(spark, GOLD_MODEL_REGISTRY.path(root)).update(
        F.col("model_version") == model_version,
        {"promoted": F.col("model_id").isin(*promoted_ids) if promoted_ids else F.lit(False)},
    )


def _python(value: Any) -> Any:
    """A pandas/numpy cell as the plain Python value Spark's row verifier accepts; NaN → None."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def scored_rows(frame: pd.DataFrame, holdout_start: pd.Timestamp) -> np.ndarray:
    """Positions of the rows export scores: the holdout block, plus every symbol's newest bar even
    when that symbol's history ends before the block (MSFT in the bundled data ends in 2017)."""
    in_block = (frame["ts"] >= holdout_start).to_numpy()
    newest = (frame["ts"] == frame.groupby("symbol")["ts"].transform("max")).to_numpy()
    return np.flatnonzero(in_block | newest)


def _write_predictions(spark, root: str, data: TrainingData, manifest: dict, models: dict, now: datetime):  # noqa: ANN001, ANN202
    """Score the holdout block and each symbol's newest bar with the published models; MERGE on
    (model_version, symbol, ts) so exporting the same version again rewrites, not duplicates."""
    from lakehouse import delta_io
    from lakehouse.ml.evaluate import lstm_spec, predict_rows
    from lakehouse.ml.models import ModelSpec
    from lakehouse.tables import GOLD_PREDICTIONS

    frame = data.frame
    docs = manifest["models"]
    holdout_start = pd.Timestamp(docs[DIRECTION]["holdout_block"]["test_start"], tz="UTC")
    rows = scored_rows(frame, holdout_start)
    preds = {}
    for task, model in models.items():
        algorithm = docs[task]["algorithm"]
        spec = lstm_spec() if algorithm == "lstm" else ModelSpec(algorithm, task, lambda seed: None)
        preds[task] = predict_rows(spec, model, frame, rows)
    base_prob = manifest["baselines"][DIRECTION]["prob_up"]
    out = frame.iloc[rows][["symbol", "ts", "close", "label_up", "label_ret_1"]].copy()
    out["prob_up"] = preds[DIRECTION]
    out["predicted_return"] = preds[RETURN]
    out["predicted_close"] = out["close"] * (1 + out["predicted_return"])
    served = out["prob_up"] if docs[DIRECTION]["promoted"] else pd.Series(base_prob, index=out.index)
    out["signal"] = served.map(signal)
    out = out.assign(
        model_version=manifest["version"],
        interval=manifest["interval"],
        direction_model=docs[DIRECTION]["algorithm"],
        return_model=docs[RETURN]["algorithm"],
        direction_promoted=docs[DIRECTION]["promoted"],
        return_promoted=docs[RETURN]["promoted"],
        baseline_prob_up=base_prob,
        actual_up=out["label_up"].astype("Int64"),
        actual_return=out["label_ret_1"],
        scored_at=now,
    )
    columns = [f.name for f in GOLD_PREDICTIONS.schema.fields]
    records = [tuple(_python(v) for v in row) for row in out[columns].astype(object).itertuples(index=False)]
    df = spark.createDataFrame(records, GOLD_PREDICTIONS.schema)
    return delta_io.merge_upsert(spark, df, GOLD_PREDICTIONS, root)


def describe_latest(root: str, *, s3_endpoint: str | None = None) -> str:
    """What serving answers with now: the published version and, per task, model or baseline."""
    version = latest_version(root, s3_endpoint=s3_endpoint)
    if version is None:
        return f"no published model under {root}/{MODELS_DIR} yet"
    manifest = json.loads(ObjectStore(root, f"{MODELS_DIR}/{version}", endpoint=s3_endpoint).read(MANIFEST))
    lines = [f"published model version {version} ({ObjectStore(root, MODELS_DIR).uri(version)})"]
    for task, doc in manifest["models"].items():
        served = doc["algorithm"] if doc["promoted"] else f"baseline ({manifest['baselines'][task]['kind']})"
        lines.append(f"  {task:<9} serves {served}: {doc['reason']}")
    return "\n".join(lines)
