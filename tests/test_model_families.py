"""The model-family interface: a third family trains, evaluates and exports with no change to evaluation,
training or export, and those modules never ask which family a model is.

`ConstantFamily` below is defined here only: it predicts the training fold's mean label for every row. It
reaches the pipeline the way a real new family would, by being listed in `lakehouse.ml.catalogue` (patched
here), so if evaluate/train/export branched on the kinds they know, it would fail there.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest

from lakehouse.ml import catalogue
from lakehouse.ml.dataset import TrainingData
from lakehouse.ml.evaluate import evaluate
from lakehouse.ml.export import family_of, verify_models
from lakehouse.ml.family import ModelFamily
from lakehouse.ml.splits import walk_forward
from lakehouse.ml.train import artifact_files

REPO = Path(__file__).resolve().parents[1]
FEATURE = "ret_1"  # a pooled feature every gold row has


@dataclass(frozen=True)
class ConstantFamily(ModelFamily):
    """prob_up = the training fold's share of up bars (direction), or its mean next-bar return (return)."""

    task: str
    algorithm: str = "constant"
    kind: ClassVar[str] = "constant"
    native_file: ClassVar[str] = "model.const"

    @property
    def features(self) -> tuple[str, ...]:
        return (FEATURE,)

    @classmethod
    def for_artifact(cls, io_spec: dict[str, Any]) -> ConstantFamily:
        return cls(io_spec["task"], io_spec["algorithm"])

    def fit(self, train: pd.DataFrame, seed: int, gap: int) -> float:
        return float(train["label_up" if self.task == "direction" else "label_ret_1"].astype(float).mean())

    def predict(self, model: float, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), model)

    def predict_rows(self, model: float, frame: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        return np.full(len(rows), model)

    def to_onnx(self, model: float) -> tuple[bytes, dict[str, Any]]:
        """A graph that answers `model` for each input row: ConstantOfShape(Shape(x)[0:1])."""
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            [
                helper.make_node("Shape", ["x"], ["n"], start=0, end=1),
                helper.make_node(
                    "ConstantOfShape", ["n"], ["y"], value=helper.make_tensor("c", TensorProto.FLOAT, [1], [model])
                ),
            ],
            "constant",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        )
        onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        onnx_model.ir_version = 8
        io_spec = {"input": "x", "dtype": "float32", "shape": [None, 1], "output": "y", "column": None}
        return onnx_model.SerializeToString(), {**io_spec, "features": [FEATURE], "window": None}

    def params(self, model: float) -> dict[str, str]:
        return {"value": repr(model)}

    def dump(self, model: float) -> bytes:
        return json.dumps(model).encode()

    def load(self, data: bytes) -> float:
        return float(json.loads(data))


# --- Evaluation, artifacts and the export check, without Spark -------------------------------------------------------


def _frame(bars: int = 120) -> pd.DataFrame:
    """Two symbols of a random walk, rows in time order, labels as gold computes them (null on the last bar)."""
    rng = np.random.default_rng(3)
    parts = []
    for symbol in ("A", "B"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, bars)))
        part = pd.DataFrame(
            {"symbol": symbol, "ts": pd.date_range("2021-01-01", periods=bars, freq="D", tz="UTC"), "close": close}
        )
        part[FEATURE] = part["close"].pct_change().fillna(0.0)
        part["label_ret_1"] = part["close"].shift(-1) / part["close"] - 1
        part["label_up"] = (part["label_ret_1"] > 0).astype(float)
        parts.append(part.iloc[:-1])
    return pd.concat(parts).sort_values(["ts", "symbol"]).reset_index(drop=True)


@pytest.mark.parametrize("task", ["direction", "return"])
def test_a_third_family_is_evaluated_and_its_artifacts_pass_the_export_check(task):
    frame = _frame()
    folds = walk_forward(frame["ts"], n_folds=2, test_bars=20, gap=2)
    family = ConstantFamily(task)
    result = evaluate(family, TrainingData(frame, "1d", "test", None), folds, seed=0, gap=2, log=lambda *_: None)

    label = "label_up" if task == "direction" else "label_ret_1"
    holdout_train = frame.iloc[folds[-1].train]
    assert len(holdout_train) == 2 * (120 - 1 - 20 - 2)  # every row before the gap, both symbols
    constant = holdout_train[label].mean()
    assert result.model == pytest.approx(constant, rel=1e-15)
    test_rows = frame.iloc[folds[-1].test]
    if task == "direction":  # Brier score of a constant forecast, by hand
        expected = float(np.mean((constant - test_rows["label_up"].to_numpy()) ** 2))
        assert result.holdout.metrics["brier"] == pytest.approx(expected, rel=1e-12)
    else:  # mean absolute error of the predicted close, by hand
        error = test_rows["close"].to_numpy() * (constant - test_rows["label_ret_1"].to_numpy())
        assert result.holdout.metrics["mae"] == pytest.approx(float(np.mean(np.abs(error))), rel=1e-12)

    files = artifact_files(result)
    assert set(files) == {"model.const", "model.onnx", "io.json"}
    io_spec = json.loads(files["io.json"])
    assert io_spec == {
        "input": "x",
        "dtype": "float32",
        "shape": [None, 1],
        "output": "y",
        "column": None,
        "features": [FEATURE],
        "window": None,
        "task": task,
        "algorithm": "constant",
        "kind": "constant",
    }
    snap = {"columns": [FEATURE], "symbols": {"A": {"values": [[0.1], [0.2]]}, "B": {"values": [[0.3]]}}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(catalogue.KINDS, "constant", ConstantFamily)
        published = {task: family_of(task, files["io.json"])}
    named = {f"{task}/{name}": data for name, data in files.items()}
    loaded = verify_models(published, named, snap, log=lambda *_: None)
    assert loaded[task].model == pytest.approx(constant, rel=1e-15)


def test_export_refuses_an_artifact_of_a_kind_no_family_provides():
    from lakehouse.ml.export import ExportFailed

    with pytest.raises(ExportFailed, match=r"^return: io.json names model kind 'spark_gbt', which no family"):
        family_of("return", json.dumps({"kind": "spark_gbt", "task": "return", "algorithm": "gbt"}).encode())


# --- The whole train → export path on a lake --------------------------------------------------------------------------


@pytest.mark.spark
@pytest.mark.slow
def test_a_third_family_trains_and_exports_through_the_job_bodies(spark, published_lake, tmp_path, monkeypatch):
    from lakehouse import delta_io
    from lakehouse.jobs import export_models, train_models
    from lakehouse.ml import dataset
    from lakehouse.tables import GOLD_MODEL_REGISTRY, GOLD_PREDICTIONS
    from tests.ml_lake import QUIET, SMALL, copy_lake

    families = [ConstantFamily("direction"), ConstantFamily("return")]
    monkeypatch.setattr(catalogue, "candidates", lambda *_, **__: families)
    monkeypatch.setitem(catalogue.KINDS, ConstantFamily.kind, ConstantFamily)
    cfg = copy_lake(published_lake, tmp_path)
    root = cfg.resolved_root
    now = datetime(2025, 3, 1, tzinfo=UTC)
    settings = replace(SMALL, models=())
    version = train_models.run(spark, cfg, run_id="r9", now=now, settings=settings, **QUIET).details["model_version"]
    export_models.run(spark, cfg, run_id="r9", now=now, **QUIET)

    # The oracle: each task's mean label over the holdout fold's training rows, computed here with pandas.
    labeled = dataset.load(spark, root, "1d").labeled
    holdout_train = labeled.iloc[walk_forward(labeled["ts"], SMALL.folds, SMALL.test_bars, SMALL.gap)[-1].train]
    constant = {
        "direction": holdout_train["label_up"].astype(float).mean(),
        "return": holdout_train["label_ret_1"].mean(),
    }

    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root).where(f"model_version = '{version}'").toPandas()
    assert sorted(zip(registry["task"], registry["algorithm"], strict=True)) == [
        ("direction", "constant"),
        ("return", "constant"),
    ]
    for row in registry.itertuples():
        assert list(row.features) == [FEATURE]
        assert float(row.params["value"]) == pytest.approx(constant[row.task], rel=1e-15)
        assert json.loads(Path(row.artifact_uri, "io.json").read_text())["kind"] == "constant"

    folder = Path(root) / "gold" / "models" / version
    pointer = json.loads((Path(root) / "gold" / "models" / "latest").read_text())
    assert pointer["version"] == version
    manifest = json.loads((folder / "manifest.json").read_text())
    assert pointer["manifest_sha256"] == hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()
    for task in ("direction", "return"):
        doc = manifest["models"][task]
        assert doc["algorithm"] == "constant" and doc["files"]["native"] == f"{task}/model.const"
        native = (folder / doc["files"]["native"]).read_bytes()
        assert manifest["files"][f"{task}/model.const"]["sha256"] == hashlib.sha256(native).hexdigest()
        assert float(json.loads(native)) == pytest.approx(constant[task], rel=1e-15)

    preds = delta_io.read(spark, GOLD_PREDICTIONS, root).where(f"model_version = '{version}'").toPandas()
    assert len(preds) == 3 * (SMALL.test_bars + 1)  # the holdout block and each symbol's newest bar
    np.testing.assert_allclose(preds["prob_up"], constant["direction"], rtol=1e-15)
    np.testing.assert_allclose(preds["predicted_return"], constant["return"], rtol=1e-15)


# --- Evaluation, training and export never ask which family a model is ----------------------------------------------

FAMILY_BLIND = (
    "lakehouse/ml/evaluate.py",
    "lakehouse/ml/train.py",
    "lakehouse/ml/export.py",
    "lakehouse/jobs/train_models.py",
    "lakehouse/jobs/export_models.py",
)
# What telling families apart looks like: their classes and the functions of one family.
FAMILY_NAMES = {
    "FittedLSTM",
    "LSTMFamily",
    "SklearnFamily",
    "SKLEARN_MODELS",
    "fit_lstm",
    "load_state",
    "make_windows",
    "build_module",
}
KIND_WORDS = {"lstm", "sklearn", "model.pt", "model.joblib"}
# Asking a model (or a family, a result) what it is, instead of asking it to act.
INTROSPECTION = {"isinstance", "hasattr", "getattr", "type"}


def family_branches(source: str) -> list[str]:
    """Each place in `source` that tells model families apart: a comparison with a family's kind,
    algorithm or file name (or with any `.kind`), an isinstance/hasattr/getattr/type of a model, a
    family or a result, or a name that belongs to one family."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                if isinstance(operand, ast.Constant) and operand.value in KIND_WORDS:
                    found.append(f"line {node.lineno}: compares with {operand.value!r}")
                if isinstance(operand, ast.Attribute) and operand.attr == "kind":
                    found.append(f"line {node.lineno}: compares a .kind")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in INTROSPECTION:
            subject = ast.unparse(node.args[0]) if node.args else ""
            if any(word in subject for word in ("model", "family", "fitted", "result", "spec")):
                found.append(f"line {node.lineno}: {node.func.id}({subject}, …)")
        elif isinstance(node, ast.Constant) and node.value in {"model.pt", "model.joblib"}:
            found.append(f"line {node.lineno}: names the file {node.value!r}")
        elif isinstance(node, ast.Name | ast.alias | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.name if isinstance(node, ast.alias) else node.attr
            if name in FAMILY_NAMES:
                found.append(f"line {node.lineno}: names {name}")
    return found


@pytest.mark.parametrize("path", FAMILY_BLIND)
def test_evaluation_training_and_export_never_branch_on_the_family(path):
    assert family_branches((REPO / path).read_text()) == []


def test_the_branch_finder_sees_the_branches_it_forbids():
    """Can-fail control: each way of telling families apart that the modules once used is reported."""
    source = """
if spec.kind == "lstm":
    pass
if isinstance(result.model, FittedLSTM) or hasattr(model, "predict_proba"):
    pass
if isinstance(value, float):  # a plain value, not a model: allowed
    pass
native = "model.pt" if row["algorithm"] == "lstm" else "model.joblib"
from lakehouse.ml.lstm import load_state
"""
    assert sorted(family_branches(source)) == [
        "line 2: compares a .kind",
        "line 2: compares with 'lstm'",
        "line 4: hasattr(model, …)",
        "line 4: isinstance(result.model, …)",
        "line 4: names FittedLSTM",
        "line 8: compares with 'lstm'",
        "line 8: names the file 'model.joblib'",
        "line 8: names the file 'model.pt'",
        "line 9: names load_state",
    ]
