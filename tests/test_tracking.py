"""MLflow tracking of a training run (lakehouse/ml/tracking.py): what lands in MLflow, and that it stays optional.

No Spark: the registry rows are built by hand in the shape lakehouse.ml.train.registry_row writes them. The
store is a tmp folder, which tracking.py maps to a SQLite database (MLflow 3 refuses a plain file store).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lakehouse.ml import tracking

REPO = Path(__file__).resolve().parents[1]
VERSION = "v20240105T120000"


def _png() -> bytes:
    """A valid 1×1 PNG, built by hand so the test needs no image library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 1×1, 8-bit greyscale
    pixels = zlib.compress(b"\x00\x80")  # one scanline: filter 0, one grey pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _row(task: str, algorithm: str, metrics: dict, baselines: dict, key: str) -> dict:
    folds = [
        {
            "fold": n,
            "train_rows": 1000 + 252 * n,
            "test_rows": 252,
            "train_end": f"202{n}-01-01 00:00",
            "test_start": f"202{n}-01-08 00:00",
            "test_end": f"202{n + 1}-01-01 00:00",
            "metrics": {k: v * (1 + 0.1 * n) for k, v in metrics.items()},
            "baselines": {k: v * (1 - 0.1 * n) for k, v in baselines.items()},
            "extra": {"epochs": 12} if algorithm == "lstm" else {},
        }
        for n in (1, 2)
    ]
    return {
        "model_id": f"{VERSION}:{task}_{algorithm}",
        "model_version": VERSION,
        "run_id": "run-1",
        "task": task,
        "algorithm": algorithm,
        "interval": "1d",
        "horizon_bars": 1,
        "params": {"alpha": "0.5", "features": "x" * 7000},  # longer than MLflow's 6000-character limit
        "features": ["ret_1", "rsi_14"],
        "key_metric": key,
        "key_value": metrics[key],
        "baseline_value": baselines[key],
        "beats_baseline": metrics[key] < baselines[key],
        "metrics": metrics,
        "baselines": baselines,
        "metrics_mean": {k: v * 1.05 for k, v in metrics.items()},
        "baselines_mean": {k: v * 0.95 for k, v in baselines.items()},
        "fold_metrics": json.dumps(folds),
        "n_folds": 2,
        "gap_bars": 5,
        "test_bars": 252,
        "feature_spec_hash": "abc123",
        "training_table": "gold/features_1d",
        "training_table_version": 7,
        "training_rows": 1504,
        "artifact_uri": f"lake/models/{VERSION}/{task}_{algorithm}",
        "promoted": False,
        "train_seconds": 1.5,
        "cpu_count": 2,
        "ram_gib": 8.0,
        "gpu": "none",
        "hardware": "2 CPU, 8 GiB RAM, GPU none",
        "trained_at": datetime(2024, 1, 5, 12, tzinfo=UTC),
    }


ROWS = [
    _row(
        "direction",
        "logistic",
        {"brier": 0.2481, "accuracy": 0.531, "roc_auc": float("nan")},  # NaN is skipped, not logged
        {"brier": 0.2499, "accuracy": 0.52},
        "brier",
    ),
    _row("return", "ridge", {"mase": 0.98, "rmse": 1.7}, {"mase": 1.0, "rmse": 1.8}, "mase"),
]


def _log(monkeypatch, uri: str | None) -> tuple[str | None, list[str]]:
    if uri is None:
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    lines: list[str] = []
    run_id = tracking.log_training(
        ROWS,
        {"equity.png": _png()},
        model_version=VERSION,
        table="gold/features_1d",
        table_version=7,
        settings={"folds": 2, "gap": 5, "symbols": ["MSFT", "AAPL"]},
        log=lines.append,
    )
    return run_id, lines


def test_a_training_run_lands_in_mlflow_as_a_parent_with_one_nested_run_per_model(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    folder = tmp_path / "mlruns"
    run_id, lines = _log(monkeypatch, str(folder))

    uri = f"sqlite:///{folder}/mlflow.db"
    assert tracking.tracking_uri() == uri
    assert run_id and lines == [f"[train] MLflow: run {run_id} in {uri} (2 models)"]
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(run_id)
    assert parent.info.run_name == f"train-{VERSION}" and parent.info.status == "FINISHED"
    assert parent.data.tags["model_version"] == VERSION and parent.data.tags["training_table_version"] == "7"
    assert parent.data.params == {"folds": "2", "gap": "5", "symbols": "['MSFT', 'AAPL']"}
    assert [a.path for a in client.list_artifacts(run_id)] == ["equity.png"]
    assert parent.info.artifact_uri.startswith((folder / "artifacts").as_uri())

    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert sorted(c.info.run_name for c in children) == ["direction_logistic", "return_ridge"]
    for child in children:
        row = next(r for r in ROWS if f"{r['task']}_{r['algorithm']}" == child.info.run_name)
        metrics, tags = child.data.metrics, child.data.tags
        for name, value in row["metrics"].items():
            if math.isnan(value):
                assert name not in metrics
            else:
                assert metrics[name] == pytest.approx(value)
                assert metrics[f"mean_{name}"] == pytest.approx(row["metrics_mean"][name])
        for name, value in row["baselines"].items():
            assert metrics[f"baseline_{name}"] == pytest.approx(value)
            assert metrics[f"mean_baseline_{name}"] == pytest.approx(row["baselines_mean"][name])
        history = client.get_metric_history(child.info.run_id, f"fold_{row['key_metric']}")
        assert sorted(m.step for m in history) == [1, 2]
        assert len(client.get_metric_history(child.info.run_id, f"fold_baseline_{row['key_metric']}")) == 2
        assert child.data.params["alpha"] == "0.5" and len(child.data.params["features"]) == 6000
        assert tags["model_id"] == row["model_id"] and tags["beats_baseline"] == "True"
        assert tags["training_table"] == "gold/features_1d" and tags["artifact_uri"] == row["artifact_uri"]


def test_tracking_is_off_without_the_variable_and_then_mlflow_is_never_imported(monkeypatch):
    assert _log(monkeypatch, None) == (None, [])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    assert tracking.tracking_uri() is None
    code = (
        "import sys; from lakehouse.ml import tracking; "
        "r = tracking.log_training([], {}, model_version='v', table='t', table_version=None, settings={}, log=print); "
        "print(r, 'mlflow' in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "False"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("file:///srv/mlruns", "sqlite:////srv/mlruns/mlflow.db"),
        ("sqlite:///x/mlflow.db", "sqlite:///x/mlflow.db"),
        ("http://mlflow.internal:5000", "http://mlflow.internal:5000"),
        ("databricks", "databricks"),
    ],
)
def test_only_a_local_folder_is_mapped_to_sqlite(monkeypatch, raw, expected):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", raw)
    assert tracking.tracking_uri() == expected


def test_an_unreachable_server_is_reported_and_training_goes_on(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run_id, lines = _log(monkeypatch, "http://127.0.0.1:9")
    assert run_id is None
    assert len(lines) == 1 and lines[0].startswith("[train] MLflow logging failed: ")
