"""Glue job: validate unprocessed bronze batches, MERGE them into silver/candles, quarantine the rest."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.jobs import build_silver

JOB = build_silver.JOB


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(JOB, "bronze/candles → silver/candles (MERGE) + silver/candles_quarantine.")
    parser.add_argument(
        "--full-refresh",
        "--full_refresh",
        action="store_true",
        help="reprocess every bronze batch, not only new ones (idempotent)",
    )
    return run_job(build_silver, parser, argv, options=lambda args: {"full_refresh": args.full_refresh})


if __name__ == "__main__":
    sys.exit(main())
