"""The pipeline's ASL, executed through moto's interpreter with our Glue jobs: retries, Catch,
the data-quality gate, and the moto internals the adapter depends on."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.tables import GOLD_PIPELINE_FAILURES, SILVER_CANDLES
from step_functions import definitions
from step_functions.moto_glue import Fault, MotoInternalsChanged, check_moto_internals, parse_faults
from step_functions.run_local import execute, execution_input, main

TRANSIENT = {
    "Glue.ConcurrentRunsExceededException",
    "Glue.AWSGlueException",
    "Glue.InternalServiceException",
    "States.Timeout",
}
SMALL_TRAIN = {"folds": "2", "test_bars": "60", "gap": "2", "epochs": "2", "window": "10"}


def _glue_tasks(asl: dict) -> dict[str, dict]:
    return {n: s for n, s in asl["States"].items() if s.get("Resource", "").startswith("arn:aws:states:::glue:")}


@pytest.mark.parametrize("path", definitions.DEFINITIONS, ids=lambda p: p.name)
def test_every_glue_task_is_sync_retried_and_caught(path):
    asl = json.loads(path.read_text())
    tasks = _glue_tasks(asl)
    assert tasks
    for name, task in tasks.items():
        assert task["Resource"] == "arn:aws:states:::glue:startJobRun.sync", name
        transient, failed = task["Retry"]
        assert set(transient["ErrorEquals"]) == TRANSIENT and transient["JitterStrategy"] == "FULL", name
        assert transient["BackoffRate"] > 1 and transient["MaxAttempts"] >= 2
        assert failed["ErrorEquals"] == ["States.TaskFailed"] and failed["MaxAttempts"] == 1, name
        assert task["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
        assert task["Comment"]
    # Every argument read from the input has a default, so `{}` is a valid execution input.
    defaults = asl["States"]["Defaults"]["Result"]
    for task in tasks.values():
        for value in task["Parameters"]["Arguments"].values():
            if value.startswith("$.config."):
                assert value.removeprefix("$.config.") in defaults
    assert definitions.placeholders(path) <= {*definitions.GLUE_JOBS, "LakeRoot"}


def test_pipeline_order_and_quality_gate():
    asl = json.loads(definitions.PIPELINE.read_text())
    order, state = [], asl["StartAt"]
    while state in asl["States"] and asl["States"][state]["Type"] not in ("Succeed", "Fail"):
        order.append(state)
        s = asl["States"][state]
        state = s.get("Next") or s.get("Choices", [{}])[0].get("Next")
    assert order == [
        "Defaults",
        "ApplyInput",
        "Ingest",
        "BuildSilver",
        "BuildFeatures",
        "QualityGate",
        "Train",
        "Export",
    ]
    gate = asl["States"]["QualityGate"]
    assert gate["Type"] == "Choice" and gate["Choices"][1]["Next"] == "RecordQualityHalt"


def test_the_moto_internals_the_adapter_patches_are_there(monkeypatch):
    check_moto_internals()
    import moto

    monkeypatch.setattr(moto, "__version__", "5.3.0")
    with pytest.raises(MotoInternalsChanged, match="written for 5.2.5"):
        check_moto_internals()


def test_fault_specs_are_validated():
    jobs = {"BuildFeatures": "candlelake-build-features"}
    assert parse_faults("BuildFeatures:2:Glue.ConcurrentRunsExceededException", jobs) == [
        Fault("candlelake-build-features", 2, "Glue.ConcurrentRunsExceededException")
    ]
    with pytest.raises(ValueError, match="unknown state"):
        parse_faults("Nope:1:States.TaskFailed", jobs)
    with pytest.raises(ValueError, match="cannot inject"):
        parse_faults("BuildFeatures:1:Oops", jobs)


@pytest.fixture(scope="module")
def lake_cfg(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sfn") / "lake")
    return LakeConfig(lake_root=root, source="synthetic", symbols=(), synthetic_symbols=3, synthetic_bars=700)


def _run(cfg, faults="", name=None):
    return execute(
        definitions.PIPELINE,
        execution_input(cfg, SMALL_TRAIN),
        faults=faults,
        retry_scale=0.0,
        name=name,
        log=lambda *_: None,
    )


@pytest.mark.spark
@pytest.mark.slow
def test_transient_failures_are_retried_and_the_run_succeeds(spark, lake_cfg, capsys):
    code = main(
        [
            "--lake-root",
            lake_cfg.lake_root,
            "--source",
            "synthetic",
            "--synthetic-symbols",
            "3",
            "--synthetic-bars",
            "700",
            *[part for k, v in SMALL_TRAIN.items() for part in (f"--train-{k.replace('_', '-')}", v)],
            "--inject-fault",
            "BuildFeatures:2:Glue.ConcurrentRunsExceededException",
            "--retry-wait-scale",
            "0",
            "--name",
            "retries",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "TaskFailed             Glue.ConcurrentRunsExceededException" in out  # the live event list
    history = json.loads((Path(lake_cfg.resolved_root) / "runs" / "retries.json").read_text())
    assert history["status"] == "SUCCEEDED" and history["events"][-1]["type"] == "ExecutionSucceeded"
    states = {s["state"]: s for s in history["states"]}
    assert list(states) == [
        "Defaults", "ApplyInput", "Ingest", "BuildSilver", "BuildFeatures", "QualityGate", "Train", "Export",
        "Succeeded",
    ]  # fmt: skip
    assert states["BuildFeatures"]["attempts"] == 3
    assert states["BuildFeatures"]["errors"] == ["Glue.ConcurrentRunsExceededException"] * 2
    assert all(s["status"] == "SUCCEEDED" for s in history["states"])
    assert (Path(lake_cfg.resolved_root) / "gold" / "models" / "latest").is_file()
    assert "published model version" in out and "data quality:" in out


@pytest.mark.spark
@pytest.mark.slow
def test_a_permanent_failure_at_train_is_caught_recorded_and_leaves_latest(spark, lake_cfg):
    latest = Path(lake_cfg.resolved_root) / "gold" / "models" / "latest"
    before = latest.read_bytes()
    run = _run(lake_cfg, faults="Train:2:States.TaskFailed", name="train-fails")
    assert run.status == "FAILED" and run.error == "PipelineFailed"
    assert "InjectedFault" in run.cause and '"Train"' in run.cause
    assert run.row("Train").attempts == 2 and run.row("Train").status == "CAUGHT"  # retried once
    assert run.ran("RecordFailure") and not run.ran("Export")
    assert latest.read_bytes() == before
    failures = delta_io.read(spark, GOLD_PIPELINE_FAILURES, lake_cfg.resolved_root)
    row = failures.where(F.col("execution_id").endswith(":train-fails")).collect()
    assert [(r.state, r.error) for r in row] == [("Train", "States.TaskFailed")]
    assert row[0].message.startswith("InjectedFault")


@pytest.mark.spark
@pytest.mark.slow
def test_a_halt_tier_quality_failure_stops_at_the_gate(spark, lake_cfg):
    root = lake_cfg.resolved_root
    silver = delta_io.read(spark, SILVER_CANDLES, root)
    last = silver.orderBy(F.col("ts").desc()).limit(1)
    corrupted = last.withColumn("close", F.lit(-1.0)).withColumn("updated_at", F.lit(datetime.now(UTC)))
    delta_io.merge_upsert(spark, corrupted, SILVER_CANDLES, root)

    run = _run(lake_cfg, name="quality-halt")
    assert run.status == "FAILED" and run.error == "DataQualityHalt"
    assert "close_positive" in run.cause
    assert run.row("BuildFeatures").status == "CAUGHT" and run.row("BuildFeatures").attempts == 2
    assert run.ran("QualityGate") and run.ran("RecordQualityHalt") and not run.ran("Train")
    failures = delta_io.read(spark, GOLD_PIPELINE_FAILURES, root).where(F.col("execution_id").endswith(":quality-halt"))
    assert [r.message.split(":")[0] for r in failures.collect()] == ["QualityHalt"]
