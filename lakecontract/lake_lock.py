"""One pipeline run at a time per lake: the second is refused at once, naming the run that holds it.

Two executions on one lake (a `make run` while the API's `POST /pipeline/runs` starts another, two
terminals) would each ingest the same bars under their own batch ids and race each other's MERGEs.
Delta keeps every commit consistent (and the jobs retry a lost race, lakehouse/conflicts.py), but the
two runs would still do everything twice and could publish in either order. So a run first creates
`<lake>/_locks/pipeline.json` with an atomic create-if-absent (O_EXCL locally, a conditional PUT on
S3), and deletes it when it ends; a run that finds it there stops before any job runs, with the
holder's run id, host, process id and start time in the message.

A holder that died without cleaning up (SIGKILL, a lost machine) leaves the file behind. On the same
host a dead process id is proof, and the lock is taken over. Elsewhere nothing can be proven: the
message says how old the lock is and which file to delete once the holder is known to be gone.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from lakecontract.objectstore import ObjectNotFound, ObjectStore

LOCKS_DIR = "_locks"
PIPELINE_LOCK = "pipeline.json"


class LakeBusy(RuntimeError):
    """Another run holds the lake; the message names it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _stale(holder: dict[str, Any]) -> bool:
    """Provably dead: recorded on this host by a process that no longer exists."""
    return holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", -1)))


def holder_of(root: str, *, endpoint: str | None = None) -> dict[str, Any] | None:
    """The record of the run holding the lake, or None when it is free."""
    try:
        return json.loads(ObjectStore(root, LOCKS_DIR, endpoint=endpoint).read(PIPELINE_LOCK))
    except ObjectNotFound:
        return None


def _describe(holder: dict[str, Any], store: ObjectStore, now: datetime) -> str:
    started = holder.get("started_at", "?")
    try:
        age = f"{(now - datetime.fromisoformat(started)).total_seconds() / 60:.0f} min ago"
    except (TypeError, ValueError):
        age = "at an unknown time"
    return (
        f"the lake is held by run {holder.get('run')!r} (host {holder.get('host')}, pid {holder.get('pid')}, "
        f"started {started}, {age}); wait for it to end, or, if it is gone for good, delete "
        f"{store.uri(PIPELINE_LOCK)}"
    )


def refuse_if_held(root: str, *, endpoint: str | None = None, now: datetime | None = None) -> None:
    """Raise LakeBusy when a live run holds the lake: for a caller that starts a run elsewhere (the API
    starts the runner in a process of its own, which takes the lock) and must answer now."""
    holder = holder_of(root, endpoint=endpoint)
    if holder is not None and not _stale(holder):
        store = ObjectStore(root, LOCKS_DIR, endpoint=endpoint)
        raise LakeBusy(_describe(holder, store, now or datetime.now(UTC)))


@contextmanager
def holding(root: str, run: str, *, endpoint: str | None = None, now: datetime | None = None) -> Iterator[None]:
    """Hold the lake for `run` inside the block; raise LakeBusy at once when another run holds it."""
    store = ObjectStore(root, LOCKS_DIR, endpoint=endpoint)
    record = {
        "run": run,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started_at": (now or datetime.now(UTC)).isoformat(),
    }
    text = json.dumps(record)
    if not store.create(PIPELINE_LOCK, text):
        refuse_if_held(root, endpoint=endpoint, now=now)
        # Freed meanwhile, or left by a dead process of this host: one more try, which can still lose to
        # a third run (then that one holds it, and we say so).
        store.delete(PIPELINE_LOCK)
        if not store.create(PIPELINE_LOCK, text):
            raise LakeBusy(_describe(holder_of(root, endpoint=endpoint) or {}, store, now or datetime.now(UTC)))
    try:
        yield
    finally:
        current = holder_of(root, endpoint=endpoint)
        if current is not None and current.get("run") == run and current.get("pid") == os.getpid():
            store.delete(PIPELINE_LOCK)
