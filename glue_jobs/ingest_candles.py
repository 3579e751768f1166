"""Glue job: fetch candles from a source and append them to bronze/candles (incremental)."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.jobs import ingest_candles

JOB = ingest_candles.JOB


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(JOB, "Source → bronze/candles. Only bars newer than each series' watermark are appended.")
    return run_job(ingest_candles, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
