"""Train and export on a real (small, synthetic) lake: registry, artifacts, ONNX parity, leakage."""

import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from delta.tables import DeltaTable
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.ml import dataset
from lakehouse.ml.evaluate import evaluate, lstm_spec
from lakehouse.ml.export import ExportFailed, latest_version, run_export
from lakehouse.ml.models import SKLEARN_MODELS
from lakehouse.ml.splits import walk_forward
from lakehouse.ml.train import run_train
from lakehouse.tables import GOLD_MODEL_REGISTRY, GOLD_PREDICTIONS
from tests.ml_lake import QUIET, SMALL, T0

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(published_lake):
    return published_lake.cfg, published_lake.version, published_lake.export


def _manifest(root: str, version: str) -> tuple[Path, dict]:
    folder = Path(root) / "gold" / "models" / version
    return folder, json.loads((folder / "manifest.json").read_text())


def test_registry_holds_every_algorithm_with_baselines_and_lineage(spark, trained):
    cfg, version, _ = trained
    rows = delta_io.read(spark, GOLD_MODEL_REGISTRY, cfg.resolved_root).where(F.col("model_version") == version)
    rows = [r.asDict(recursive=True) for r in rows.collect()]
    assert {(r["task"], r["algorithm"]) for r in rows} == {
        *((s.task, s.algorithm) for s in SKLEARN_MODELS),
        ("return", "lstm"),
    }
    for r in rows:
        assert r["key_metric"] in r["metrics"] and r["key_metric"] in r["baselines"]
        assert r["baseline_value"] == r["baselines"][r["key_metric"]]
        assert {"bt_sharpe", "bt_max_drawdown", "bt_cagr", "bt_turnover_per_year"} <= set(r["metrics"])
        assert len(json.loads(r["fold_metrics"])) == SMALL.folds == r["n_folds"]
        assert r["training_table"] == "gold/features_1d" and r["training_table_version"] is not None
        assert r["train_seconds"] > 0 and r["cpu_count"] >= 1 and r["gpu"]
        assert Path(r["artifact_uri"], "model.onnx").is_file()
    direction = [r for r in rows if r["task"] == "direction"]
    assert all(
        {"accuracy", "accuracy_ci_low", "roc_auc", "brier", "log_loss", "brier_skill"} <= set(r["metrics"])
        for r in direction
    )
    assert all(r["baselines"]["brier_skill"] == 0.0 and 0 < r["baselines"]["base_rate"] < 1 for r in direction)
    returns = [r for r in rows if r["task"] == "return"]
    assert all(
        {"mae", "rmse", "mape", "mase", "r2_return", "directional_accuracy"} <= set(r["metrics"]) for r in returns
    )
    promoted = {r["task"] for r in rows if r["promoted"]}
    assert promoted == {t for t, doc in _manifest(cfg.resolved_root, version)[1]["models"].items() if doc["promoted"]}


def test_latest_names_a_version_whose_checksums_verify(trained):
    cfg, version, _ = trained
    assert latest_version(cfg.resolved_root) == version
    pointer = json.loads((Path(cfg.resolved_root) / "gold" / "models" / "latest").read_text())
    folder, manifest = _manifest(cfg.resolved_root, version)
    assert pointer["manifest_sha256"] == hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    assert {"direction/model.onnx", "return/model.onnx", "features.json"} <= set(manifest["files"])
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == meta["sha256"], name
    assert manifest["lineage"]["training_table"] == "gold/features_1d"
    assert manifest["feature_spec_hash"] and manifest["baselines"]["return"]["kind"] == "persistence"


def _inputs(features: dict, io_spec: dict) -> np.ndarray:
    index = {c: i for i, c in enumerate(features["columns"])}
    cols = [index[f] for f in io_spec["features"]]
    rows = []
    for body in features["symbols"].values():
        values = np.asarray(body["values"], dtype=np.float64)[:, cols]
        rows.append(values[-io_spec["window"] :] if io_spec["window"] else values[-1])
    return np.asarray(rows, dtype=np.float32)


@pytest.mark.parametrize("task", ["direction", "return"])
def test_onnx_with_onnxruntime_alone_reproduces_the_native_model(trained, task):
    import joblib
    import onnxruntime as ort

    from lakehouse.ml.lstm import load_state

    cfg, version, _ = trained
    folder, manifest = _manifest(cfg.resolved_root, version)
    doc = manifest["models"][task]
    io_spec = doc["input"]
    x = _inputs(json.loads((folder / "features.json").read_text()), io_spec)
    assert len(x) == 3
    session = ort.InferenceSession(str(folder / doc["files"]["onnx"]), providers=["CPUExecutionProvider"])
    out = session.run([io_spec["output"]], {io_spec["input"]: x})[0]
    got = out[:, io_spec["column"]] if io_spec["column"] is not None else out.reshape(-1)
    native_path = folder / doc["files"]["native"]
    if native_path.suffix == ".pt":
        expected = load_state(native_path.read_bytes()).predict(x)
    else:
        model = joblib.load(io.BytesIO(native_path.read_bytes()))
        expected = model.predict_proba(x)[:, 1] if task == "direction" else model.predict(x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_lstm_onnx_matches_native_for_any_batch_size(trained):
    import onnxruntime as ort

    from lakehouse.ml.lstm import load_state

    cfg, version, _ = trained
    rows = [r for r in delta_io.read(spark_session(), GOLD_MODEL_REGISTRY, cfg.resolved_root).collect()]
    lstm = next(r for r in rows if r.model_version == version and r.algorithm == "lstm")
    native = load_state(Path(lstm.artifact_uri, "model.pt").read_bytes())
    session = ort.InferenceSession(str(Path(lstm.artifact_uri, "model.onnx")), providers=["CPUExecutionProvider"])
    for n in (1, 7, 64):
        x = np.random.default_rng(n).normal(size=(n, 10, len(native.settings.features))).astype(np.float32)
        np.testing.assert_allclose(session.run(None, {"x": x})[0].reshape(-1), native.predict(x), atol=1e-5)


def spark_session():
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def test_predictions_cover_the_holdout_block_and_the_latest_bar(spark, trained):
    cfg, version, _ = trained
    preds = delta_io.read(spark, GOLD_PREDICTIONS, cfg.resolved_root).where(F.col("model_version") == version)
    assert preds.groupBy("symbol", "ts").count().where("count > 1").count() == 0
    per_symbol = {r.symbol: r.n for r in preds.groupBy("symbol").agg(F.count("*").alias("n")).collect()}
    assert len(per_symbol) == 3 and all(n == SMALL.test_bars + 1 for n in per_symbol.values())  # holdout + newest
    latest = preds.where(F.col("actual_return").isNull())
    assert latest.count() == 3 and latest.where(F.col("prob_up").isNull()).count() == 0
    assert {r.signal for r in preds.select("signal").distinct().collect()} <= {"buy", "hold", "sell"}


def test_training_sees_nothing_after_its_fold(spark, trained):
    """Scrambling every label after fold 1's training end leaves fold 1's model and predictions unchanged."""
    cfg, _, _ = trained
    labeled = dataset.load(spark, cfg.resolved_root, "1d").labeled
    fold = walk_forward(labeled["ts"], SMALL.folds, SMALL.test_bars, SMALL.gap)[0]
    scrambled = labeled.copy()
    after = scrambled["ts"] > fold.train_end
    rng = np.random.default_rng(0)
    scrambled.loc[after, "label_ret_1"] = rng.normal(0, 0.5, after.sum())
    scrambled.loc[after, "label_up"] = rng.integers(0, 2, after.sum()).astype(float)
    assert not scrambled["label_ret_1"].equals(labeled["label_ret_1"])
    for spec in (SKLEARN_MODELS[0], SKLEARN_MODELS[4], lstm_spec()):
        a = evaluate(spec, labeled, [fold], "1d", 7, SMALL.lstm, SMALL.gap, log=lambda *_: None)
        b = evaluate(spec, scrambled, [fold], "1d", 7, SMALL.lstm, SMALL.gap, log=lambda *_: None)
        # Equal up to summation order (forests average their trees on 2 threads); a leak moves far more.
        np.testing.assert_allclose(a.holdout_rows["pred"], b.holdout_rows["pred"], rtol=1e-12, atol=0)


def test_a_model_worse_than_its_baseline_is_not_promoted(spark, trained):
    cfg, version, _ = trained
    root = cfg.resolved_root
    DeltaTable.forPath(spark, GOLD_MODEL_REGISTRY.path(root)).update(
        F.col("model_version") == version, {"key_value": F.col("baseline_value") * 1.01}
    )
    run_export(spark, cfg, run_id="r2", now=T0, **QUIET)
    _, manifest = _manifest(root, version)
    assert all(not doc["promoted"] and doc["serve"] == "baseline" for doc in manifest["models"].values())
    assert "does not beat" in manifest["models"]["direction"]["reason"]
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root).where(F.col("model_version") == version)
    assert registry.where("promoted").count() == 0
    preds = delta_io.read(spark, GOLD_PREDICTIONS, root).where(F.col("model_version") == version).toPandas()
    base = manifest["baselines"]["direction"]["prob_up"]
    assert (preds["baseline_prob_up"] == base).all() and not preds["direction_promoted"].any()


def test_a_failed_verification_leaves_latest_unchanged(spark, trained, tmp_path):
    cfg, version, _ = trained
    root = cfg.resolved_root
    before = (Path(root) / "gold" / "models" / "latest").read_bytes()
    # A second training run whose chosen direction model's ONNX file is corrupted after training.
    later = datetime(2025, 2, 1, tzinfo=UTC)
    second = run_train(spark, cfg, SMALL, run_id="r3", now=later, **QUIET).details["model_version"]
    for onnx in (Path(root) / "gold" / "model_artifacts" / second).glob("*/model.onnx"):
        onnx.write_bytes(onnx.read_bytes()[:-64])
    with pytest.raises(ExportFailed):
        run_export(spark, cfg, model_version=second, run_id="r3", now=later, **QUIET)
    assert (Path(root) / "gold" / "models" / "latest").read_bytes() == before
    assert latest_version(root) == version != second
    assert isinstance(pd.Timestamp(json.loads(before)["published_at"]), pd.Timestamp)
