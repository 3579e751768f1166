"""record_failure, the state machine's Catch path: whatever it is given, it records the failure
and loses nothing — a crash there would leave no row saying what went wrong.

Expected rows are literals written from the ASL's Catch shape (`{"<State>": {"Error", "Cause"}}`)
and the GetJobRun document a failed Glue run's Cause is."""

import json
from datetime import UTC, datetime

import pytest

from lakehouse.failures import failure_rows

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ARN = "arn:aws:states:us-east-1:123456789012:execution:pipeline:run-7"
GLUE_CAUSE = json.dumps({"Id": "jr_1", "JobRunState": "FAILED", "ErrorMessage": "JobFailed: silver has 3 bad rows"})


def _rows(failures: str) -> list[tuple[str, str, str, str]]:
    rows = failure_rows(failures, ARN, "run-7", NOW)
    assert all((r["execution_id"], r["run_id"], r["failed_at"]) == (ARN, "run-7", NOW) for r in rows)
    return [(r["state"], r["error"], r["message"], r["cause"]) for r in rows]


def test_a_glue_failure_is_one_row_with_the_jobs_own_message():
    failures = json.dumps({"Train": {"Error": "States.TaskFailed", "Cause": GLUE_CAUSE}})
    assert _rows(failures) == [("Train", "States.TaskFailed", "JobFailed: silver has 3 bad rows", GLUE_CAUSE)]


def test_a_cause_that_is_not_a_glue_run_is_its_own_message():
    failures = json.dumps({"Ingest": {"Error": "States.Timeout", "Cause": "timed out after 3600 s"}})
    assert _rows(failures) == [("Ingest", "States.Timeout", "timed out after 3600 s", "timed out after 3600 s")]
    # A Cause that is not a string (not what AWS sends, but possible by hand) is kept as JSON text.
    failures = '{"Ingest": {"Error": "E", "Cause": {"Id": "jr_1"}}}'
    assert _rows(failures) == [("Ingest", "E", '{"Id": "jr_1"}', '{"Id": "jr_1"}')]


def test_a_long_message_is_cut_but_the_cause_is_kept_whole():
    long = "x" * 5000
    ((_, _, message, cause),) = _rows(json.dumps({"Export": {"Error": "E", "Cause": long}}))
    assert message == "x" * 4000 and cause == long


@pytest.mark.parametrize(
    "raw",
    ["{not json", "Train failed", '{"Train": {"Error": "E"', "[1, 2]", '"a string"', "42"],
    ids=["broken-object", "plain-text", "truncated", "a-list", "a-string", "a-number"],
)
def test_unparsable_failures_are_recorded_with_the_raw_text_as_cause(raw):
    ((state, error, message, cause),) = _rows(raw)
    assert (state, error, cause) == ("unknown", "UnparsableFailures", raw)
    assert message.startswith("UnparsableFailures: --failures is ")


def test_a_state_whose_failure_is_not_an_object_keeps_its_name_and_body():
    failures = '{"Train": "boom", "Export": {"Error": "E", "Cause": "c"}, "Ingest": [1, {"a": null}]}'
    rows = _rows(failures)
    assert rows[1] == ("Export", "E", "c", "c")
    assert [(r[0], r[1], r[3]) for r in rows[::2]] == [
        ("Train", "UnparsableFailures", "boom"),
        ("Ingest", "UnparsableFailures", '[1, {"a": null}]'),
    ]
    assert "'Train'" in rows[0][2] and "'Ingest'" in rows[2][2]


@pytest.mark.parametrize("raw", ["", "   ", "{}"], ids=["empty", "blank", "no-state"])
def test_no_failure_passed_still_records_one_row(raw):
    ((state, error, _, cause),) = _rows(raw)
    assert (state, error, cause) == ("unknown", "NoFailurePassed", raw.strip())


@pytest.mark.spark
def test_the_job_records_unparsable_failures_and_exits_0(spark, tmp_path, capsys):
    """Exit 0: the row is written, and the state machine goes on to its Fail state either way."""
    from glue_jobs.record_failure import main
    from lakehouse import delta_io
    from lakehouse.tables import GOLD_PIPELINE_FAILURES

    root = str(tmp_path / "lake")
    raw = 'Train: {"Error": oops'
    good = json.dumps({"Train": {"Error": "States.TaskFailed", "Cause": GLUE_CAUSE}})
    assert main(["--lake-root", root, "--execution-id", ARN, "--run-id", "run-7", "--failures", raw]) == 0
    assert main(["--lake-root", root, "--execution_id", ARN + "b", "--run_id", "run-8", "--failures", good]) == 0
    assert capsys.readouterr().out.count("[record_failure] rows read=0 written=1 ") == 2
    got = sorted(
        (r.execution_id, r.run_id, r.state, r.error, r.cause)
        for r in delta_io.read(spark, GOLD_PIPELINE_FAILURES, root).collect()
    )
    assert got == [
        (ARN, "run-7", "unknown", "UnparsableFailures", raw),
        (ARN + "b", "run-8", "Train", "States.TaskFailed", GLUE_CAUSE),
    ]


@pytest.mark.spark
def test_the_job_body_stamps_its_rows_with_the_time_it_is_given_and_prints_nothing(spark, tmp_path, capsys):
    from pyspark.sql import functions as F

    from lakehouse import delta_io
    from lakehouse.config import LakeConfig
    from lakehouse.jobs import record_failure
    from lakehouse.tables import GOLD_PIPELINE_FAILURES

    cfg = LakeConfig(lake_root=str(tmp_path / "lake"))
    failures = json.dumps({"Export": {"Error": "E", "Cause": "c"}, "Train": "boom"})
    logged: list[str] = []
    summary = record_failure.run(
        spark, cfg, run_id="run-9", now=NOW, log=logged.append, failures=failures, execution_id=ARN
    )
    assert (summary.job, summary.rows_written, summary.details) == ("record_failure", 2, {"execution_id": ARN})
    assert capsys.readouterr().out == "" and logged == []  # the entry prints the summary, once
    written = delta_io.read(spark, GOLD_PIPELINE_FAILURES, cfg.resolved_root)
    stamped = written.select("state", "run_id", F.date_format("failed_at", "yyyy-MM-dd HH:mm:ss").alias("at"))
    assert sorted(stamped.collect()) == [
        ("Export", "run-9", "2026-01-02 03:04:05"),
        ("Train", "run-9", "2026-01-02 03:04:05"),
    ]
