"""Glue job: fetch candles from a source and append them to bronze/candles (incremental)."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.ingest import run_ingest
from lakehouse.spark import session_for

JOB = "ingest_candles"


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(JOB, "Source → bronze/candles. Only bars newer than each series' watermark are appended.")
    return run_job(JOB, parser, lambda args, cfg: run_ingest(session_for(cfg.s3_endpoint, JOB), cfg), argv)


if __name__ == "__main__":
    sys.exit(main())
