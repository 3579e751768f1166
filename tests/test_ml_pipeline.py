"""Train and export on a real (small, synthetic) lake: registry, artifacts, ONNX parity, leakage, failed exports.

The published lake is read-only here; a test that changes a lake works on its own `copy_lake(...)`.
"""

import hashlib
import io
import json
import math
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from lakecontract.objectstore import ObjectStore
from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.jobs import export_models, train_models
from lakehouse.ml import catalogue, dataset, export, lstm
from lakehouse.ml.dataset import LSTM_FEATURES, MODEL_FEATURES, TrainingData, matrix
from lakehouse.ml.evaluate import evaluate
from lakehouse.ml.export import ExportFailed, latest_version
from lakehouse.ml.family import ModelFamily
from lakehouse.ml.lstm import LSTMFamily
from lakehouse.ml.models import SKLEARN_MODELS, SklearnFamily
from lakehouse.ml.spark_xgb import SparkXGBFamily
from lakehouse.ml.splits import Fold, walk_forward
from lakehouse.tables import GOLD_MODEL_REGISTRY, GOLD_PREDICTIONS
from tests.ml_lake import QUIET, SMALL, T0, PublishedLake, copy_lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained(published_lake):
    return published_lake.cfg, published_lake.version, published_lake.export


def _fingerprint(folder: Path) -> dict[str, str]:
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.fixture(scope="module", autouse=True)
def published_lake_stays_read_only(published_lake):
    """Other modules (named queries, serving) read the published lake after this one: nothing here may change it."""
    root = Path(published_lake.cfg.resolved_root)
    before = _fingerprint(root)
    yield
    assert _fingerprint(root) == before, "a test in this module changed the shared published lake"


def _manifest(root: str, version: str) -> tuple[Path, dict]:
    folder = Path(root) / "gold" / "models" / version
    return folder, json.loads((folder / "manifest.json").read_text())


def test_registry_holds_every_algorithm_with_baselines_and_lineage(spark, trained):
    cfg, version, _ = trained
    rows = delta_io.read(spark, GOLD_MODEL_REGISTRY, cfg.resolved_root).where(F.col("model_version") == version)
    rows = [r.asDict(recursive=True) for r in rows.collect()]
    assert {(r["task"], r["algorithm"]) for r in rows} == {
        *((s.task, s.algorithm) for s in SKLEARN_MODELS if s.name not in catalogue.OPT_IN),
        ("return", "lstm"),
        ("direction", "xgboost_spark"),
        ("return", "xgboost_spark"),
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


@pytest.mark.parametrize("task", ["direction", "return"])
def test_xgboost_spark_onnx_matches_its_booster_on_every_gold_row(spark, trained, task):
    """The trained (not only the published) xgboost.spark artifacts: the booster read back from model.json
    and the ONNX graph agree ≤ 1e-5 on every warm gold row, as export requires of a published model."""
    import onnxruntime as ort
    import xgboost

    cfg, version, _ = trained
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, cfg.resolved_root)
    (row,) = registry.where(
        f"model_version = '{version}' AND algorithm = 'xgboost_spark' AND task = '{task}'"
    ).collect()
    io_spec = json.loads(Path(row.artifact_uri, "io.json").read_text())
    assert io_spec["kind"] == "xgboost" and io_spec["features"] == list(MODEL_FEATURES)
    booster = xgboost.Booster(model_file=str(Path(row.artifact_uri, "model.json")))
    assert booster.num_boosted_rounds() == int(row.params["n_estimators"])
    x = matrix(dataset.load(spark, cfg.resolved_root, "1d", log=lambda *_: None).frame)
    session = ort.InferenceSession(str(Path(row.artifact_uri, "model.onnx")), providers=["CPUExecutionProvider"])
    got = session.run([io_spec["output"]], {io_spec["input"]: x})[0][:, io_spec["column"]]
    expected = booster.inplace_predict(x)
    assert len(x) > 1000 and np.ptp(expected) > 0  # many rows, and a model that is not a constant
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def test_the_row_cap_keeps_each_symbols_newest_rows_as_float32(spark, trained):
    cfg, _, _ = trained
    full = dataset.load(spark, cfg.resolved_root, "1d", log=lambda *_: None, dtype=np.float64).frame
    lines: list[str] = []
    capped = dataset.load(spark, cfg.resolved_root, "1d", log=lines.append, max_rows=300)
    assert len(capped.frame) == 300 and capped.rows_available == len(full)
    assert capped.frame[list(MODEL_FEATURES)].dtypes.eq(np.float32).all()
    assert any("300 of" in line and "newest 100" in line for line in lines), lines
    for symbol, rows in capped.frame.groupby("symbol"):
        newest = full[full["symbol"] == symbol].sort_values("ts").tail(100)
        assert rows["ts"].tolist() == newest["ts"].tolist()
        np.testing.assert_array_equal(matrix(rows), matrix(newest))
        np.testing.assert_array_equal(rows["label_ret_1"].to_numpy(), newest["label_ret_1"].to_numpy())
    assert capped.frame["ts"].is_monotonic_increasing


def test_lstm_onnx_matches_native_for_any_batch_size(spark, trained):
    import onnxruntime as ort

    from lakehouse.ml.lstm import load_state

    cfg, version, _ = trained
    rows = [r for r in delta_io.read(spark, GOLD_MODEL_REGISTRY, cfg.resolved_root).collect()]
    lstm = next(r for r in rows if r.model_version == version and r.algorithm == "lstm")
    native = load_state(Path(lstm.artifact_uri, "model.pt").read_bytes())
    session = ort.InferenceSession(str(Path(lstm.artifact_uri, "model.onnx")), providers=["CPUExecutionProvider"])
    for n in (1, 7, 64):
        x = np.random.default_rng(n).normal(size=(n, 10, len(native.settings.features))).astype(np.float32)
        np.testing.assert_allclose(session.run(None, {"x": x})[0].reshape(-1), native.predict(x), atol=1e-5)


def test_predictions_cover_the_holdout_block_and_the_latest_bar(spark, trained):
    cfg, version, _ = trained
    preds = delta_io.read(spark, GOLD_PREDICTIONS, cfg.resolved_root).where(F.col("model_version") == version)
    assert preds.groupBy("symbol", "ts").count().where("count > 1").count() == 0
    per_symbol = {r.symbol: r.n for r in preds.groupBy("symbol").agg(F.count("*").alias("n")).collect()}
    assert len(per_symbol) == 3 and all(n == SMALL.test_bars + 1 for n in per_symbol.values())  # holdout + newest
    latest = preds.where(F.col("actual_return").isNull())
    assert latest.count() == 3 and latest.where(F.col("prob_up").isNull()).count() == 0
    assert {r.signal for r in preds.select("signal").distinct().collect()} <= {"buy", "hold", "sell"}


# --- Leakage: a fold's model must not depend on anything after its training end -------------------------------------

LEAK_SPECS: dict[str, ModelFamily] = {
    "logistic": next(s for s in SKLEARN_MODELS if s.name == "direction_logistic"),  # scaler in a Pipeline
    "random_forest": next(s for s in SKLEARN_MODELS if s.name == "return_random_forest"),
    "lstm": LSTMFamily(SMALL.lstm),  # its scaler lives in the module's buffers
    "xgboost_spark": SparkXGBFamily("direction"),  # reads Spark rows by a filter on ts, not the driver's slice
}


@pytest.fixture(scope="module")
def fold_one(spark, trained) -> tuple[Any, Any, Fold]:
    """(labeled rows, the same rows with every feature AND label after fold 1's training end replaced by noise —
    the fold's test rows included — and fold 1)."""
    cfg, _, _ = trained
    labeled = dataset.load(spark, cfg.resolved_root, "1d").labeled
    fold = walk_forward(labeled["ts"], SMALL.folds, SMALL.test_bars, SMALL.gap)[0]
    after = (labeled["ts"] > fold.train_end).to_numpy()
    assert after[fold.test].all() and not after[fold.train].any()
    rng = np.random.default_rng(0)
    inputs = list(dict.fromkeys([*MODEL_FEATURES, *LSTM_FEATURES]))  # float32 on the driver
    scrambled = labeled.copy()
    scrambled.loc[after, inputs] = rng.normal(1.0, 0.5, (int(after.sum()), len(inputs))).astype(np.float32)
    scrambled.loc[after, "label_ret_1"] = rng.normal(0.0, 0.02, int(after.sum()))
    scrambled.loc[after, "label_up"] = rng.integers(0, 2, int(after.sum())).astype(float)
    assert not np.allclose(matrix(scrambled.iloc[fold.test]), matrix(labeled.iloc[fold.test]))
    return labeled, scrambled, fold


def _probe(family: ModelFamily, frame: Any, fold: Fold, probe: Any) -> np.ndarray:
    """Fit `family` walk-forward on fold's training rows of `frame`, then predict a fixed probe set that does not
    depend on `frame`: the ORIGINAL test rows of `probe` (the LSTM reads their windows from `probe`). A family that
    fits on the cluster gets `frame` as Spark rows too, which it filters on ts itself."""
    rows = SparkSession.getActiveSession().createDataFrame(frame) if family.fits_on_cluster else None
    data = TrainingData(frame, "1d", "test", None, rows=rows)
    fitted = evaluate(family, data, [fold], 7, SMALL.gap, **QUIET).model
    return family.predict_rows(fitted, probe, fold.test)


def _assert_same_predictions(a: np.ndarray, b: np.ndarray) -> None:
    # Equal up to summation order (forests average their trees on 2 threads); a leak moves far more.
    np.testing.assert_allclose(b, a, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name", list(LEAK_SPECS))
def test_training_sees_nothing_after_its_fold(fold_one, name):
    """Noise in every feature and label after fold 1's training end leaves fold 1's fitted model unchanged:
    it predicts the same numbers on the same (original) test rows."""
    labeled, scrambled, fold = fold_one
    spec = LEAK_SPECS[name]
    _assert_same_predictions(_probe(spec, labeled, fold, labeled), _probe(spec, scrambled, fold, labeled))


def _leak(name: str, frame: Any, fold: Fold, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install a deliberately leaky fit for `frame`: what the leakage check must catch."""
    honest_fit, honest_module = SklearnFamily.fit, lstm.build_module
    if name == "logistic":  # the scaler sees every row of the frame, the classifier only the training rows

        def scaler_on_all_rows(family, train, seed, gap):
            pipeline = family.build(seed)
            scaler = pipeline.named_steps["scale"].fit(matrix(frame))
            target = train["label_up"].astype(int).to_numpy()
            pipeline.named_steps["model"].fit(scaler.transform(matrix(train)), target)
            return pipeline

        monkeypatch.setattr(SklearnFamily, "fit", scaler_on_all_rows)
    elif name == "random_forest":  # fitted on the training rows plus the test block

        def fit_with_test_rows(family, train, seed, gap):
            rows = np.union1d(fold.train, fold.test)
            return honest_fit(family, frame.iloc[rows], seed, gap)

        monkeypatch.setattr(SklearnFamily, "fit", fit_with_test_rows)
    elif name == "xgboost_spark":  # the Spark filter runs to the end of the test block, not of the training rows

        def fit_through_the_test_block(family, data, fold_, seed, gap):
            train = data.rows.where(F.col("ts") <= F.lit(fold_.test_end.to_pydatetime()))
            return family._fit(train.where(F.col("label_up").isNotNull()), seed)

        monkeypatch.setattr(SparkXGBFamily, "fit_fold", fit_through_the_test_block)
    else:  # the LSTM's in-module normaliser fitted on every bar of the frame

        def module_scaled_on_all_rows(n, settings, mean, std, target_scale):
            bars = frame[list(settings.features)].to_numpy(np.float32)
            return honest_module(n, settings, bars.mean(axis=0), bars.std(axis=0), target_scale)

        monkeypatch.setattr(lstm, "build_module", module_scaled_on_all_rows)


@pytest.mark.parametrize("name", list(LEAK_SPECS))
def test_the_leakage_check_detects_a_leaky_fit(fold_one, name, monkeypatch):
    """Can-fail control: the same comparison as above, on a fit that leaks, reports the difference."""
    labeled, scrambled, fold = fold_one
    spec = LEAK_SPECS[name]
    with monkeypatch.context() as patch:
        _leak(name, labeled, fold, patch)
        on_original = _probe(spec, labeled, fold, labeled)
    with monkeypatch.context() as patch:
        _leak(name, scrambled, fold, patch)
        on_scrambled = _probe(spec, scrambled, fold, labeled)
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        _assert_same_predictions(on_original, on_scrambled)


# --- Promotion and failed exports: each on a private copy of the lake -----------------------------------------------


def test_a_model_worse_than_its_baseline_is_not_promoted(spark, published_lake, tmp_path):
    version = published_lake.version
    cfg = copy_lake(published_lake, tmp_path)
    root = cfg.resolved_root
    DeltaTable.forPath(spark, GOLD_MODEL_REGISTRY.path(root)).update(
        F.col("model_version") == version, {"key_value": F.col("baseline_value") * 1.01}
    )
    export_models.run(spark, cfg, run_id="r2", now=T0, **QUIET)
    _, manifest = _manifest(root, version)
    assert all(not doc["promoted"] and doc["serve"] == "baseline" for doc in manifest["models"].values())
    assert "does not beat" in manifest["models"]["direction"]["reason"]
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root).where(F.col("model_version") == version)
    assert registry.where("promoted").count() == 0
    preds = delta_io.read(spark, GOLD_PREDICTIONS, root).where(F.col("model_version") == version).toPandas()
    base = manifest["baselines"]["direction"]["prob_up"]
    assert (preds["baseline_prob_up"] == base).all() and not preds["direction_promoted"].any()


LATER = datetime(2025, 2, 1, tzinfo=UTC)


# Two quick families are enough for a version export can publish; these tests are not about training.
def test_an_export_for_symbols_gold_does_not_hold_fails_naming_the_symbols_it_holds(spark, published_lake, tmp_path):
    """Before: scikit-learn's "Found array with 0 sample(s)" from deep inside scoring."""
    cfg = replace(copy_lake(published_lake, tmp_path), symbols=("NOPE",))
    with pytest.raises(ExportFailed) as info:
        export_models.run(spark, cfg, run_id="r3", now=T0, **QUIET)
    held = sorted(published_lake.predictions["symbol"].unique())
    assert str(info.value).startswith("gold/features_1d@v")
    assert f"no warm rows for NOPE; it holds {', '.join(held)}" in str(info.value)
    assert latest_version(cfg.resolved_root) == published_lake.version


QUICK = replace(SMALL, models=("direction_logistic", "return_ridge"))


@pytest.fixture(scope="module")
def second_version(spark, published_lake, tmp_path_factory) -> tuple[LakeConfig, str]:
    """A private copy of the published lake with a second, newer, trained but unexported version.
    Tests copy it again (`_own_copy`) before exporting, so none sees another's files."""
    cfg = copy_lake(published_lake, tmp_path_factory.mktemp("second_version"))
    with pytest.MonkeyPatch.context() as env:  # this training is tracked: test_a_tracked_training_run_… reads it
        env.setenv("MLFLOW_TRACKING_URI", str(Path(cfg.resolved_root).parent / "mlruns"))
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        second = train_models.run(spark, cfg, run_id="r3", now=LATER, settings=QUICK, **QUIET).details["model_version"]
    assert second != published_lake.version
    return cfg, second


def test_a_tracked_training_run_logs_every_model_with_the_registrys_metrics(spark, second_version):
    """MLFLOW_TRACKING_URI set to a folder during a real training job: one parent run for the version, one nested
    run per model whose holdout metrics and baselines are the registry row's."""
    from mlflow.tracking import MlflowClient

    cfg, second = second_version
    client = MlflowClient(tracking_uri=f"sqlite:///{Path(cfg.resolved_root).parent / 'mlruns'}/mlflow.db")
    experiment = client.get_experiment_by_name("candlelake-training")
    (parent,) = client.search_runs([experiment.experiment_id], f"attributes.run_name = 'train-{second}'")
    assert parent.data.tags["training_table"] == "gold/features_1d"
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, cfg.resolved_root).where(f"model_version = '{second}'")
    rows = {f"{r.task}_{r.algorithm}": r for r in registry.collect()}
    assert sorted(c.info.run_name for c in children) == sorted(rows) == sorted(QUICK.models)
    for child in children:
        row = rows[child.info.run_name]
        assert child.data.tags["model_id"] == row.model_id
        for name, value in row.metrics.items():
            if math.isfinite(value):
                assert child.data.metrics[name] == pytest.approx(value, rel=1e-12)
        for name, value in row.baselines.items():
            if math.isfinite(value):
                assert child.data.metrics[f"baseline_{name}"] == pytest.approx(value, rel=1e-12)


def _own_copy(published_lake: PublishedLake, second_version: tuple[LakeConfig, str], folder: Path) -> LakeConfig:
    return copy_lake(replace(published_lake, cfg=second_version[0]), folder)


def _assert_nothing_published(spark, cfg: LakeConfig, published: str, second: str, before: bytes) -> None:
    """`latest` byte-identical and still naming the first publication, whose files all verify; the failed
    version neither promoted in the registry nor in gold/predictions."""
    root = cfg.resolved_root
    assert (Path(root) / "gold" / "models" / "latest").read_bytes() == before
    folder, manifest = _manifest(root, published)
    assert json.loads(before) == {
        "version": published,
        "manifest_sha256": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
        "published_at": T0.isoformat(),
    }
    for name, meta in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == meta["sha256"], name
    assert latest_version(root) == published != second
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root).where(F.col("model_version") == second)
    assert registry.count() == len(QUICK.models) and registry.where("promoted").count() == 0
    assert delta_io.read(spark, GOLD_PREDICTIONS, root).where(F.col("model_version") == second).count() == 0


def test_a_corrupted_onnx_artifact_is_refused_and_latest_unchanged(spark, published_lake, second_version, tmp_path):
    cfg = _own_copy(published_lake, second_version, tmp_path)
    root, second = cfg.resolved_root, second_version[1]
    before = (Path(root) / "gold" / "models" / "latest").read_bytes()
    # The registry's artifact URIs name the first copy's files: point them at this copy's, then truncate those.
    DeltaTable.forPath(spark, GOLD_MODEL_REGISTRY.path(root)).update(
        F.col("model_version") == second,
        {"artifact_uri": F.regexp_replace("artifact_uri", re.escape(second_version[0].resolved_root), root)},
    )
    corrupted = list((Path(root) / "gold" / "model_artifacts" / second).glob("*/model.onnx"))
    assert len(corrupted) == len(QUICK.models)
    for onnx in corrupted:
        onnx.write_bytes(onnx.read_bytes()[:-64])
    with pytest.raises(
        ExportFailed, match=r"^(direction|return): cannot run the exported model: .*latest not switched"
    ):
        export_models.run(spark, cfg, run_id="r3", now=LATER, model_version=second, **QUIET)
    _assert_nothing_published(spark, cfg, published_lake.version, second, before)
    assert not (Path(root) / "gold" / "models" / second).exists()  # refused before anything was written


def test_a_file_changed_after_writing_fails_the_checksum_and_latest_is_unchanged(
    spark, published_lake, second_version, tmp_path, monkeypatch
):
    cfg = _own_copy(published_lake, second_version, tmp_path)
    root, second = cfg.resolved_root, second_version[1]
    before = (Path(root) / "gold" / "models" / "latest").read_bytes()
    honest_write = ObjectStore.write_bytes

    def write_then_change(self: ObjectStore, name: str, data: bytes, *args: Any, **kwargs: Any) -> str:
        uri = honest_write(self, name, data, *args, **kwargs)
        if name == "return/io.json":  # something changes the stored file before export reads it back
            Path(uri).write_bytes(data + b" ")
        return uri

    monkeypatch.setattr(ObjectStore, "write_bytes", write_then_change)
    with pytest.raises(ExportFailed, match=r"return/io\.json: sha256 mismatch after writing; latest not switched"):
        export_models.run(spark, cfg, run_id="r3", now=LATER, model_version=second, **QUIET)
    monkeypatch.undo()
    _assert_nothing_published(spark, cfg, published_lake.version, second, before)


def test_an_onnx_graph_that_differs_from_its_native_model_is_refused_and_latest_unchanged(
    spark, published_lake, second_version, tmp_path, monkeypatch
):
    cfg = _own_copy(published_lake, second_version, tmp_path)
    root, second = cfg.resolved_root, second_version[1]
    before = (Path(root) / "gold" / "models" / "latest").read_bytes()
    honest_native = export.run_native
    monkeypatch.setattr(export, "run_native", lambda family, model, x: honest_native(family, model, x) + 1e-3)
    with pytest.raises(
        ExportFailed, match=r"^(direction|return): ONNX differs from the native model by 1\.00e-03 > 1e-05$"
    ):
        export_models.run(spark, cfg, run_id="r3", now=LATER, model_version=second, **QUIET)
    monkeypatch.undo()
    _assert_nothing_published(spark, cfg, published_lake.version, second, before)
    assert not (Path(root) / "gold" / "models" / second).exists()  # refused before anything was written


def test_a_failed_re_export_of_the_published_version_leaves_its_files_as_they_were(
    spark, published_lake, tmp_path, monkeypatch
):
    """Re-exporting the live version (after a registry edit, say) and failing verification must not have
    overwritten the files `latest` vouches for: serving would then refuse the manifest it names."""
    cfg = copy_lake(published_lake, tmp_path)
    models = Path(cfg.resolved_root) / "gold" / "models"
    before = _fingerprint(models)
    honest_native = export.run_native
    monkeypatch.setattr(export, "run_native", lambda family, model, x: honest_native(family, model, x) + 1e-3)
    with pytest.raises(ExportFailed, match=r"^(direction|return): ONNX differs from the native model by 1\.00e-03"):
        export_models.run(spark, cfg, run_id="r4", now=LATER, model_version=published_lake.version, **QUIET)
    assert _fingerprint(models) == before
