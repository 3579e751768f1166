"""The one module that bends moto's Step Functions interpreter into a local Glue runner.

moto 5.2.5 executes ASL for real (its interpreter is LocalStack's: Retry, Catch, Choice,
intrinsics, execution history) when started with `execute_state_machine`, and calls Glue's
StartJobRun / GetJobRun for `glue:startJobRun.sync` tasks — against its own fake Glue, which runs
nothing. This module patches exactly these internals, each with the reason (line numbers are
moto 5.2.5's); `check_moto_internals()` fails loudly if an upgrade moves any of them:

1. `moto.glue.models.FakeJob.start_job_run` — the only place a job run is created: we start the
   local job for that Glue JobName in a thread and set the run's state when it ends (FAILED
   with the job's "ErrorType: message" as ErrorMessage), or raise an injected Glue error.
2. `moto.glue.models.FakeJobRun.as_dict` — GetJobRun has no ErrorMessage and a fixed
   ExecutionTime of 123: we add the real ones.
3. moto_api `state_manager` transition "glue::job_run" — runs advance to SUCCEEDED on the first
   read by default; we freeze them so only the job's outcome sets the state.
4. `StateTaskServiceCallback._eval_integration_pattern` (state_task_service_callback.py:150) —
   its unconditional `finally: callback_endpoint.interrupt_all()` crashes every `.sync` Glue task
   ('NoneType' object has no attribute 'interrupt_all'); LocalStack fixed it with a None check.
   For services without `.waitForTaskToken` we run the same `.sync` path without that line.
5. `_DELAY_SECONDS_SYNC_CONDITION_CHECK`: the GetJobRun poll interval (0.5 s, kept by default; settable).
6. the `time` module seen by `retrier_decl` (the Retry sleep): waits multiplied by `retry_scale`
   (1.0 = as on AWS; tests use 0) and recorded.
7. `StateTaskServiceGlue._sync_to_start_job_run` — its result holds datetimes that crash
   DescribeExecution's json.dumps if they reach the output: converted to ISO strings.

Everything else — the ASL, its retries and catches — is moto's, unchanged.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import types
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig

MOTO_VERSION = "5.2.5"
MOTO_CONFIG: DefaultConfig = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}

JobFunction = Callable[[list[str]], int]
"""A Glue entry point: argv → exit code (glue_jobs.<job>.main)."""


class MotoInternalsChanged(RuntimeError):
    """moto no longer has what this adapter patches: re-check it before upgrading moto."""


def check_moto_internals() -> None:
    """Fail loudly (not subtly) if moto moved anything this module relies on."""
    import inspect

    import moto
    from moto.glue.models import FakeJob, FakeJobRun
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_callback as callback,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
        StateTaskServiceGlue,
    )

    problems = []
    if moto.__version__ != MOTO_VERSION:
        problems.append(f"moto is {moto.__version__}, this adapter was written for {MOTO_VERSION}")
    if list(inspect.signature(FakeJob.start_job_run).parameters)[:1] != ["self"]:
        problems.append("FakeJob.start_job_run changed signature")
    if not hasattr(FakeJobRun, "as_dict") or not hasattr(FakeJobRun, "status"):
        problems.append("FakeJobRun.as_dict / status missing")
    source = inspect.getsource(callback.StateTaskServiceCallback._eval_integration_pattern)
    if "callback_endpoint.interrupt_all()" not in source:
        problems.append("_eval_integration_pattern no longer calls interrupt_all: is the None-guard fixed upstream?")
    for name in ("_build_sync_resolver", "_build_sync2_resolver", "_eval_sync"):
        if not hasattr(callback.StateTaskServiceCallback, name):
            problems.append(f"StateTaskServiceCallback.{name} missing")
    if not hasattr(callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK"):
        problems.append("_DELAY_SECONDS_SYNC_CONDITION_CHECK missing")
    if "time.sleep" not in inspect.getsource(retrier_decl):
        problems.append("retrier_decl no longer sleeps with time.sleep")
    if not hasattr(StateTaskServiceGlue, "_sync_to_start_job_run"):
        problems.append("StateTaskServiceGlue._sync_to_start_job_run missing")
    if problems:
        raise MotoInternalsChanged("; ".join(problems))


@dataclass
class Fault:
    """Make a Glue job fail `times` times with `error`: `Glue.<Code>` is raised by StartJobRun
    (a Glue API error, as when capacity is exhausted), `States.TaskFailed` fails the job run."""

    job: str
    times: int
    error: str

    def __post_init__(self) -> None:
        if self.times < 1:
            raise ValueError("a fault needs times ≥ 1")
        if not (self.error.startswith("Glue.") or self.error == "States.TaskFailed"):
            raise ValueError(f"cannot inject {self.error!r}: use Glue.<ExceptionName> or States.TaskFailed")


@dataclass
class GlueRun:
    job: str
    run_id: str | None
    argv: list[str]
    state: str
    error: str | None = None
    seconds: float = 0.0


@dataclass
class LocalGlue:
    """Install with `with LocalGlue(jobs): …` inside `mock_aws(config=MOTO_CONFIG)`."""

    jobs: dict[str, JobFunction]
    faults: list[Fault] = field(default_factory=list)
    retry_scale: float = 1.0
    poll_seconds: float = 0.5
    runs: list[GlueRun] = field(default_factory=list)
    retry_sleeps: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._remaining: dict[str, list[str]] = defaultdict(list)
        for fault in self.faults:
            self._remaining[fault.job] += [fault.error] * fault.times
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._undo: list[Callable[[], None]] = []

    def __enter__(self) -> LocalGlue:
        check_moto_internals()
        self._patch_start_job_run()
        self._patch_job_run_as_dict()
        self._freeze_job_run_states()
        self._patch_sync_none_guard()
        self._patch_poll_interval()
        self._patch_retry_sleep()
        self._patch_sync_output()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self._threads:
            thread.join(timeout=5)
        while self._undo:
            self._undo.pop()()

    def _set(self, owner: Any, name: str, value: Any) -> None:
        old = getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, old))

    # 1
    def _patch_start_job_run(self) -> None:
        from moto.glue.exceptions import GlueClientError
        from moto.glue.models import FakeJob

        original = FakeJob.start_job_run
        adapter = self

        def start_job_run(job_self: Any, *args: Any, **kwargs: Any) -> str:
            with adapter._lock:
                queue = adapter._remaining[job_self.name]
                injected = queue.pop(0) if queue else None
            if injected and injected.startswith("Glue."):
                code = injected.removeprefix("Glue.")
                adapter.runs.append(GlueRun(job_self.name, None, [], f"StartJobRun → {code}", "injected fault"))
                raise GlueClientError(code, f"injected fault: {code} for job {job_self.name}")
            run_id = original(job_self, *args, **kwargs)
            run = next(r for r in job_self.job_runs if r.job_run_id == run_id)
            adapter._start(job_self.name, run, injected)
            return run_id

        self._set(FakeJob, "start_job_run", start_job_run)

    def _start(self, job: str, run: Any, injected: str | None) -> None:
        # moto adds Glue's own `--job-language python`; a value "python" of any other argument stays.
        arguments = {k: v for k, v in (run.arguments or {}).items() if k.startswith("--") and k != "--job-language"}
        argv = [part for key, value in arguments.items() for part in (key, value)]
        record = GlueRun(job, run.job_run_id, argv, "RUNNING")
        self.runs.append(record)
        run.status = "RUNNING"
        run.started_on = dt.datetime.now()

        def work() -> None:
            started = time.monotonic()
            error = None
            try:
                if injected:
                    error = f"InjectedFault: {injected} for job {job}"
                elif job not in self.jobs:
                    error = f"NoSuchJob: no local entry point for Glue job {job!r}"
                else:
                    from glue_jobs._entry import last_failure

                    code = self.jobs[job](argv)
                    if code != 0:
                        error = last_failure() or f"{job} exited with code {code}"
            except BaseException as exc:  # any crash is a FAILED run, as on Glue
                error = f"{type(exc).__name__}: {exc}"
            record.seconds = time.monotonic() - started
            record.state, record.error = ("FAILED", error) if error else ("SUCCEEDED", None)
            run.completed_on = run.modified_on = dt.datetime.now()
            run._candlelake_seconds = int(round(record.seconds))
            run._candlelake_error = error
            run.status = record.state

        thread = threading.Thread(target=work, name=f"glue-{job}", daemon=True)
        self._threads.append(thread)
        thread.start()

    # 2
    def _patch_job_run_as_dict(self) -> None:
        from moto.glue.models import FakeJobRun

        original = FakeJobRun.as_dict

        def as_dict(run_self: Any) -> dict[str, Any]:
            body = original(run_self)
            if getattr(run_self, "_candlelake_error", None):
                body["ErrorMessage"] = run_self._candlelake_error
            if hasattr(run_self, "_candlelake_seconds"):
                body["ExecutionTime"] = run_self._candlelake_seconds
            return body

        self._set(FakeJobRun, "as_dict", as_dict)

    # 3
    def _freeze_job_run_states(self) -> None:
        from moto.moto_api import state_manager

        state_manager.set_transition("glue::job_run", {"progression": "manual", "times": 10**12})
        self._undo.append(lambda: state_manager.unset_transition("glue::job_run"))

    # 4
    def _patch_sync_none_guard(self) -> None:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_callback as callback,
        )
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
            ResourceCondition,
        )

        cls = callback.StateTaskServiceCallback
        original = cls._eval_integration_pattern

        def _eval_integration_pattern(
            self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: Any, state_credentials: Any
        ) -> None:
            if ResourceCondition.WaitForTaskToken in self._supported_integration_patterns:
                return original(self, env, resource_runtime_part, normalised_parameters, state_credentials)
            if self.heartbeat:
                raise RuntimeError(f"HeartbeatSeconds is not supported locally for {self.resource.resource_arn}")
            task_output = env.stack.pop()
            self.timeout.eval(env=env)
            timeout_seconds = env.stack.pop()
            env.stack.append(task_output)
            build = (
                self._build_sync_resolver
                if self.resource.condition == ResourceCondition.Sync
                else self._build_sync2_resolver
            )
            resolver = build(
                env=env,
                resource_runtime_part=resource_runtime_part,
                normalised_parameters=normalised_parameters,
                state_credentials=state_credentials,
            )
            outcome = self._eval_sync(
                env=env,
                sync_resolver=resolver,
                timeout_seconds=timeout_seconds,
                callback_endpoint=None,
                heartbeat_endpoint=None,
            )
            env.stack.append(outcome)

        self._set(cls, "_eval_integration_pattern", _eval_integration_pattern)

    # 5
    def _patch_poll_interval(self) -> None:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
            state_task_service_callback as callback,
        )

        self._set(callback, "_DELAY_SECONDS_SYNC_CONDITION_CHECK", self.poll_seconds)

    # 6
    def _patch_retry_sleep(self) -> None:
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

        adapter = self

        def sleep(seconds: float) -> None:
            scaled = seconds * adapter.retry_scale
            adapter.retry_sleeps.append((round(seconds, 3), round(scaled, 3)))
            if scaled > 0:
                time.sleep(scaled)

        self._set(retrier_decl, "time", types.SimpleNamespace(sleep=sleep))

    # 7
    def _patch_sync_output(self) -> None:
        import json

        from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
            StateTaskServiceGlue,
        )
        from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

        original = StateTaskServiceGlue._sync_to_start_job_run

        def _sync_to_start_job_run(self: Any, *args: Any, **kwargs: Any) -> Callable[[], Any] | None:
            resolver = original(self, *args, **kwargs)
            if resolver is None:  # typed Optional by moto; passed through as is
                return None

            def json_safe() -> Any:
                out = resolver()
                return None if out is None else json.loads(to_json_str(out))

            return json_safe

        self._set(StateTaskServiceGlue, "_sync_to_start_job_run", _sync_to_start_job_run)


def parse_faults(spec: str, job_of_state: dict[str, str]) -> list[Fault]:
    """`State:times:Error[,…]`, e.g. `BuildFeatures:2:Glue.ConcurrentRunsExceededException`."""
    faults = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        try:
            state, times, error = part.split(":", 2)
            job = job_of_state[state]
            faults.append(Fault(job, int(times), error))
        except KeyError:
            raise ValueError(f"fault {part!r}: unknown state; known: {', '.join(job_of_state)}") from None
        except ValueError as exc:
            raise ValueError(f"fault {part!r}: expected State:times:Error ({exc})") from None
    return faults
