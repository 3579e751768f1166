"""Run the pipeline's jobs locally, in one process so they share one SparkSession.

Interim runner: it calls each Glue entry script's `main` in order and stops at the first
failure. The orchestration issue replaces the fixed sequence with the ASL definition executed
through moto's Step Functions interpreter; the job entry points stay the same.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from glue_jobs import build_features, build_silver, ingest_candles

STEPS = (("Ingest", ingest_candles.main), ("BuildSilver", build_silver.main), ("BuildFeatures", build_features.main))


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

    inventory_main(argv)
    print(f"pipeline SUCCEEDED in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
