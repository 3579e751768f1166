"""Glue job: validate unprocessed bronze batches, MERGE them into silver/candles, quarantine the rest."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.silver_build import run_build_silver
from lakehouse.spark import session_for

JOB = "build_silver"


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(JOB, "bronze/candles → silver/candles (MERGE) + silver/candles_quarantine.")
    parser.add_argument(
        "--full-refresh",
        "--full_refresh",
        action="store_true",
        help="reprocess every bronze batch, not only new ones (idempotent)",
    )
    return run_job(
        JOB,
        parser,
        lambda args, cfg: run_build_silver(
            session_for(cfg.s3_endpoint, JOB), cfg, full_refresh=args.full_refresh, run_id=args.run_id
        ),
        argv,
    )


if __name__ == "__main__":
    sys.exit(main())
