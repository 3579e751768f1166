"""What every Glue entry script shares: argument parsing, the printed config, the Spark session,
the one printed summary line and the exit code. The job's body is `lakehouse/jobs/<job>.py`'s `run`.

We parse with argparse on Glue too (`parse_known_args`): Glue passes job parameters as
`--name value` pairs, which argparse reads, and adds its own (`--JOB_NAME`, `--job-bookmark-option`, …),
which we ignore. `getResolvedOptions` would make every optional flag mandatory.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from lakehouse.config import ConfigError, LakeConfig, add_config_arguments, config_from
from lakehouse.job_summary import JobFailed, JobSummary
from lakehouse.sources import SourceError
from lakehouse.spark import SparkSetupError

# "ErrorType: message" of the last job that failed in this thread. The local Step Functions
# runner (one thread per Glue run) reports it as the run's ErrorMessage, as Glue does with a
# script's exception.
_LAST_FAILURE = threading.local()


def last_failure() -> str | None:
    return getattr(_LAST_FAILURE, "message", None)


def parser_for(job: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m glue_jobs.{job}", description=description)
    parser.add_argument(
        "--run-id", "--run_id", default=None, help="pipeline run id, recorded with data-quality results and reports"
    )
    return add_config_arguments(parser)


def run_job(
    job: str | ModuleType,
    parser: argparse.ArgumentParser,
    body: Callable[[argparse.Namespace, LakeConfig], JobSummary] | Sequence[str] | None = None,
    argv: Sequence[str] | None = None,
    *,
    options: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
) -> int:
    """Parse, print the effective config, run the job, print its summary once, and map known
    failures to exit code 1.

    `job` is the job's module in lakehouse/jobs (its JOB and `run`): `run_job(module, parser, argv,
    options=lambda args: {...})` with the job's own options taken from the parsed arguments.
    (Transitional: a job name and a `body(args, cfg)` callable are still accepted.)"""
    if isinstance(job, ModuleType):
        module = job
        argv = body if not callable(body) else argv  # type: ignore[assignment]
        job = module.JOB

        def body(args: argparse.Namespace, cfg: LakeConfig) -> JobSummary:
            from lakehouse.spark import session_for

            summary = module.run(
                session_for(cfg.s3_endpoint, module.JOB),
                cfg,
                run_id=args.run_id,
                now=datetime.now(UTC),
                log=print,
                **(options(args) if options else {}),
            )
            print(summary.line(), file=sys.stdout)
            return summary

    assert isinstance(job, str) and callable(body)
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"[{job}] ignoring arguments not meant for this job: {' '.join(ignored)}", file=sys.stderr)
    started = time.monotonic()
    _LAST_FAILURE.message = None
    try:
        cfg = config_from(args)
        print(f"[{job}] {cfg.describe()}")
        body(args, cfg)
    except (ConfigError, SourceError, SparkSetupError, JobFailed) as exc:
        print(f"[{job}] FAILED: {exc}", file=sys.stderr)
        _LAST_FAILURE.message = f"{type(exc).__name__}: {exc}"
        return 1
    print(f"[{job}] done in {time.monotonic() - started:.1f}s")
    return 0
