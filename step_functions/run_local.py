"""Run the pipeline's jobs locally, in one process so they share one SparkSession.

Interim runner: it calls each Glue entry script's `main` in order and stops at the first
failure. The orchestration issue replaces the fixed sequence with the ASL definition executed
through moto's Step Functions interpreter; the job entry points stay the same.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from glue_jobs import build_features, build_silver, export_models, ingest_candles, train_models
from lakehouse.config import add_config_arguments, config_from

STEPS = (
    ("Ingest", ingest_candles.main),
    ("BuildSilver", build_silver.main),
    ("BuildFeatures", build_features.main),
    ("Train", train_models.main),
    ("Export", export_models.main),
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--run-id" not in argv:
        argv += ["--run-id", f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-local"]
    started = time.monotonic()
    for name, step in STEPS:
        step_started = time.monotonic()
        print(f"==> {name}")
        code = step(argv)
        print(f"<== {name}: {'SUCCEEDED' if code == 0 else 'FAILED'} in {time.monotonic() - step_started:.1f}s")
        if code != 0:
            return code
    from lakehouse.inventory import main as inventory_main
    from lakehouse.ml.export import describe_latest

    inventory_main(argv)
    cfg = config_from(add_config_arguments(argparse.ArgumentParser()).parse_known_args(argv)[0])
    print(describe_latest(cfg.resolved_root))
    print(f"pipeline SUCCEEDED in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
