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

from lakehouse.config import ConfigError, add_config_arguments, config_from
from lakehouse.conflicts import ConflictsExhausted, retry_on_conflict
from lakehouse.job_summary import JobFailed, JobSummary
from lakehouse.sources import SourceError
from lakehouse.spark import SparkSetupError, session_for

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
    job: ModuleType,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None = None,
    *,
    options: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
) -> int:
    """Parse, print the effective config, run the job, print its summary once, and map known
    failures to exit code 1.

    `job` is the job's module in lakehouse/jobs (its JOB and `run`); `options` maps the parsed
    arguments to the job's own keyword options. A run that loses a Delta commit race to another writer
    is run again from the start (lakehouse/conflicts.py), at most a few times."""
    name = job.JOB
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"[{name}] ignoring arguments not meant for this job: {' '.join(ignored)}", file=sys.stderr)
    started = time.monotonic()
    _LAST_FAILURE.message = None
    try:
        cfg = config_from(args)
        print(f"[{name}] {cfg.describe()}")
        spark = session_for(cfg.s3_endpoint, name)
        summary: JobSummary = retry_on_conflict(
            lambda: job.run(
                spark,
                cfg,
                run_id=args.run_id,
                now=datetime.now(UTC),
                log=print,
                **(options(args) if options else {}),
            ),
            what=name,
            log=print,
        )
        print(summary.line(), file=sys.stdout)
    except (ConfigError, SourceError, SparkSetupError, JobFailed, ConflictsExhausted) as exc:
        print(f"[{name}] FAILED: {exc}", file=sys.stderr)
        _LAST_FAILURE.message = f"{type(exc).__name__}: {exc}"
        return 1
    print(f"[{name}] done in {time.monotonic() - started:.1f}s")
    return 0
