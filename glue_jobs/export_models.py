"""Glue job: publish the best model per task of a training run under gold/models/<version>/."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.jobs import export_models

JOB = export_models.JOB


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(
        JOB,
        "Pick the best model per task of a training run, promote it only if it beats its baseline, write "
        "gold/models/<version>/ (ONNX + native + manifest with sha256), verify it, then switch gold/models/latest.",
    )
    parser.add_argument(
        "--model-version", "--model_version", default=None, help="training run to publish (default: the newest)"
    )
    return run_job(export_models, parser, argv, options=lambda args: {"model_version": args.model_version})


if __name__ == "__main__":
    sys.exit(main())
