"""Glue job: silver/candles → gold/features_<interval>, validated by the gold quality suite."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.jobs import build_features

JOB = build_features.JOB


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(
        JOB, "silver/candles → gold/features_<interval> (MERGE on symbol, ts); halts on a failed halt-tier expectation."
    )
    return run_job(build_features, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
