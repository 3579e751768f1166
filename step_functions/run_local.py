"""Run a state-machine definition locally: THE SAME ASL file that is deployed, executed by moto's
Step Functions interpreter, each Glue task running our job in this process (one SparkSession
shared by all steps; see `moto_glue` for how).

    python -m step_functions.run_local [lake flags] [--inject-fault State:times:Error] …

It prints the execution as the console's event list while it runs, then one line per state
(status, duration, attempts, error), saves the whole history as JSON under `<lake>/runs/`, and
ends with a summary of the lake. Exit code 0 when the execution SUCCEEDED, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.config import ConfigError, LakeConfig, add_config_arguments, config_from
from step_functions import definitions
from step_functions.moto_glue import MOTO_CONFIG, LocalGlue, parse_faults

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/candlelake-local"
RUNS_DIR = "runs"
TRAIN_FIELDS = ("interval", "folds", "test_bars", "gap", "epochs", "window")


@dataclass
class StateRow:
    state: str
    kind: str
    started: datetime
    seconds: float | None = None
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    status: str = "RUNNING"


@dataclass
class Execution:
    name: str
    arn: str
    status: str
    error: str | None
    cause: str | None
    input: dict[str, Any]
    output: Any
    events: list[dict[str, Any]]
    states: list[StateRow]
    glue_runs: list[Any]
    retry_sleeps: list[tuple[float, float]]
    seconds: float

    def ran(self, state: str) -> bool:
        return any(r.state == state for r in self.states)

    def row(self, state: str) -> StateRow:
        return next(r for r in self.states if r.state == state)


def execution_input(cfg: LakeConfig, train: dict[str, str] | None = None) -> dict[str, str]:
    """The documented execution input (step_functions/README.md) for this configuration."""
    fields = {
        "lake_root": cfg.resolved_root,
        "source": cfg.source,
        "symbols": ",".join(cfg.symbols),
        "intervals": ",".join(cfg.intervals),
        "start": cfg.start or "",
        "end": cfg.end or "",
        "backfill": "true" if cfg.backfill else "false",
    }
    fields.update({f"train_{k}": str(v) for k, v in (train or {}).items() if v not in (None, "")})
    return fields


def local_jobs() -> dict[str, Any]:
    """Glue job name → its entry point (glue_jobs.<module>.main), imported when first run."""

    def entry(module: str):  # noqa: ANN202
        return lambda argv: importlib.import_module(f"glue_jobs.{module}").main(argv)

    return {definitions.glue_job_name(p): entry(m) for p, m in definitions.GLUE_JOBS.items()}


def summarize(events: list[dict[str, Any]]) -> list[StateRow]:
    """One row per state entered, in order: duration, task attempts, errors, outcome."""
    rows: list[StateRow] = []
    current: StateRow | None = None
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered"):
            current = StateRow(
                event["stateEnteredEventDetails"]["name"], kind[: -len("StateEntered")], event["timestamp"]
            )
            rows.append(current)
        elif current is None:
            continue
        elif kind == "TaskScheduled":
            current.attempts += 1
        elif kind == "TaskFailed":
            current.errors.append(event.get("taskFailedEventDetails", {}).get("error", "?"))
        elif kind.endswith("StateExited") or kind in ("ExecutionFailed", "ExecutionSucceeded", "ExecutionAborted"):
            current.seconds = (event["timestamp"] - current.started).total_seconds()
            failed_last = current.errors and current.attempts == len(current.errors)
            if kind == "ExecutionFailed" or current.kind == "Fail":
                current.status = "FAILED"
            else:
                current.status = "CAUGHT" if failed_last else "SUCCEEDED"
            current = None
    return rows


def _describe(event: dict[str, Any], started: datetime) -> str:
    kind = event["type"]
    at = (event["timestamp"] - started).total_seconds()
    detail = ""
    if "stateEnteredEventDetails" in event:
        detail = event["stateEnteredEventDetails"]["name"]
    elif "stateExitedEventDetails" in event:
        detail = event["stateExitedEventDetails"]["name"]
    elif kind == "TaskFailed":
        d = event.get("taskFailedEventDetails", {})
        detail = f"{d.get('error')}: {_message(d.get('cause', ''))}"
    elif kind == "ExecutionFailed":
        d = event.get("executionFailedEventDetails", {})
        detail = f"{d.get('error')}: {_message(d.get('cause', ''))}"
    return f"  {event['id']:>4}  +{at:7.1f}s  {kind:<22} {detail}"[:220]


def _message(cause: str) -> str:
    """A Glue run's Cause is the GetJobRun JSON; show its ErrorMessage."""
    try:
        body = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        return str(cause)
    if isinstance(body, dict) and "ErrorMessage" in body:
        return body["ErrorMessage"]
    return json.dumps(body)[:200]


def execute(
    definition: Path,
    execution_in: dict[str, Any],
    *,
    jobs: dict[str, Any] | None = None,
    faults: str = "",
    retry_scale: float = 1.0,
    name: str | None = None,
    log=print,
) -> Execution:
    """Run `definition` to completion through moto and return what the console would show."""
    import logging

    import boto3
    from moto import mock_aws

    # moto logs every caught state error (a Choice's IsPresent probe, a Fail state) with the
    # interpreter's internals; the event list below says the same thing readably.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)

    substitutions = {p: definitions.glue_job_name(p) for p in definitions.GLUE_JOBS}
    substitutions["LakeRoot"] = execution_in.get("lake_root", "lake")
    asl = definitions.render(definition, substitutions)
    state_jobs = {s: definitions.glue_job_name(p) for s, p in definitions.STATE_JOBS.items()}
    name = name or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    started_wall = time.monotonic()
    with mock_aws(config=MOTO_CONFIG):
        creds = {"region_name": REGION, "aws_access_key_id": "local", "aws_secret_access_key": "local"}
        glue, sfn = boto3.client("glue", **creds), boto3.client("stepfunctions", **creds)
        for job in substitutions.values():
            if job.startswith("candlelake-"):
                glue.create_job(
                    Name=job,
                    Role=ROLE_ARN,
                    Command={"Name": "glueetl", "ScriptLocation": f"s3://local/{job}.py"},
                    MaxRetries=0,
                    ExecutionProperty={"MaxConcurrentRuns": 1},
                )
        machine = sfn.create_state_machine(name=definition.stem.replace(".", "-"), definition=asl, roleArn=ROLE_ARN)
        with LocalGlue(jobs or local_jobs(), parse_faults(faults, state_jobs), retry_scale) as local:
            arn = sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], name=name, input=json.dumps(execution_in)
            )["executionArn"]
            seen = 0
            began: datetime | None = None
            while True:
                described = sfn.describe_execution(executionArn=arn)
                events = sfn.get_execution_history(executionArn=arn)["events"]
                began = began or (events[0]["timestamp"] if events else None)
                for event in events[seen:]:
                    if event["type"] not in ("TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskSucceeded"):
                        log(_describe(event, began))
                seen = len(events)
                if described["status"] != "RUNNING":
                    break
                time.sleep(1.0)
            events = sfn.get_execution_history(executionArn=arn)["events"]
        output = json.loads(described["output"]) if described.get("output") else None
    return Execution(
        name,
        arn,
        described["status"],
        described.get("error"),
        described.get("cause"),
        execution_in,
        output,
        events,
        summarize(events),
        local.runs,
        local.retry_sleeps,
        time.monotonic() - started_wall,
    )


def state_table(execution: Execution) -> str:
    lines = [f"  {'state':<18} {'type':<7} {'status':<9} {'seconds':>8} {'attempts':>8}  error"]
    for r in execution.states:
        seconds = "" if r.seconds is None else f"{r.seconds:.1f}"
        attempts = str(r.attempts) if r.kind == "Task" else ""
        errors = ", ".join(r.errors)
        lines.append(f"  {r.state:<18} {r.kind:<7} {r.status:<9} {seconds:>8} {attempts:>8}  {errors}")
    return "\n".join(lines)


def save_history(execution: Execution, root: str) -> str:
    """`<lake>/runs/<execution name>.json`: status, input, output, per-state rows, every event."""
    from lakehouse.objectstore import ObjectStore

    document = {
        "execution": execution.name,
        "arn": execution.arn,
        "status": execution.status,
        "error": execution.error,
        "cause": execution.cause,
        "seconds": round(execution.seconds, 1),
        "input": execution.input,
        "output": execution.output,
        "states": [r.__dict__ for r in execution.states],
        "glue_runs": [r.__dict__ for r in execution.glue_runs],
        "events": execution.events,
    }
    return ObjectStore(root, RUNS_DIR).write(
        f"{execution.name}.json", json.dumps(document, indent=1, default=str), "application/json"
    )


def print_summary(cfg: LakeConfig, run_id: str) -> None:
    from lakehouse.inventory import format_inventory, inventory
    from lakehouse.ml.export import describe_latest
    from lakehouse.quality.report import latest_report
    from lakehouse.spark import session_for

    spark = session_for(cfg.s3_endpoint, "run_local")
    root = cfg.resolved_root
    print(format_inventory(root, inventory(spark, root)))
    from lakehouse import delta_io
    from lakehouse.tables import GOLD_DQ_RESULTS

    if delta_io.exists(spark, GOLD_DQ_RESULTS, root):
        dq = delta_io.read(spark, GOLD_DQ_RESULTS, root).where(f"run_id = '{run_id}'")
        counts = {(r.tier, r.success): r["count"] for r in dq.groupBy("tier", "success").count().collect()}
        failed = ", ".join(f"{t} {counts.get((t, False), 0)}" for t in ("warn", "quarantine", "halt"))
        total = sum(counts.values())
        print(f"data quality: {total} expectation result(s) this run; failed: {failed}; report: {latest_report(root)}")
    print(describe_latest(root))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m step_functions.run_local", description=__doc__.split("\n\n")[0])
    add_config_arguments(parser)
    parser.add_argument(
        "--definition",
        default=str(definitions.PIPELINE),
        help="ASL file to run (default: the daily pipeline; step_functions/ingest_intraday.asl.json for intraday)",
    )
    parser.add_argument(
        "--inject-fault",
        default=os.environ.get("CANDLELAKE_INJECT_FAULT", ""),
        metavar="STATE:TIMES:ERROR",
        help="make a state's Glue job fail TIMES times with ERROR (Glue.<Exception> or States.TaskFailed), "
        "e.g. BuildFeatures:2:Glue.ConcurrentRunsExceededException [env CANDLELAKE_INJECT_FAULT]",
    )
    parser.add_argument(
        "--retry-wait-scale",
        type=float,
        default=float(os.environ.get("CANDLELAKE_RETRY_WAIT_SCALE", "1.0")),
        help="multiply the ASL's Retry waits (1 = as on AWS, 0 = no waiting) [env CANDLELAKE_RETRY_WAIT_SCALE]",
    )
    parser.add_argument("--name", default=None, help="execution name (default: UTC time + random suffix)")
    training = parser.add_argument_group("training (input fields train_<name>; defaults in the ASL's Defaults state)")
    for key in TRAIN_FIELDS:
        training.add_argument(f"--train-{key.replace('_', '-')}", dest=f"train_{key}", default=None, metavar="V")
    args = parser.parse_args(argv)
    try:
        cfg = config_from(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    train = {k: getattr(args, f"train_{k}") for k in TRAIN_FIELDS}
    definition = Path(args.definition)
    print(f"[run_local] {definition} on {cfg.resolved_root} (moto Step Functions interpreter)")
    try:
        execution = execute(
            definition,
            execution_input(cfg, train),
            faults=args.inject_fault,
            retry_scale=args.retry_wait_scale,
            name=args.name,
        )
    except ValueError as exc:  # a malformed --inject-fault
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[run_local] execution {execution.name}: {execution.status} in {execution.seconds:.1f}s")
    print(state_table(execution))
    print(f"[run_local] history: {save_history(execution, cfg.resolved_root)}")
    if execution.status != "SUCCEEDED":
        print(f"[run_local] {execution.error}: {_message(execution.cause or '')}", file=sys.stderr)
        return 1
    print_summary(cfg, execution.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
