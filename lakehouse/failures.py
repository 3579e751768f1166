"""gold/pipeline_failures: one row per failed pipeline execution, written by the state machine's
Catch path, so "what failed last night, and why" is an Athena query, not a console hunt."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from lakehouse import delta_io
from lakehouse.tables import GOLD_PIPELINE_FAILURES


def failure_rows(failures_json: str, execution_id: str, run_id: str | None, now: datetime) -> list[dict[str, Any]]:
    """One row per failed state in the Catch output `{"<State>": {"Error": …, "Cause": …}, …}`.

    The Cause of a failed Glue run is the GetJobRun JSON; its ErrorMessage (the job's own
    "ErrorType: message") is pulled out as `message` so a reader does not have to parse it."""
    try:
        failures = json.loads(failures_json) if failures_json else {}
    except json.JSONDecodeError:
        failures = {"unknown": {"Error": "unparseable", "Cause": failures_json}}
    rows = []
    for state, body in (failures or {}).items():
        cause = str((body or {}).get("Cause", ""))
        try:
            message = json.loads(cause).get("ErrorMessage") or cause
        except (json.JSONDecodeError, AttributeError):
            message = cause
        rows.append(
            {
                "execution_id": execution_id,
                "run_id": run_id,
                "state": state,
                "error": str((body or {}).get("Error", "")),
                "message": message[:4000],
                "cause": cause,
                "failed_at": now,
            }
        )
    return rows


def record_failures(spark, root: str, failures_json: str, execution_id: str, run_id: str | None) -> int:  # noqa: ANN001
    rows = failure_rows(failures_json, execution_id, run_id, datetime.now(UTC))
    if not rows:
        rows = failure_rows('{"unknown": {"Error": "no failure passed"}}', execution_id, run_id, datetime.now(UTC))
    df = spark.createDataFrame(rows, GOLD_PIPELINE_FAILURES.schema)
    return delta_io.append(spark, df, GOLD_PIPELINE_FAILURES, root).rows_inserted
