"""Start the pipeline and report on it: StartExecution on AWS, the local runner elsewhere.

On AWS (CANDLELAKE_STATE_MACHINE_ARN set) a run is a Step Functions execution and its status is
DescribeExecution's. Locally a run is `python -m step_functions.run_local` in a background process
writing `<lake>/runs/<id>.log`; the runner saves `<lake>/runs/<id>.json` (status, states) when it
ends, which is where the status comes from after the process exits — or after this API restarts.
One local run at a time: two pipelines on one lake on a laptop only slow each other down. A run
this API did not start (`make run` in a terminal) holds the lake's run lock (lakecontract/lake_lock.py):
a POST then answers 409 `lake_busy` naming that run, at once.

On AWS a run rewrites the production lake and, through export, the model the API serves, so the
API's readers may not start one: only a signed caller whose IAM ARN matches an operator pattern
(`require_operator`), and not while another execution of the pipeline is RUNNING. Two requests in
the same instant can still both pass that check; the Glue jobs' MaxConcurrentRuns of 1 then fails
the second execution's first job rather than letting two write the lake at once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from lakecontract import lake_lock
from lakecontract.constants import RUNS_DIR
from serving.api_error import ApiError


class RunError(ApiError):
    """A pipeline run cannot be started or found."""


def new_run_id() -> str:
    return f"api-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)


class AwsRuns:
    mode: Literal["aws"] = "aws"

    def __init__(self, state_machine_arn: str) -> None:
        import boto3

        self.arn = state_machine_arn
        region = state_machine_arn.split(":")[3]
        self.client: Any = boto3.client("stepfunctions", region_name=region)

    def _execution_arn(self, run_id: str) -> str:
        prefix, _, machine = self.arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{run_id}"

    def start(self, run_id: str, execution_input: dict[str, str]) -> dict[str, Any]:
        running = self.client.list_executions(stateMachineArn=self.arn, statusFilter="RUNNING", maxResults=10)
        others = [e for e in running["executions"] if e["name"] != run_id]  # the same name: idempotent retry
        if others:
            raise RunError(
                409,
                "run_in_progress",
                f"pipeline run {others[0]['name']} is running (since {_iso(others[0].get('startDate'))}); "
                "start another when it has finished, or stop it in the Step Functions console",
            )
        try:
            out = self.client.start_execution(stateMachineArn=self.arn, name=run_id, input=json.dumps(execution_input))
        except self.client.exceptions.ExecutionAlreadyExists:
            raise RunError(409, "run_exists", f"an execution named {run_id} already exists") from None
        return {
            "id": run_id,
            "status": "RUNNING",
            "mode": self.mode,
            "started_at": _iso(out["startDate"]),
            "execution_arn": out["executionArn"],
            "input": execution_input,
        }

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest executions of the pipeline machine (ListExecutions: newest first)."""
        listed = self.client.list_executions(stateMachineArn=self.arn, maxResults=min(limit, RECENT_MAX))
        return [
            _summary(
                e["name"],
                e["status"],
                self.mode,
                started_at=_iso(e.get("startDate")),
                stopped_at=_iso(e.get("stopDate")),
                execution_arn=e["executionArn"],
            )
            for e in listed["executions"]
        ]

    def get(self, run_id: str) -> dict[str, Any]:
        try:
            d = self.client.describe_execution(executionArn=self._execution_arn(run_id))
        except self.client.exceptions.ExecutionDoesNotExist:
            raise RunError(404, "unknown_run", f"no pipeline run {run_id}") from None
        return {
            "id": run_id,
            "status": d["status"],
            "mode": self.mode,
            "started_at": _iso(d.get("startDate")),
            "stopped_at": _iso(d.get("stopDate")),
            "execution_arn": d["executionArn"],
            "error": d.get("error"),
            "cause": d.get("cause"),
            "input": json.loads(d["input"]) if d.get("input") else None,
        }


RECENT_MAX = 50


def _isoformat(text: str) -> str:
    """One spelling of a time (the runner's history writes `2026-12-01 10:40:43+00:00`), so that runs
    sort by it as text."""
    try:
        return datetime.fromisoformat(str(text)).isoformat()
    except ValueError:
        return str(text)


def _summary(run_id: str, status: str, mode: str, **fields: Any) -> dict[str, Any]:
    return {"id": run_id, "status": status, "mode": mode, **{k: v for k, v in fields.items() if v is not None}}


def _read_history(path: Path) -> dict[str, Any]:
    """The runner's history file, or — when it is cut short (the runner killed while writing it) or
    not the runner's shape — a FAILED document that says so: a status request never gets a 500."""
    try:
        doc = json.loads(path.read_text())
        if isinstance(doc, dict) and isinstance(doc.get("status"), str):
            return doc
        problem = "has no status"
    except (OSError, ValueError) as exc:
        problem = f"cannot be read: {exc}"
    return {"status": "FAILED", "error": "HistoryUnreadable", "cause": f"the run's history {path} {problem}"}


@dataclass
class _LocalRun:
    process: subprocess.Popen
    started_at: str
    input: dict[str, str]
    log: Path


class LocalRuns:
    """Development only: needs a local lake folder and the full pipeline environment."""

    mode: Literal["local"] = "local"

    def __init__(self, lake_root: str) -> None:
        self.root = Path(lake_root)
        self.runs: dict[str, _LocalRun] = {}
        self._lock = threading.Lock()

    def _command(self, run_id: str, fields: dict[str, str]) -> list[str]:
        cmd = [sys.executable, "-m", "step_functions.run_local", "--lake-root", str(self.root), "--name", run_id]
        for key, value in fields.items():
            flag = key.replace("_", "-")
            cmd += [f"--{flag}", value]
        return cmd

    def _check_local(self) -> None:
        """An s3:// lake root with no state machine ARN (a Lambda misconfigured): nothing can run it."""
        if str(self.root).startswith("s3"):
            raise RunError(
                503, "pipeline_unavailable", "local runs need a local lake folder; set CANDLELAKE_STATE_MACHINE_ARN"
            )

    def start(self, run_id: str, execution_input: dict[str, str]) -> dict[str, Any]:
        self._check_local()
        with self._lock:
            for other_id, run in self.runs.items():
                if run.process.poll() is None:
                    raise RunError(409, "run_in_progress", f"pipeline run {other_id} is still running")
            try:  # a run this API did not start (`make run` in a terminal) holds the lake: refuse now, not later
                lake_lock.refuse_if_held(str(self.root))
            except lake_lock.LakeBusy as busy:
                raise RunError(409, "lake_busy", str(busy)) from None
            if run_id in self.runs or (self.root / RUNS_DIR / f"{run_id}.json").exists():
                raise RunError(409, "run_exists", f"a pipeline run named {run_id} already exists")
            log = self.root / RUNS_DIR / f"{run_id}.log"
            try:
                log.parent.mkdir(parents=True, exist_ok=True)
                with log.open("wb") as out:
                    process = subprocess.Popen(
                        self._command(run_id, execution_input),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,  # survives a Ctrl-C of `make serve`'s terminal
                    )
            except OSError as exc:  # the lake folder cannot hold runs/, or the runner cannot start
                raise RunError(
                    503, "pipeline_unavailable", f"cannot start a local run in {log.parent}: {exc.strerror or exc}"
                ) from None
            run = _LocalRun(process, datetime.now(UTC).isoformat(), execution_input, log)
            self.runs[run_id] = run
        return {
            "id": run_id,
            "status": "RUNNING",
            "mode": self.mode,
            "started_at": run.started_at,
            "input": execution_input,
            "log": str(log),
        }

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The runs this process started and every history the runner saved under <lake>/runs/,
        newest first (by start time, else by when the history was written)."""
        self._check_local()
        found: dict[str, dict[str, Any]] = {}
        folder = self.root / RUNS_DIR
        for path in folder.glob("*.json") if folder.is_dir() else []:
            doc = _read_history(path)
            states = doc.get("states") or [{}]
            started = states[0].get("started") if isinstance(states[0], dict) else None
            when = _isoformat(started) if started else datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat()
            found[path.stem] = _summary(path.stem, doc["status"], self.mode, started_at=when, error=doc.get("error"))
        with self._lock:
            mine = list(self.runs.items())
        for run_id, run in mine:
            if run.process.poll() is None or run_id not in found:
                found[run_id] = _summary(run_id, self.get(run_id)["status"], self.mode, started_at=run.started_at)
        newest = sorted(found.values(), key=lambda r: r.get("started_at") or "", reverse=True)
        return newest[: min(limit, RECENT_MAX)]

    def get(self, run_id: str) -> dict[str, Any]:
        self._check_local()
        history = self.root / RUNS_DIR / f"{run_id}.json"
        run = self.runs.get(run_id)
        if run is not None and run.process.poll() is None:
            return {
                "id": run_id,
                "status": "RUNNING",
                "mode": self.mode,
                "started_at": run.started_at,
                "input": run.input,
                "log": str(run.log),
            }
        if history.is_file():
            doc = _read_history(history)
            return {
                "id": run_id,
                "status": doc["status"],
                "mode": self.mode,
                "execution_arn": doc.get("arn"),
                "error": doc.get("error"),
                "cause": doc.get("cause"),
                "input": doc.get("input"),
                "started_at": run.started_at if run else None,
                "states": doc.get("states"),
                "log": str(self.root / RUNS_DIR / f"{run_id}.log"),
            }
        if run is not None:  # exited without a history: it failed before or outside the state machine
            tail = run.log.read_text(errors="replace").strip().splitlines()[-5:] if run.log.is_file() else []
            return {
                "id": run_id,
                "status": "FAILED",
                "mode": self.mode,
                "started_at": run.started_at,
                "input": run.input,
                "error": f"runner exited with code {run.process.returncode}",
                "cause": "\n".join(tail),
                "log": str(run.log),
            }
        raise RunError(404, "unknown_run", f"no pipeline run {run_id}")


def caller_arn(scope: Mapping[str, Any]) -> str | None:
    """The IAM ARN a Function URL (auth AWS_IAM) or an HTTP API IAM authorizer signed the request
    with, from the Lambda event Mangum keeps in the ASGI scope; None when unsigned or not on Lambda."""
    event = scope.get("aws.event") or {}
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    return (authorizer.get("iam") or {}).get("userArn")


def require_operator(scope: Mapping[str, Any], operators: tuple[str, ...]) -> None:
    """Refuse (403) a caller who may read the API but is not an operator."""
    if not operators:
        raise RunError(
            403,
            "runs_not_allowed",
            "starting pipeline runs through the API is off: no operator is configured "
            "(CANDLELAKE_OPERATOR_ARNS; deploy with -c operator_arns=<IAM ARN patterns>)",
        )
    caller = caller_arn(scope)
    if caller is None or not any(fnmatchcase(caller, pattern) for pattern in operators):
        raise RunError(
            403,
            "not_an_operator",
            f"{caller or 'an unsigned caller'} may read the API but not start pipeline runs "
            "(operators: CANDLELAKE_OPERATOR_ARNS)",
        )
