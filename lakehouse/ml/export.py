"""What export publishes and how it checks it: the best model per task as a versioned, verified artifact set.

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

The job body, which runs these steps against the lake, is `lakehouse/jobs/export_models.py`. A
published model is loaded, run and scored through its `ModelFamily` (found by io.json's `kind`),
never by asking which family it is.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from lakecontract.artifacts import (  # the API builds its inputs with the same functions
    CHART_COLUMNS,
    CHART_ROWS,
    LATEST,
    MANIFEST,
    MODELS_DIR,
    SIGNAL_THRESHOLDS,
    SNAPSHOT_ROWS,
    chart_file,
    output_column,
    sha256,
    signal,
    snapshot_inputs,
)
from lakecontract.constants import DIRECTION, RETURN
from lakecontract.feature_spec import FEATURE_NAMES, LABELS, spec_hash
from lakecontract.objectstore import ObjectStore
from lakehouse.job_summary import JobFailed
from lakehouse.ml import catalogue
from lakehouse.ml.dataset import LSTM_FEATURES, MODEL_FEATURES
from lakehouse.ml.evaluate import KEY_METRIC
from lakehouse.ml.family import ModelFamily

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


def _columnar(frame: pd.DataFrame, columns: list[str], rows: int) -> dict[str, dict[str, list[Any]]]:
    """symbol → its newest `rows` rows, oldest first: timestamps and rows of numbers (null where not finite)."""
    symbols = {}
    for symbol, group in frame.sort_values("ts").groupby("symbol", sort=True):
        tail = group.tail(rows)
        values = tail[columns].to_numpy(np.float64)
        symbols[symbol] = {
            "ts": [t.isoformat() for t in tail["ts"]],
            "values": [[None if not math.isfinite(v) else float(v) for v in row] for row in values],
        }
    return symbols


def snapshot(frame: pd.DataFrame, rows: int = SNAPSHOT_ROWS, features: tuple[str, ...] = ()) -> dict[str, Any]:
    """The newest `rows` rows per symbol, columnar, JSON-ready (numbers or null): prices, the pooled
    and LSTM features, and any other column a published model reads (`features`)."""
    names = dict.fromkeys([*MODEL_FEATURES, *LSTM_FEATURES, *features])
    columns = ["open", "high", "low", "close", "volume", *names]
    return {"columns": columns, "symbols": _columnar(frame, columns, rows)}


def chart_files(
    frame: pd.DataFrame, interval: str, calls: pd.DataFrame | None = None, rows: int = CHART_ROWS
) -> dict[str, bytes]:
    """chart/<symbol>.json per symbol: its newest `rows` bars with the gold overlays (CHART_COLUMNS),
    what the dashboard draws, and `calls`: the published models' scores of those bars that export
    scored (gold/predictions: the holdout block) beside what happened, so a reader sees how often the
    call was right. Separate from features.json, which holds model inputs only (no price levels)
    and 60 rows: a chart long enough to read needs 250."""
    columns = list(CHART_COLUMNS)
    frame = frame.assign(ts=_utc(frame["ts"]))
    docs = {}
    for symbol, body in _columnar(frame, columns, rows).items():
        doc = {"symbol": symbol, "interval": interval, "columns": columns, **body, "calls": _calls(calls, symbol, body)}
        docs[chart_file(symbol)] = json.dumps(doc).encode()
    return docs


def _utc(ts: pd.Series) -> pd.Series:
    ts = pd.to_datetime(ts)
    return ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")


def _calls(calls: pd.DataFrame | None, symbol: str, body: dict[str, Any]) -> dict[str, list[Any]]:
    """The scored bars among the chart's: ts, the direction model's prob_up, the served signal, and
    whether the next bar closed up (null for the newest bar: not known yet)."""
    empty: dict[str, list[Any]] = {"ts": [], "prob_up": [], "signal": [], "actual_up": []}
    if calls is None or not body["ts"]:
        return empty
    mine = calls[calls["symbol"] == symbol].assign(ts=lambda f: _utc(f["ts"])).sort_values("ts")
    mine = mine[mine["ts"] >= pd.Timestamp(body["ts"][0])]
    return {
        "ts": [t.isoformat() for t in mine["ts"]],
        "prob_up": [None if pd.isna(v) else float(v) for v in mine["prob_up"]],
        "signal": [str(v) for v in mine["signal"]],
        "actual_up": [None if pd.isna(v) else int(v) for v in mine["actual_up"]],
    }


@dataclass(frozen=True)
class PublishedModel:
    """A model about to be published: its family, its io.json, and its native model once loaded."""

    family: ModelFamily
    io_spec: dict[str, Any]
    model: Any = None


def family_of(task: str, io_bytes: bytes) -> PublishedModel:
    """The family of an artifact, from its io.json (an unknown kind is an ExportFailed)."""
    io_spec = json.loads(io_bytes)
    try:
        return PublishedModel(catalogue.for_artifact(io_spec), io_spec)
    except ValueError as exc:
        raise ExportFailed(f"{task}: {exc}; latest not switched") from None


def model_doc(task: str, row: dict[str, Any], published: PublishedModel) -> dict[str, Any]:
    """The manifest's entry of one task: the chosen registry row, its verdict against the baseline, its files."""
    promoted = beats_baseline(row)
    verdict = "beats" if promoted else "does not beat"
    reason = (
        f"{row['algorithm']} holdout {row['key_metric']} {row['key_value']:.5f} {verdict} "
        f"baseline {row['baseline_value']:.5f}"
    )
    holdout_fold = json.loads(row["fold_metrics"])[-1]
    native = published.family.native_file
    return {
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
        "files": {"onnx": f"{task}/model.onnx", "native": f"{task}/{native}", "io": f"{task}/io.json"},
        "input": published.io_spec,
    }


def manifest_of(
    model_version: str,
    models_doc: dict[str, Any],
    chosen: dict[str, dict[str, Any]],
    files: dict[str, bytes],
    snap: dict[str, Any],
    run_id: str | None,
    now: datetime,
) -> dict[str, Any]:
    """manifest.json: spec, models, baselines, lineage and the sha256 of every file in `files`."""
    direction_row = chosen[DIRECTION]
    return {
        "version": model_version,
        "created_at": now.isoformat(),
        "interval": snap["interval"],
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
            "snapshot_table_version": snap["table_version"],
            "model_version": model_version,
            "run_id": run_id,
            "trained_run_id": direction_row["run_id"],
        },
        "files": {name: {"sha256": sha256(data), "bytes": len(data)} for name, data in sorted(files.items())},
    }


def run_onnx(onnx_bytes: bytes, io_spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    out = session.run([io_spec["output"]], {io_spec["input"]: x.astype(np.float32)})[0]
    return output_column(out, io_spec)


def run_native(family: ModelFamily, model: Any, x: np.ndarray) -> np.ndarray:
    """The native model's predictions on the ONNX graph's inputs (what the graph must reproduce)."""
    return family.predict(model, x)


def verify_models(
    models: dict[str, PublishedModel],
    files: dict[str, bytes],
    snap: dict[str, Any],
    log: Callable[[str], None] = print,
) -> dict[str, PublishedModel]:
    """task → its model with the native model loaded, once its ONNX graph reproduces it on the snapshot rows.

    Runs on the bytes about to be written, before anything is written: a failed re-export of the
    published version must leave that version's files (and so the manifest `latest` names) alone."""
    loaded: dict[str, PublishedModel] = {}
    for task, published in models.items():
        family, io_spec = published.family, published.io_spec
        symbols, x = snapshot_inputs(snap, io_spec)
        try:
            model = family.load(files[f"{task}/{family.native_file}"])
            native = run_native(family, model, x)
            onnx = run_onnx(files[f"{task}/model.onnx"], io_spec, x)
        except Exception as exc:  # a corrupt or incompatible artifact: refuse to publish it
            raise ExportFailed(f"{task}: cannot run the exported model: {exc}; latest not switched") from exc
        worst = float(np.max(np.abs(native - onnx))) if len(x) else 0.0
        if not worst <= ONNX_TOLERANCE:
            raise ExportFailed(f"{task}: ONNX differs from the native model by {worst:.2e} > {ONNX_TOLERANCE}")
        log(f"[export] {task}: ONNX matches native on {len(symbols)} latest row(s) (max |Δ| {worst:.1e})")
        loaded[task] = replace(published, model=model)
    return loaded


def latest_version(root: str, *, s3_endpoint: str | None = None) -> str | None:
    """The published version the `latest` pointer names, or None; `s3_endpoint` is the job's endpoint."""
    store = ObjectStore(root, MODELS_DIR, endpoint=s3_endpoint)
    return json.loads(store.read(LATEST))["version"] if store.exists(LATEST) else None


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


def prediction_records(
    frame: pd.DataFrame, manifest: dict[str, Any], models: dict[str, PublishedModel], now: datetime, columns: list[str]
) -> list[tuple[Any, ...]]:
    """gold/predictions rows (in `columns` order, plain Python values) of the holdout block and each
    symbol's newest bar, scored by the published models; the signal follows what serving serves."""
    docs = manifest["models"]
    holdout_start = pd.Timestamp(docs[DIRECTION]["holdout_block"]["test_start"], tz="UTC")
    rows = scored_rows(frame, holdout_start)
    preds = {task: m.family.predict_rows(m.model, frame, rows) for task, m in models.items()}
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
    return [tuple(_python(v) for v in row) for row in out[columns].astype(object).itertuples(index=False)]


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
