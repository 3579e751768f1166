"""Glue job: compact, set retention on and VACUUM every lake table (weekly, the maintenance state machine)."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse import maintenance
from lakehouse.jobs import maintain_tables

JOB = maintain_tables.JOB


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(JOB, "OPTIMIZE (per partition), retention properties and VACUUM of every lake table.")
    parser.add_argument(
        "--retention-hours",
        "--retention_hours",
        type=int,
        default=maintenance.DEFAULT_RETENTION_HOURS,
        help="VACUUM keeps the files of the versions of the last N hours "
        f"(default {maintenance.DEFAULT_RETENTION_HOURS}, the floor; time travel further back is lost)",
    )
    parser.add_argument(
        "--allow-short-retention",
        "--allow_short_retention",
        default="false",
        choices=("true", "false"),
        help="accept a retention under the floor, and the loss of time travel beyond it (default false)",
    )
    parser.add_argument(
        "--tables",
        default="",
        help="comma-separated table names (e.g. silver/candles,gold/features_1d); default every table that exists",
    )
    return run_job(
        maintain_tables,
        parser,
        argv,
        options=lambda args: {
            "retention_hours": args.retention_hours,
            "allow_short_retention": args.allow_short_retention == "true",
            "tables": tuple(t.strip() for t in args.tables.split(",") if t.strip()),
        },
    )


if __name__ == "__main__":
    sys.exit(main())
