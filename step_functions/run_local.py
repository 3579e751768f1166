"""Run a state-machine definition locally: THE SAME ASL file that is deployed, executed by moto's
Step Functions interpreter, each Glue task running our job in this process (one SparkSession
shared by all steps; see `moto_glue` for how).

    python -m step_functions.run_local [lake flags] [--inject-fault State:times:Error] …

It prints the execution as the console's event list while it runs, then one line per state
(status, duration, attempts, error), saves the whole history as JSON under `<lake>/runs/`, and
ends with a summary of the lake.

Exit codes: 0 the execution SUCCEEDED; 1 it did not (FAILED, TIMED_OUT, ABORTED: the state table
and the error say where); 2 the command line is wrong (an unknown flag, a bad lake setting, a
malformed --inject-fault, no such --definition file, an option that definition does not read) and
nothing was executed; 3 another run holds the lake (lakecontract/lake_lock.py: the message names it)
and nothing was executed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakecontract import lake_lock
from lakecontract.constants import RUNS_DIR
from lakehouse.config import ConfigError, LakeConfig, add_config_arguments, config_from
from step_functions import definitions
from step_functions.moto_glue import MOTO_CONFIG, JobFunction, LocalGlue, parse_faults

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/candlelake-local"
TRAIN_FIELDS = ("interval", "folds", "test_bars", "gap", "epochs", "window", "max_rows", "spark_workers")
EXIT_SUCCEEDED, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3
# Lake settings that are not execution input (the ASL passes no such argument): on AWS they are the
# Glue jobs' DefaultArguments; locally every job gets them as flags, or `--synthetic-bars 700` would
# be silently ignored and the jobs would run with their defaults.
JOB_DEFAULT_FLAGS = (
    ("synthetic_symbols", "--synthetic-symbols"),
    ("synthetic_bars", "--synthetic-bars"),
    ("seed", "--seed"),
    ("calendar", "--calendar"),
    ("s3_endpoint", "--s3-endpoint"),
)


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


def execution_input(
    cfg: LakeConfig, train: dict[str, str] | None = None, *, given_only: bool = False
) -> dict[str, str]:
    """The documented execution input (step_functions/README.md) for this configuration.

    The lake root is not among them: it is the definition's `${LakeRoot}` (see `execute`).

    `given_only` keeps only the fields set by a flag or an environment variable,
    so the definition's own Defaults state decides the rest, as when the deployed machine is started
    with `{}`: the intraday machine then ingests its default `1h,5m`, not the jobs' default `1d`."""
    fields = {
        "source": cfg.source,
        "csv_path": cfg.csv_path or "",
        "symbols": ",".join(cfg.symbols),
        "intervals": ",".join(cfg.intervals),
        "start": cfg.start or "",
        "end": cfg.end or "",
        "backfill": "true" if cfg.backfill else "false",
    }
    if given_only:
        fields = {k: v for k, v in fields.items() if k in cfg.origins}
    fields.update({f"train_{k}": str(v) for k, v in (train or {}).items() if v not in (None, "")})
    return fields


def job_default_arguments(cfg: LakeConfig, *, given_only: bool = False) -> list[str]:
    """The flags of `cfg` that the execution input cannot carry (see JOB_DEFAULT_FLAGS).

    `given_only` passes only the settings a flag or variable gave, so each job prints a default as
    "(default)" rather than as a flag the user never typed."""
    values = ((flag, getattr(cfg, name)) for name, flag in JOB_DEFAULT_FLAGS if not given_only or name in cfg.origins)
    return [part for flag, value in values if value not in (None, "") for part in (flag, str(value))]


def local_jobs(default_arguments: Sequence[str] = ()) -> dict[str, Any]:
    """Glue job name → its entry point (glue_jobs.<module>.main), imported when first run.

    `default_arguments` come first, so a run's own arguments override them, as a Glue job run's
    Arguments override the job's DefaultArguments."""

    def entry(module: str) -> JobFunction:
        return lambda argv: importlib.import_module(f"glue_jobs.{module}").main([*default_arguments, *argv])

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


def state_jobs() -> dict[str, str]:
    """State name → the Glue job name it runs (what --inject-fault names)."""
    return {s: definitions.glue_job_name(p) for s, p in definitions.STATE_JOBS.items()}


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
    """A Glue run's Cause is the GetJobRun JSON: show its ErrorMessage. A PipelineFailed cause is
    the Catch output `{"<State>": {"Error", "Cause"}}`: show `State: Error: message` for each, so the
    runner's last line says which state failed and why rather than the start of a JSON document."""
    try:
        body = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        return str(cause)
    if isinstance(body, dict) and "ErrorMessage" in body:
        return body["ErrorMessage"]
    if isinstance(body, dict) and body and all(isinstance(v, dict) and "Error" in v for v in body.values()):
        return "; ".join(f"{state}: {v['Error']}: {_message(str(v.get('Cause', '')))}" for state, v in body.items())
    return json.dumps(body)[:200]


def _create_glue_jobs(glue: Any, names: Sequence[str]) -> None:
    """The Glue jobs the ASL names, as moto needs them to exist before a StartJobRun."""
    for job in names:
        glue.create_job(
            Name=job,
            Role=ROLE_ARN,
            Command={"Name": "glueetl", "ScriptLocation": f"s3://local/{job}.py"},
            MaxRetries=0,
            ExecutionProperty={"MaxConcurrentRuns": 1},
        )


def _follow(sfn: Any, arn: str, log: Callable[[str], object]) -> dict[str, Any]:
    """Log each new history event as it happens (the console's view) until the execution ends;
    return its final description."""
    seen = 0
    while True:
        described = sfn.describe_execution(executionArn=arn)
        events = sfn.get_execution_history(executionArn=arn)["events"]
        for event in events[seen:]:  # the history grows; its first event is ExecutionStarted
            if event["type"] not in ("TaskScheduled", "TaskStarted", "TaskSubmitted", "TaskSucceeded"):
                log(_describe(event, events[0]["timestamp"]))
        seen = len(events)
        if described["status"] != "RUNNING":
            return described
        time.sleep(1.0)


def execution_name() -> str:
    """A fresh execution name: UTC start time and a random suffix."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def execute(
    definition: Path,
    execution_in: dict[str, Any],
    *,
    lake_root: str,
    jobs: dict[str, Any] | None = None,
    job_arguments: Sequence[str] = (),
    faults: str = "",
    retry_scale: float = 1.0,
    name: str | None = None,
    log: Callable[[str], object] = print,
) -> Execution:
    """Run `definition` to completion through moto and return what the console would show.

    `lake_root` is the definition's `${LakeRoot}`, as the CDK app substitutes the deployed lake: the
    execution input cannot name one. The Glue jobs are `jobs`, or our own entry points given
    `job_arguments` as their defaults."""
    import logging

    import boto3
    from moto import mock_aws

    # moto logs every caught state error (a Choice's IsPresent probe, a Fail state) with the
    # interpreter's internals; the event list below says the same thing readably.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)

    substitutions = definitions.substitutions(lake_root, definitions.LOCAL_DEFAULT_SOURCE)
    asl = definitions.render(definition, substitutions)
    name = name or execution_name()
    started_wall = time.monotonic()
    with mock_aws(config=MOTO_CONFIG):
        creds = {"region_name": REGION, "aws_access_key_id": "local", "aws_secret_access_key": "local"}
        glue, sfn = boto3.client("glue", **creds), boto3.client("stepfunctions", **creds)
        _create_glue_jobs(glue, [job for job in substitutions.values() if job.startswith("candlelake-")])
        machine = sfn.create_state_machine(name=definition.stem.replace(".", "-"), definition=asl, roleArn=ROLE_ARN)
        with LocalGlue(jobs or local_jobs(job_arguments), parse_faults(faults, state_jobs()), retry_scale) as local:
            arn = sfn.start_execution(
                stateMachineArn=machine["stateMachineArn"], name=name, input=json.dumps(execution_in)
            )["executionArn"]
            described = _follow(sfn, arn, log)
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


def save_history(execution: Execution, root: str, s3_endpoint: str | None = None) -> str:
    """`<lake>/runs/<execution name>.json`: status, input, output, per-state rows, every event;
    written at `s3_endpoint` (the run's configured one) like the tables it describes."""
    from lakecontract.objectstore import ObjectStore

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
    return ObjectStore(root, RUNS_DIR, endpoint=s3_endpoint).write(
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
        report = latest_report(root, s3_endpoint=cfg.s3_endpoint)
        print(f"data quality: {total} expectation result(s) this run; failed: {failed}; report: {report}")
    print(describe_latest(root, s3_endpoint=cfg.s3_endpoint))


def build_parser() -> argparse.ArgumentParser:
    """Every option the runner accepts. Each one reaches the Glue jobs that read it (as execution input,
    as a job's default argument, or as the run id) or is the runner's own (which machine, faults, retry
    waits); tests/test_runner_options.py holds a case per option, so a new one cannot be silently dropped."""
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
        # A string default goes through `type` too: a bad variable is a usage error (exit 2), not a traceback.
        default=os.environ.get("CANDLELAKE_RETRY_WAIT_SCALE", "1.0"),
        help="multiply the ASL's Retry waits (1 = as on AWS, 0 = no waiting) [env CANDLELAKE_RETRY_WAIT_SCALE]",
    )
    parser.add_argument("--name", default=None, help="execution name (default: UTC time + random suffix)")
    training = parser.add_argument_group("training (input fields train_<name>; defaults in the ASL's Defaults state)")
    for key in TRAIN_FIELDS:
        training.add_argument(f"--train-{key.replace('_', '-')}", dest=f"train_{key}", default=None, metavar="V")
    return parser


def fields_read(definition: Path) -> set[str]:
    """The execution input fields some state of `definition` reads (`$.config.<field>`)."""
    return set(re.findall(r"\$\.config\.([A-Za-z0-9_]+)", definition.read_text()))


def check_input_is_read(definition: Path, execution_in: dict[str, str], origins: dict[str, str]) -> None:
    """Refuse input no state of `definition` reads: `--train-epochs 5` with the intraday machine (which has no
    Train state) would be accepted and reach no job, the silent drop issue 13 found with `--synthetic-symbols`."""
    unread = sorted(set(execution_in) - fields_read(definition))
    if unread:
        named = ", ".join(origins.get(f, f"flag --{f.replace('_', '-')}") for f in unread)
        raise ValueError(
            f"{named} would reach no job: no state of {definition} reads {', '.join(unread)}; drop it, "
            "or run the definition that uses it"
        )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error exits 2 (argparse's own convention, kept for ours)
    definition = Path(args.definition)
    train = {k: getattr(args, f"train_{k}") for k in TRAIN_FIELDS}
    try:
        cfg = config_from(args)
        parse_faults(args.inject_fault, state_jobs())
        if not definition.is_file():
            raise ValueError(f"--definition {definition}: no such file")
        execution_in = execution_input(cfg, train, given_only=True)
        check_input_is_read(definition, execution_in, cfg.origins)
    except (ConfigError, ValueError) as exc:  # checked before anything runs
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"[run_local] {definition} on {cfg.resolved_root} (moto Step Functions interpreter)")
    name = args.name or execution_name()
    try:
        with lake_lock.holding(cfg.resolved_root, name, endpoint=cfg.s3_endpoint):
            execution = execute(
                definition,
                execution_in,
                lake_root=cfg.resolved_root,
                job_arguments=job_default_arguments(cfg, given_only=True),
                faults=args.inject_fault,
                retry_scale=args.retry_wait_scale,
                name=name,
            )
    except lake_lock.LakeBusy as exc:
        print(f"[run_local] {name} refused, nothing was executed: {exc}", file=sys.stderr)
        return EXIT_BUSY
    print(f"[run_local] execution {execution.name}: {execution.status} in {execution.seconds:.1f}s")
    print(state_table(execution))
    print(f"[run_local] history: {save_history(execution, cfg.resolved_root, cfg.s3_endpoint)}")
    if execution.status != "SUCCEEDED":
        print(f"[run_local] {execution.error}: {_message(execution.cause or '')}", file=sys.stderr)
        return EXIT_FAILED
    print_summary(cfg, execution.name)
    return EXIT_SUCCEEDED


if __name__ == "__main__":
    sys.exit(main())
