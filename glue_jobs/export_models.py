"""Glue job: publish the best model per task of a training run under gold/models/<version>/."""

from __future__ import annotations

import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.ml.export import run_export
from lakehouse.spark import session_for

JOB = "export_models"


def _export(args, cfg):  # noqa: ANN001, ANN202
    return run_export(session_for(cfg.s3_endpoint, JOB), cfg, model_version=args.model_version, run_id=args.run_id)


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(
        JOB,
        "Pick the best model per task of a training run, promote it only if it beats its baseline, write "
        "gold/models/<version>/ (ONNX + native + manifest with sha256), verify it, then switch gold/models/latest.",
    )
    parser.add_argument(
        "--model-version", "--model_version", default=None, help="training run to publish (default: the newest)"
    )
    return run_job(JOB, parser, _export, argv)


if __name__ == "__main__":
    sys.exit(main())
