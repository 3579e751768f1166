"""gold/pipeline_failures: one row per failed pipeline execution, written by the state machine's
Catch path (lakehouse/jobs/record_failure.py), so "what failed last night, and why" is an Athena
query, not a console hunt. The rows are built here in plain Python, so every input shape is testable
without Spark."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

# Error names of the rows written when the input itself is wrong. The job records them instead of
# failing: it runs on the Catch path, so a crash here would lose the one record of what went wrong.
UNPARSABLE = "UnparsableFailures"
NO_FAILURE = "NoFailurePassed"
UNKNOWN_STATE = "unknown"
MESSAGE_CHARS = 4000


def _as_text(value: Any) -> str:
    """A Cause is a string on AWS; anything else is kept whole as JSON rather than as a Python repr."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _glue_message(cause: str) -> str:
    """The Cause of a failed Glue run is the GetJobRun JSON: its ErrorMessage ("ErrorType: message")."""
    try:
        body = json.loads(cause)
    except json.JSONDecodeError:
        return cause
    message = body.get("ErrorMessage") if isinstance(body, dict) else None
    return message if isinstance(message, str) and message else cause


def _parsed(failures_json: str) -> tuple[dict[str, Any] | None, str]:
    """The Catch output as a dict, or None and why it is not one."""
    try:
        failures = json.loads(failures_json)
    except json.JSONDecodeError as exc:
        return None, f"--failures is not JSON ({exc})"
    if not isinstance(failures, dict):
        return None, f"--failures is JSON but not an object of states (a {type(failures).__name__})"
    return failures, ""


def failure_rows(failures_json: str, execution_id: str, run_id: str | None, now: datetime) -> list[dict[str, Any]]:
    """One row per failed state in the Catch output `{"<State>": {"Error": …, "Cause": …}, …}`.

    The Cause of a failed Glue run is the GetJobRun JSON; its ErrorMessage (the job's own
    "ErrorType: message") is pulled out as `message` so a reader does not have to parse it.
    Input that is not that shape loses nothing: an unparsable text becomes one row of state
    "unknown", error `UnparsableFailures` and the raw text as its cause; a state whose body is not
    an {Error, Cause} object keeps its state name with the body as the cause; no input at all is
    one `NoFailurePassed` row (the Catch path ran, so something failed)."""
    entries: list[tuple[str, str, str, str]] = []  # state, error, message, cause
    if not failures_json.strip():
        entries.append((UNKNOWN_STATE, NO_FAILURE, f"{NO_FAILURE}: --failures was empty", ""))
    else:
        failures, why = _parsed(failures_json)
        if failures is None:
            message = f"{UNPARSABLE}: {why}; the raw text is the cause"
            entries.append((UNKNOWN_STATE, UNPARSABLE, message, failures_json))
        elif not failures:
            entries.append((UNKNOWN_STATE, NO_FAILURE, f"{NO_FAILURE}: --failures named no state", failures_json))
        for state, body in (failures or {}).items():
            if isinstance(body, dict):
                cause = _as_text(body.get("Cause"))
                entries.append((str(state), _as_text(body.get("Error")), _glue_message(cause), cause))
            else:
                why = f"{UNPARSABLE}: the failure of {state!r} is not an object with Error and Cause"
                entries.append((str(state), UNPARSABLE, why, _as_text(body)))
    return [
        {
            "execution_id": execution_id,
            "run_id": run_id,
            "state": state,
            "error": error,
            "message": message[:MESSAGE_CHARS],
            "cause": cause,
            "failed_at": now,
        }
        for state, error, message, cause in entries
    ]
