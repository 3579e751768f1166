"""Every option `python -m step_functions.run_local` accepts reaches the Glue jobs that read it, or is refused.

Issue 13: `--synthetic-symbols 100` was accepted and ran 5 symbols, because the state machine forwards no
synthetic size to the jobs. Here the runner's own `main` runs the real ASL files through moto's interpreter; the
Glue jobs are stand-ins that record the argv their entry point (`glue_jobs.<job>.main`) was called with, so no
Spark starts. The options are enumerated from the runner's parser, so an option added without a case here fails
`test_every_option_reaches_its_jobs[<option>]`. The few options that are the runner's own (which machine, faults,
retry waits) are listed in RUNNER_ONLY with the reason and checked by their effect on the execution instead.

What a job "saw" is read from its argv as argparse reads it: `--lake_root` and `--lake-root` are one option and
the last occurrence wins (a run's Arguments come after the job's default arguments, as on Glue).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import threading
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from step_functions import definitions, run_local

DAILY_JOBS = ("ingest_candles", "build_silver", "build_features", "train_models", "export_models")
LAKE = "{lake}"  # replaced by the run's lake root (a tmp folder)


@dataclass(frozen=True)
class Reaches:
    """Given as `given` on the runner's command line, the option must reach each of `jobs` as
    `argument value` (the argument spelled as the job's parser reads it)."""

    given: tuple[str, ...]
    argument: str
    value: str
    jobs: tuple[str, ...]


# One non-default value per option, so an option that is dropped cannot pass by matching a default.
REACHES: dict[str, Reaches] = {
    # execution input, read by the ASL's Arguments
    "lake_root": Reaches(("--lake-root", LAKE), "--lake-root", LAKE, DAILY_JOBS),
    "source": Reaches(("--source", "synthetic"), "--source", "synthetic", DAILY_JOBS),
    "symbols": Reaches(("--symbols", "SYN0002,SYN0004"), "--symbols", "SYN0002,SYN0004", DAILY_JOBS),
    "intervals": Reaches(
        ("--intervals", "1d,1h"), "--intervals", "1d,1h", ("ingest_candles", "build_silver", "build_features")
    ),
    "start": Reaches(("--start", "2020-01-02"), "--start", "2020-01-02", ("ingest_candles",)),
    "end": Reaches(("--end", "2020-03-04"), "--end", "2020-03-04", ("ingest_candles",)),
    "backfill": Reaches(("--backfill",), "--backfill", "true", ("ingest_candles",)),
    "train_interval": Reaches(("--train-interval", "1h"), "--interval", "1h", ("train_models",)),
    "train_folds": Reaches(("--train-folds", "4"), "--folds", "4", ("train_models",)),
    "train_test_bars": Reaches(("--train-test-bars", "61"), "--test-bars", "61", ("train_models",)),
    "train_gap": Reaches(("--train-gap", "3"), "--gap", "3", ("train_models",)),
    "train_epochs": Reaches(("--train-epochs", "7"), "--epochs", "7", ("train_models",)),
    "train_window": Reaches(("--train-window", "11"), "--window", "11", ("train_models",)),
    "train_max_rows": Reaches(("--train-max-rows", "123456"), "--train-max-rows", "123456", ("train_models",)),
    "train_spark_workers": Reaches(("--train-spark-workers", "2"), "--spark-workers", "2", ("train_models",)),
    # the execution name is every job's run id ($$.Execution.Name)
    "name": Reaches(("--name", "every-option"), "--run-id", "every-option", DAILY_JOBS),
    # lake settings no ASL argument carries: every job's default arguments (the defect)
    "synthetic_symbols": Reaches(("--synthetic-symbols", "100"), "--synthetic-symbols", "100", DAILY_JOBS),
    "synthetic_bars": Reaches(("--synthetic-bars", "700"), "--synthetic-bars", "700", DAILY_JOBS),
    "seed": Reaches(("--seed", "7"), "--seed", "7", DAILY_JOBS),
    "calendar": Reaches(("--calendar", "24x7"), "--calendar", "24x7", DAILY_JOBS),
    # execution input since issue 19 (the raw-drop rule sends it): every job that takes --source reads it
    "csv_path": Reaches(("--csv-path", "/data/bars.csv"), "--csv-path", "/data/bars.csv", DAILY_JOBS),
    "s3_endpoint": Reaches(
        ("--s3-endpoint", "http://127.0.0.1:9000"), "--s3-endpoint", "http://127.0.0.1:9000", DAILY_JOBS
    ),
}

# The runner's own options: they reach no job's argv by design. Each is given to the second execution
# (`failing`), and test_every_option_reaches_its_jobs checks its effect there.
RUNNER_ONLY: dict[str, str] = {
    "help": "prints the usage and exits; nothing runs",
    "definition": "chooses which state machine runs: it reaches the jobs as the states and Defaults of that machine",
    "inject_fault": "makes the local Glue fail a job run without running the job: it reaches moto's Glue, no job",
    "retry_wait_scale": "scales moto's Retry sleeps: it reaches the interpreter, no job",
}
FAILING = (
    "--definition", str(definitions.INGEST_INTRADAY),
    "--inject-fault", "BuildSilver:2:States.TaskFailed",
    "--retry-wait-scale", "0",
    "--name", "silver-fails",
)  # fmt: skip


def _options() -> list[str]:
    """Every option of the runner's parser, by its destination (`--lake-root` and `--lake_root` are one)."""
    return sorted({action.dest for action in run_local.build_parser()._actions if action.option_strings})


def _variables() -> dict[str, str]:
    """Option → the CANDLELAKE_* variable that gives it, as the runner's --help names it (`[env NAME]`)."""
    found = (
        (action.dest, re.search(r"\[env (CANDLELAKE_[A-Z0-9_]+)", action.help or ""))
        for action in run_local.build_parser()._actions
    )
    return {dest: match.group(1) for dest, match in found if match}


def seen(argv: list[str]) -> dict[str, str]:
    """The argument values a job's parser takes from `argv`: `--name value` pairs, `_` and `-` alike, last wins."""
    assert len(argv) % 2 == 0, argv  # Glue passes every argument as a name and a value
    return {argv[i].replace("_", "-"): argv[i + 1] for i in range(0, len(argv), 2)}


# The options a CANDLELAKE_* variable gives too (`every_variable` gives them that way). The runner's own two are
# the argparse default of their flag, which `failing` checks; a runner-only variable added later needs a reason here.
VARIABLES = sorted(dest for dest in _variables() if dest in REACHES)
RUNNER_ONLY_VARIABLES = {
    "inject_fault": "CANDLELAKE_INJECT_FAULT is the --inject-fault default",
    "retry_wait_scale": "CANDLELAKE_RETRY_WAIT_SCALE is the --retry-wait-scale default",
}


@dataclass
class Ran:
    """One runner invocation: its exit code, the argv of every job call in order, and the Execution."""

    code: int
    calls: list[tuple[str, list[str]]]
    execution: run_local.Execution | None  # None when the runner refused the command line
    lake: str
    out: str

    def argv_of(self, job: str) -> list[list[str]]:
        return [argv for name, argv in self.calls if name == job]


@contextlib.contextmanager
def _stand_in_jobs(calls: list[tuple[str, list[str]]]) -> Iterator[pytest.MonkeyPatch]:
    """`glue_jobs.<job>` modules whose `main(argv)` records argv and succeeds; the runner's entry points
    import them by name, so the runner's own argument handling is what runs. No Spark, no summary."""
    lock = threading.Lock()

    def stand_in(job: str) -> types.ModuleType:
        def main(argv: list[str]) -> int:
            with lock:
                calls.append((job, list(argv)))
            return 0

        module = types.ModuleType(f"glue_jobs.{job}")
        module.main = main  # type: ignore[attr-defined]
        return module

    import glue_jobs  # noqa: F401 — the package the stand-ins are found under

    with pytest.MonkeyPatch.context() as mp:
        for job in definitions.GLUE_JOBS.values():
            mp.setitem(sys.modules, f"glue_jobs.{job}", stand_in(job))
        mp.setattr(run_local, "print_summary", lambda cfg, run_id: None)  # reads the lake with Spark
        for name in [n for n in os.environ if n.startswith("CANDLELAKE_")]:
            mp.delenv(name)  # only the options given here reach the runner
        yield mp


def _run(argv: list[str], lake: Path, environ: dict[str, str] | None = None) -> Ran:
    calls: list[tuple[str, list[str]]] = []
    executions: list[run_local.Execution] = []
    real_execute = run_local.execute

    def execute(*args: object, **kwargs: object) -> run_local.Execution:  # the real one, kept for its record
        executions.append(real_execute(*args, **kwargs))  # type: ignore[arg-type]
        return executions[-1]

    out = io.StringIO()
    with _stand_in_jobs(calls) as mp:
        mp.setattr(run_local, "execute", execute)
        for name, value in (environ or {}).items():
            mp.setenv(name, value.replace(LAKE, str(lake)))
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = run_local.main([part.replace(LAKE, str(lake)) for part in argv])
    return Ran(code, calls, executions[0] if executions else None, str(lake), out.getvalue())


@pytest.fixture(scope="module")
def every_option(tmp_path_factory) -> Ran:
    """The daily pipeline with every option of REACHES given at once."""
    lake = (tmp_path_factory.mktemp("options") / "lake").resolve()
    return _run([part for case in REACHES.values() for part in case.given], lake)


@pytest.fixture(scope="module")
def every_variable(tmp_path_factory) -> Ran:
    """The daily pipeline with every option of REACHES that has a CANDLELAKE_* variable given by it."""
    lake = (tmp_path_factory.mktemp("variables") / "lake").resolve()
    # the flag's value; a bare flag (--backfill) is CANDLELAKE_BACKFILL=1
    values = {dest: REACHES[dest].given[-1] if len(REACHES[dest].given) == 2 else "1" for dest in VARIABLES}
    return _run([], lake, {_variables()[dest]: value for dest, value in values.items()})


@pytest.fixture(scope="module")
def failing(tmp_path_factory) -> Ran:
    """The intraday machine with an injected permanent BuildSilver failure and no retry waits."""
    lake = (tmp_path_factory.mktemp("runner-only") / "lake").resolve()
    return _run(["--lake-root", LAKE, *FAILING], lake)


def test_the_cases_name_only_options_the_runner_has():
    assert not set(REACHES) & set(RUNNER_ONLY)
    assert set(REACHES) | set(RUNNER_ONLY) <= set(_options())
    assert set(_variables()) == {*VARIABLES, *RUNNER_ONLY_VARIABLES}
    # Every lake setting has its variable (the lake flags come from lakehouse.config, each with one).
    assert set(VARIABLES) == {dest for dest in REACHES if dest != "name" and not dest.startswith("train_")}


@pytest.mark.parametrize("option", _options())
def test_every_option_reaches_its_jobs(option, every_option, failing):
    if option in RUNNER_ONLY:
        _check_runner_only(option, failing)
        return
    assert option in REACHES, f"{option}: no case. Add it to REACHES (the jobs that must see it) or RUNNER_ONLY"
    case = REACHES[option]
    assert every_option.code == run_local.EXIT_SUCCEEDED, every_option.out
    value = case.value.replace(LAKE, every_option.lake)
    for job in case.jobs:
        runs = every_option.argv_of(job)
        assert len(runs) == 1, f"{job} ran {len(runs)} times"
        assert seen(runs[0]).get(case.argument) == value, f"{job} got {runs[0]}"


@pytest.mark.parametrize("option", VARIABLES)
def test_every_variable_reaches_its_jobs(option, every_variable):
    """`CANDLELAKE_SYNTHETIC_SYMBOLS=100 make run` must run 100 symbols as the flag does."""
    case = REACHES[option]
    assert every_variable.code == run_local.EXIT_SUCCEEDED, every_variable.out
    value = case.value.replace(LAKE, every_variable.lake)
    for job in case.jobs:
        (argv,) = every_variable.argv_of(job)
        assert seen(argv).get(case.argument) == value, f"{job} got {argv}"


def _check_runner_only(option: str, ran: Ran) -> None:
    if option == "help":
        with pytest.raises(SystemExit) as exited, contextlib.redirect_stdout(io.StringIO()) as usage:
            run_local.main(["--help"])
        assert exited.value.code == 0 and "--synthetic-symbols" in usage.getvalue()
        return
    assert ran.code == run_local.EXIT_FAILED and ran.execution is not None, ran.out
    if option == "definition":
        # The intraday machine's states ran, and its Defaults (not the daily pipeline's sample/1d) reached ingest.
        assert [r.state for r in ran.execution.states] == [
            "Defaults", "ApplyInput", "CheckInput", "Ingest", "BuildSilver", "RecordFailure", "PipelineFailed",
        ]  # fmt: skip
        got = seen(ran.argv_of("ingest_candles")[0])
        assert (got["--source"], got["--intervals"]) == ("yfinance", "1h,5m")
    elif option == "inject_fault":
        # BuildSilver failed twice (one States.TaskFailed retry) without its job ever being called.
        assert ran.execution.row("BuildSilver").errors == ["States.TaskFailed"] * 2
        assert [job for job, _ in ran.calls] == ["ingest_candles", "record_failure"]
        recorded = seen(ran.argv_of("record_failure")[0])  # the failure goes to this run's lake, under its id
        assert (recorded["--lake-root"], recorded["--run-id"]) == (ran.lake, "silver-fails")
    elif option == "retry_wait_scale":
        # The ASL's States.TaskFailed retry waits 5 s (no jitter); scaled by 0 it does not wait.
        assert ran.execution.retry_sleeps == [(5.0, 0.0)]
    else:
        raise AssertionError(f"{option}: RUNNER_ONLY entry without a check")


def test_training_options_for_a_machine_without_train_are_refused(tmp_path):
    lake = tmp_path / "lake"
    ran = _run(["--lake-root", LAKE, "--definition", str(definitions.INGEST_INTRADAY), "--train-epochs", "5"], lake)
    assert ran.code == run_local.EXIT_USAGE, ran.out
    assert "flag --train-epochs would reach no job" in ran.out and "train_epochs" in ran.out
    assert ran.calls == [] and ran.execution is None and not lake.exists()
