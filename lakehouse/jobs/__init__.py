"""One module per Glue job, named as the job is (`lakehouse/jobs/<glue job name>.py`): the job's body.

Every module has the same shape, so a reader who has seen one has seen the frame of all seven:

    JOB = "<glue job name>"

    def run(spark: SparkSession, cfg: LakeConfig, *, run_id: str | None, now: datetime,
            log: Callable[[str], None], **job_options) -> JobSummary: ...

`run` does the work and returns its JobSummary; it prints nothing itself (`log` carries progress
lines). Job options beyond the shared lake settings (silver's `full_refresh`, training's settings)
are keyword arguments with defaults, so a caller that knows only the frame can run any job.
`glue_jobs/_entry.py` parses the arguments, builds the Spark session, calls `run` and prints the
summary line once; tests call `run` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.config import LakeConfig
    from lakehouse.job_summary import JobSummary

Log = Callable[[str], None]


class JobBody(Protocol):
    """The callable every job module exposes as `run` (its extra keyword options have defaults)."""

    def __call__(
        self, spark: SparkSession, cfg: LakeConfig, *, run_id: str | None, now: datetime, log: Log
    ) -> JobSummary: ...
