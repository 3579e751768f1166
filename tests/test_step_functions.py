"""The pipeline's ASL, executed through moto's interpreter with our Glue jobs: retries, Catch,
the data-quality gate, the intraday machine, the runner's exit codes, and the moto internals the
adapter depends on.

Order does not matter: one successful pipeline execution (`succeeded`, module-scoped) is READ-ONLY;
a test that runs another execution on top of it works on a copy of its lake (`_copy`)."""

import contextlib
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from infra import lake_access
from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.tables import GOLD_PIPELINE_FAILURES, SILVER_CANDLES
from step_functions import definitions, run_local
from step_functions.moto_glue import Fault, MotoInternalsChanged, check_moto_internals, parse_faults
from step_functions.run_local import (
    EXIT_BUSY,
    EXIT_FAILED,
    EXIT_SUCCEEDED,
    EXIT_USAGE,
    execute,
    execution_input,
    job_default_arguments,
    main,
)

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
    assert definitions.placeholders(path) <= {*definitions.GLUE_JOBS, *definitions.SETTINGS}
    # The lake is the deployment's: every task is given `${LakeRoot}` itself, none reads it from the input.
    for name, task in tasks.items():
        assert task["Parameters"]["Arguments"]["--lake_root"] == "${LakeRoot}", name
    assert "lake_root" not in defaults
    assert "$.config.lake_root" not in {v for task in tasks.values() for v in task["Parameters"]["Arguments"].values()}


@pytest.mark.parametrize("path", definitions.DEFINITIONS, ids=lambda p: p.name)
def test_an_execution_naming_a_lake_root_is_refused_before_any_job_runs(path, tmp_path):
    ran: list[str] = []
    jobs = {definitions.glue_job_name(p): (lambda argv, p=p: ran.append(p) or 0) for p in definitions.GLUE_JOBS}
    run = execute(
        path,
        {"lake_root": "s3://someone-elses-bucket/lake", "source": "synthetic"},
        lake_root=str(tmp_path / "lake"),
        jobs=jobs,
        retry_scale=0.0,
        log=lambda *_: None,
    )
    assert run.status == "FAILED" and run.error == "InputRejected"
    assert "lake_root is not an execution input" in run.cause and str(tmp_path / "lake") in run.cause
    assert ran == [] and [s.state for s in run.states] == ["Defaults", "ApplyInput", "CheckInput", "LakeRootNotAnInput"]


def test_pipeline_order_and_quality_gate():
    asl = json.loads(definitions.PIPELINE.read_text())
    order, state = [], asl["StartAt"]
    while state in asl["States"] and asl["States"][state]["Type"] not in ("Succeed", "Fail"):
        order.append(state)
        s = asl["States"][state]
        # the happy path: CheckInput's Default (no lake_root given), QualityGate's first choice (no failure)
        state = s.get("Next") or (s["Default"] if state == "CheckInput" else s["Choices"][0]["Next"])
    assert order == [
        "Defaults",
        "ApplyInput",
        "CheckInput",
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


SYMBOLS, BARS = 3, 700  # the pipeline's synthetic lake: enough bars for SMALL_TRAIN's folds
LAKE_FLAGS = ["--source", "synthetic", "--synthetic-symbols", str(SYMBOLS), "--synthetic-bars", str(BARS)]


@dataclass(frozen=True)
class SucceededRun:
    """The daily pipeline, run once through the runner's command line with two injected transient
    failures; its lake is READ-ONLY (copy it with `_copy` to run more executions on it)."""

    cfg: LakeConfig
    code: int
    out: str
    written: dict[str, set[str]]  # glue_jobs module → the lake paths its runs created, changed or deleted


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


@contextlib.contextmanager
def _recording_writes(root: Path, written: dict[str, set[str]]) -> Iterator[None]:
    """Each local Glue job run wrapped: the files under `root` it created, changed or deleted are
    added to written[<its glue_jobs module>] (the runner runs one job at a time)."""
    modules = {definitions.glue_job_name(p): m for p, m in definitions.GLUE_JOBS.items()}
    real = run_local.local_jobs

    def local_jobs(default_arguments=()):
        def recorded(job, entry):
            def run(argv):
                before = _files(root) if root.exists() else {}
                try:
                    return entry(argv)
                finally:
                    after = _files(root)
                    changed = {p for p in after.keys() | before.keys() if after.get(p) != before.get(p)}
                    written.setdefault(modules[job], set()).update(changed)

            return run

        return {job: recorded(job, entry) for job, entry in real(default_arguments).items()}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_local, "local_jobs", local_jobs)
        yield


@pytest.fixture(scope="module")
def succeeded(spark, tmp_path_factory) -> SucceededRun:
    root = str(tmp_path_factory.mktemp("sfn") / "lake")
    cfg = LakeConfig(lake_root=root, source="synthetic", symbols=(), synthetic_symbols=SYMBOLS, synthetic_bars=BARS)
    out = io.StringIO()
    written: dict[str, set[str]] = {}
    with contextlib.redirect_stdout(out), _recording_writes(Path(root), written):
        code = main(
            [
                "--lake-root", root, *LAKE_FLAGS,
                *[part for k, v in SMALL_TRAIN.items() for part in (f"--train-{k.replace('_', '-')}", v)],
                "--inject-fault", "BuildFeatures:2:Glue.ConcurrentRunsExceededException",
                "--retry-wait-scale", "0",
                "--name", "retries",
            ]
        )  # fmt: skip
    return SucceededRun(cfg, code, out.getvalue(), written)


def _copy(run: SucceededRun, tmp_path: Path) -> LakeConfig:
    """A private copy of the succeeded lake (Delta logs use relative paths, so a copy is a lake)."""
    shutil.copytree(run.cfg.resolved_root, tmp_path / "lake")
    return replace(run.cfg, lake_root=str(tmp_path / "lake"))


def _run(cfg, faults="", name=None):
    return execute(
        definitions.PIPELINE,
        execution_input(cfg, SMALL_TRAIN),
        lake_root=cfg.resolved_root,
        job_arguments=job_default_arguments(cfg),
        faults=faults,
        retry_scale=0.0,
        name=name,
        log=lambda *_: None,
    )


@pytest.mark.spark
@pytest.mark.slow
def test_transient_failures_are_retried_and_the_run_succeeds(spark, succeeded):
    out = succeeded.out
    assert succeeded.code == EXIT_SUCCEEDED == 0, out
    assert "TaskFailed             Glue.ConcurrentRunsExceededException" in out  # the live event list
    root = Path(succeeded.cfg.resolved_root)
    history = json.loads((root / "runs" / "retries.json").read_text())
    assert history["status"] == "SUCCEEDED" and history["events"][-1]["type"] == "ExecutionSucceeded"
    states = {s["state"]: s for s in history["states"]}
    assert list(states) == [
        "Defaults", "ApplyInput", "CheckInput", "Ingest", "BuildSilver", "BuildFeatures", "QualityGate", "Train",
        "Export", "Succeeded",
    ]  # fmt: skip
    assert states["BuildFeatures"]["attempts"] == 3
    assert states["BuildFeatures"]["errors"] == ["Glue.ConcurrentRunsExceededException"] * 2
    assert all(s["status"] == "SUCCEEDED" for s in history["states"])
    assert (root / "gold" / "models" / "latest").is_file()
    assert "published model version" in out and "data quality:" in out
    # --synthetic-symbols/--synthetic-bars are not execution input: the jobs must still have used them.
    by_symbol = {
        r.symbol: r["count"]
        for r in delta_io.read(spark, SILVER_CANDLES, str(root)).groupBy("symbol").count().collect()
    }
    assert by_symbol == {"SYN0001": BARS, "SYN0002": BARS, "SYN0003": BARS}


@pytest.mark.spark
@pytest.mark.slow
def test_each_job_writes_only_under_the_prefixes_its_role_may_write(succeeded):
    """The per-job IAM roles (infra/lake_access.py) are drawn from WRITES: a job writing outside
    its prefixes would be AccessDenied on AWS, and only export may touch the published models."""
    assert succeeded.code == 0, succeeded.out
    ran = {"ingest_candles", "build_silver", "build_features", "train_models", "export_models"}
    assert set(succeeded.written) == ran  # record_failure: see the failure tests below
    for module, paths in succeeded.written.items():
        assert paths, f"{module} wrote nothing"
        stray = sorted(p for p in paths if not p.startswith(lake_access.WRITES[module]))
        assert not stray, f"{module} wrote outside {lake_access.WRITES[module]}: {stray[:5]}"
    published = {m for m, paths in succeeded.written.items() if any(p.startswith("gold/models/") for p in paths)}
    assert published == {"export_models"}
    assert [m for m, prefixes in lake_access.WRITES.items() if lake_access.PUBLISHED_MODELS in prefixes] == [
        "export_models"
    ]


@pytest.mark.spark
@pytest.mark.slow
def test_a_permanent_failure_at_train_is_caught_recorded_and_leaves_latest(spark, succeeded, tmp_path):
    cfg = _copy(succeeded, tmp_path)
    latest = Path(cfg.resolved_root) / "gold" / "models" / "latest"
    before = latest.read_bytes()
    run = _run(cfg, faults="Train:2:States.TaskFailed", name="train-fails")
    assert run.status == "FAILED" and run.error == "PipelineFailed"
    assert "InjectedFault" in run.cause and '"Train"' in run.cause
    assert run.row("Train").attempts == 2 and run.row("Train").status == "CAUGHT"  # retried once
    assert run.ran("RecordFailure") and not run.ran("Export")
    assert latest.read_bytes() == before
    failures = delta_io.read(spark, GOLD_PIPELINE_FAILURES, cfg.resolved_root)
    assert GOLD_PIPELINE_FAILURES.name + "/" in lake_access.WRITES["record_failure"]
    row = failures.where(F.col("execution_id").endswith(":train-fails")).collect()
    assert [(r.state, r.error) for r in row] == [("Train", "States.TaskFailed")]
    assert row[0].message.startswith("InjectedFault")


@pytest.mark.spark
@pytest.mark.slow
def test_a_halt_tier_quality_failure_stops_at_the_gate(spark, succeeded, tmp_path):
    root = _copy(succeeded, tmp_path).resolved_root
    silver = delta_io.read(spark, SILVER_CANDLES, root)
    last = silver.orderBy(F.col("ts").desc()).limit(1)
    corrupted = last.withColumn("close", F.lit(-1.0)).withColumn("updated_at", F.lit(datetime.now(UTC)))
    delta_io.merge_upsert(spark, corrupted, SILVER_CANDLES, root)

    run = _run(replace(succeeded.cfg, lake_root=root), name="quality-halt")
    assert run.status == "FAILED" and run.error == "DataQualityHalt"
    assert "close_positive" in run.cause
    assert run.row("BuildFeatures").status == "CAUGHT" and run.row("BuildFeatures").attempts == 2
    assert run.ran("QualityGate") and run.ran("RecordQualityHalt") and not run.ran("Train")
    failures = delta_io.read(spark, GOLD_PIPELINE_FAILURES, root).where(F.col("execution_id").endswith(":quality-halt"))
    assert [r.message.split(":")[0] for r in failures.collect()] == ["QualityHalt"]


INTRADAY_SYMBOLS, INTRADAY_BARS = 2, 300


@pytest.mark.spark
@pytest.mark.slow
def test_the_intraday_machine_brings_its_default_1h_and_5m_bars_to_silver(spark, tmp_path, capsys):
    root = tmp_path / "lake"
    # A second execution on the same lake, started (as `make run` in another terminal) while this one runs:
    # refused at once, naming this run, before it writes anything.
    second: dict[str, object] = {}

    def start_a_second_run() -> None:
        deadline = time.monotonic() + 300
        while not (root / "_locks" / "pipeline.json").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "step_functions.run_local", "--definition", str(definitions.INGEST_INTRADAY),
             "--lake-root", str(root), "--source", "synthetic", "--name", "second"],
            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
        second.update(code=done.returncode, err=done.stderr, seconds=time.monotonic() - started)

    other = threading.Thread(target=start_a_second_run)
    other.start()
    # No --intervals: the machine's own Defaults state says 1h,5m.
    code = main(
        [
            "--definition", str(definitions.INGEST_INTRADAY),
            "--lake-root", str(root),
            "--source", "synthetic",
            "--synthetic-symbols", str(INTRADAY_SYMBOLS),
            "--synthetic-bars", str(INTRADAY_BARS),
            "--retry-wait-scale", "0",
            "--name", "intraday",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    other.join()
    assert code == 0, out
    assert second["code"] == EXIT_BUSY == 3, second
    assert "second refused, nothing was executed: the lake is held by run 'intraday'" in str(second["err"])
    assert float(second["seconds"]) < 60, "refused at once, not after waiting"  # (a Python start: seconds)
    assert not (root / "runs" / "second.json").exists() and not (root / "_locks" / "pipeline.json").exists()
    history = json.loads((root / "runs" / "intraday.json").read_text())
    assert history["status"] == "SUCCEEDED" and history["events"][-1]["type"] == "ExecutionSucceeded"
    assert [(s["state"], s["status"]) for s in history["states"]] == [
        ("Defaults", "SUCCEEDED"), ("ApplyInput", "SUCCEEDED"), ("CheckInput", "SUCCEEDED"),
        ("Ingest", "SUCCEEDED"),
        ("BuildSilver", "SUCCEEDED"), ("Succeeded", "SUCCEEDED"),
    ]  # fmt: skip
    assert [r["job"] for r in history["glue_runs"]] == ["candlelake-ingest-candles", "candlelake-build-silver"]
    assert "intervals" not in history["input"]  # left to the Defaults state
    # Silver, by hand: the synthetic universe's sessions open 14:30 UTC on weekdays from Fri 2015-01-02,
    # 7 one-hour or 78 five-minute bars each. 300 h-bars = 42 sessions + 6 bars: the 43rd business day
    # (Tue 2015-03-03) at 14:30 + 5 h; 300 5m-bars = 3 sessions + 66: the 4th (Wed 01-07) at 14:30 + 65 × 5 min.
    rows = (
        delta_io.read(spark, SILVER_CANDLES, str(root))
        .groupBy("interval")
        .agg(
            F.count("*").alias("n"),
            F.countDistinct("symbol").alias("symbols"),
            F.min("ts").alias("first"),
            F.max("ts").alias("last"),
        )
    )
    got = {r.interval: (r.n, r.symbols, r.first.astimezone(UTC), r.last.astimezone(UTC)) for r in rows.collect()}
    n = INTRADAY_SYMBOLS * INTRADAY_BARS
    assert got == {
        "1h": (n, 2, datetime(2015, 1, 2, 14, 30, tzinfo=UTC), datetime(2015, 3, 3, 19, 30, tzinfo=UTC)),
        "5m": (n, 2, datetime(2015, 1, 2, 14, 30, tzinfo=UTC), datetime(2015, 1, 7, 19, 55, tzinfo=UTC)),
    }
    assert not (root / "gold" / "models").exists()  # ingest only: no features, no training


@pytest.mark.spark
@pytest.mark.slow
def test_the_runner_exits_1_when_the_execution_fails(spark, tmp_path, capsys):
    root = tmp_path / "lake"
    code = main(
        [
            "--definition", str(definitions.INGEST_INTRADAY),
            "--lake-root", str(root), *LAKE_FLAGS,
            "--inject-fault", "Ingest:2:States.TaskFailed",
            "--retry-wait-scale", "0",
            "--name", "ingest-fails",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == EXIT_FAILED == 1, captured.out
    # The last line names the state and the job's own message, not the start of a JSON document.
    assert "[run_local] PipelineFailed: Ingest: States.TaskFailed: InjectedFault: States.TaskFailed" in captured.err
    history = json.loads((root / "runs" / "ingest-fails.json").read_text())
    assert history["status"] == "FAILED"
    assert [s["state"] for s in history["states"]] == [
        "Defaults",
        "ApplyInput",
        "CheckInput",
        "Ingest",
        "RecordFailure",
        "PipelineFailed",
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--intervals", "7m"], "unsupported interval"),
        (["--inject-fault", "Nope:1:States.TaskFailed"], "unknown state"),
        (["--inject-fault", "Ingest:1:Oops"], "cannot inject"),
        (["--definition", "step_functions/nope.asl.json"], "no such file"),
    ],
    ids=["bad-interval", "unknown-state", "bad-error", "no-definition"],
)
def test_bad_arguments_exit_2_before_anything_runs(tmp_path, capsys, argv, message):
    root = tmp_path / "lake"
    assert main(["--lake-root", str(root), *argv]) == EXIT_USAGE == 2
    assert message in capsys.readouterr().err
    assert not root.exists()  # no execution, not even its history


def test_a_malformed_retry_scale_variable_is_a_usage_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CANDLELAKE_RETRY_WAIT_SCALE", "soon")
    with pytest.raises(SystemExit) as exited:
        main(["--lake-root", str(tmp_path / "lake")])
    assert exited.value.code == EXIT_USAGE
    assert "--retry-wait-scale: invalid float value: 'soon'" in capsys.readouterr().err


def test_an_unknown_flag_exits_2_from_the_command_line(tmp_path):
    # The process's own exit status (python -m …), which `make run` and the local pipeline API see.
    done = subprocess.run(
        [sys.executable, "-m", "step_functions.run_local", "--lake-root", str(tmp_path / "lake"), "--no-such-flag"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 2, done.stderr
    assert "unrecognized arguments: --no-such-flag" in done.stderr
    assert not (tmp_path / "lake").exists()


def test_only_the_lake_settings_given_reach_the_jobs_as_default_arguments(monkeypatch):
    import argparse

    from lakehouse.config import add_config_arguments, config_from

    for name in ("SYNTHETIC_SYMBOLS", "SYNTHETIC_BARS", "CSV_PATH", "S3_ENDPOINT"):
        monkeypatch.delenv(f"CANDLELAKE_{name}", raising=False)
    monkeypatch.setenv("CANDLELAKE_SEED", "11")
    parser = add_config_arguments(argparse.ArgumentParser())
    cfg = config_from(parser.parse_args(["--source", "synthetic", "--synthetic-bars", "700"]))
    assert job_default_arguments(cfg, given_only=True) == ["--synthetic-bars", "700", "--seed", "11"]
    # Without given_only every non-empty setting is passed (a LakeConfig built in code has no origins).
    assert "--synthetic-symbols" in job_default_arguments(cfg)
