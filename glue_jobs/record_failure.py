"""Glue job: the state machine's Catch path — record which state failed, with what, in the lake."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.failures import record_failures
from lakehouse.job_summary import JobSummary
from lakehouse.spark import session_for

JOB = "record_failure"


def _record(args, cfg) -> JobSummary:  # noqa: ANN001
    spark = session_for(cfg.s3_endpoint, JOB)
    written = record_failures(spark, cfg.resolved_root, args.failures, args.execution_id, args.run_id)
    summary = JobSummary(JOB, rows_written=written, details={"execution_id": args.execution_id})
    print(summary.line())
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(JOB, "Append the failed states of a pipeline execution to gold/pipeline_failures.")
    parser.add_argument("--execution-id", "--execution_id", default="local", help="the Step Functions execution ARN")
    parser.add_argument(
        "--failures",
        default="",
        help='JSON: {"<State>": {"Error": …, "Cause": …}}; anything else is recorded as an UnparsableFailures row '
        "with the raw text as its cause (the job still exits 0: the Catch path must not lose the failure)",
    )
    return run_job(JOB, parser, _record, argv)


if __name__ == "__main__":
    sys.exit(main())
