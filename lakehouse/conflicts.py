"""Delta's optimistic concurrency, handled: a write that lost a race is retried from its read.

Two drivers that write one table (the daily pipeline and a backfill started by hand, the pipeline and
the weekly maintenance) each commit optimistically; the second to commit finds the first's commit
in its way and Delta raises one of the conflict exceptions below. Nothing of the loser is committed,
so the job can start again: it re-reads the table (its MERGE source may now be different, its
"already processed" bookkeeping may say there is nothing left to do) and writes again. That is why
the retry is of the whole job body (read → compute → write), never of the bare write call, and why
every job is idempotent (lakehouse/jobs/__init__.py).

The retry makes conflicts survivable; it does not make two drivers' commits safe on S3. Delta's
default S3 log store lets two drivers both "win" the same log version there (S3 had no put-if-absent
when it was written); `spark.py` switches s3:// and s3a:// roots to the DynamoDB log store, which
serialises the commit itself (docs/operations.md).

In Python the conflict exceptions share no base class (each subclasses CapturedException
directly, delta-spark 3.3): the tuple is the only way to catch exactly them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    MetadataChangedException,
    ProtocolChangedException,
)

CONFLICTS: tuple[type[Exception], ...] = (
    ConcurrentAppendException,
    ConcurrentDeleteReadException,
    ConcurrentDeleteDeleteException,
    MetadataChangedException,
    ProtocolChangedException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
)

ATTEMPTS = 4
"""Tries in all. Conflicts come from a handful of writers: a fourth loss in a row is a bug or a stuck writer."""

T = TypeVar("T")


class ConflictsExhausted(RuntimeError):
    """Every attempt lost a commit race; the message names the last conflict."""


def retry_on_conflict(
    action: Callable[[], T],
    *,
    what: str,
    log: Callable[[str], object],
    attempts: int = ATTEMPTS,
    base_delay_s: float = 2.0,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Run `action` (a whole read-compute-write) until it commits without a conflict, at most `attempts`
    times; between tries wait `base_delay_s · 2^k` with full jitter (so two losers do not collide again).

    Only Delta's conflicts are retried: any other error is the action's own and propagates at once."""
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except CONFLICTS as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            conflict = f"{type(exc).__name__}: {first_line}"[:300]
            if attempt == attempts:
                raise ConflictsExhausted(f"{what}: lost {attempts} commit race(s) in a row, last {conflict}") from exc
            wait = random.uniform(0, base_delay_s * 2 ** (attempt - 1))
            log(f"[{what}] attempt {attempt}/{attempts} lost a commit race ({conflict}); retrying in {wait:.1f}s")
            sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises
