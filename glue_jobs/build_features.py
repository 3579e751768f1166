"""Glue job: silver/candles → gold/features_<interval>, validated by the gold quality suite."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.gold_build import run_build_features
from lakehouse.spark import session_for

JOB = "build_features"


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(
        JOB, "silver/candles → gold/features_<interval> (MERGE on symbol, ts); halts on a failed halt-tier expectation."
    )
    return run_job(
        JOB,
        parser,
        lambda args, cfg: run_build_features(session_for(cfg.s3_endpoint, JOB), cfg, run_id=args.run_id),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
