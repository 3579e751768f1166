"""Glue job: the state machine's Catch path — record which state failed, with what, in the lake."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.jobs import record_failure

JOB = record_failure.JOB


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(JOB, "Append the failed states of a pipeline execution to gold/pipeline_failures.")
    parser.add_argument("--execution-id", "--execution_id", default="local", help="the Step Functions execution ARN")
    parser.add_argument(
        "--failures",
        default="",
        help='JSON: {"<State>": {"Error": …, "Cause": …}}; anything else is recorded as an UnparsableFailures row '
        "with the raw text as its cause (the job still exits 0: the Catch path must not lose the failure)",
    )
    return run_job(
        record_failure,
        parser,
        argv,
        options=lambda args: {"failures": args.failures, "execution_id": args.execution_id},
    )


if __name__ == "__main__":
    sys.exit(main())
