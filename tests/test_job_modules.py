"""The frame every job shares (lakehouse/jobs/__init__.py): one module per Glue job, named as the job,
with `JOB` and one `run(spark, cfg, *, run_id, now, log, **options)`; one entry script per module.

Starts no JVM: the modules are imported and their signatures read, nothing runs."""

import importlib
import inspect
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The seven Glue jobs the state machines run (step_functions/*.asl.json, infra's job table).
JOBS = (
    "build_features",
    "build_silver",
    "export_models",
    "ingest_candles",
    "maintain_tables",
    "record_failure",
    "train_models",
)


def _modules(folder: str) -> list[str]:
    return sorted(p.stem for p in (REPO / folder).glob("*.py") if not p.stem.startswith("_"))


def test_every_glue_script_has_its_job_module_and_nothing_else_is_there():
    assert _modules("glue_jobs") == list(JOBS)
    assert _modules("lakehouse/jobs") == list(JOBS)


@pytest.mark.parametrize("name", JOBS)
def test_job_module_has_its_name_and_the_shared_run_signature(name):
    module = importlib.import_module(f"lakehouse.jobs.{name}")
    assert name == module.JOB
    params = list(inspect.signature(module.run).parameters.values())
    positional = [(p.name, p.kind, p.annotation) for p in params[:2]]
    assert positional == [
        ("spark", inspect.Parameter.POSITIONAL_OR_KEYWORD, "SparkSession"),
        ("cfg", inspect.Parameter.POSITIONAL_OR_KEYWORD, "LakeConfig"),
    ]
    frame = [(p.name, p.kind, p.default) for p in params[2:5]]
    assert frame == [(n, inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.empty) for n in ("run_id", "now", "log")]
    # A job's own options follow, keyword-only with defaults: a caller that knows only the frame can run any job.
    options = params[5:]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is not inspect.Parameter.empty for p in options)
    assert inspect.signature(module.run).return_annotation == "JobSummary"


@pytest.mark.parametrize("name", JOBS)
def test_entry_script_names_the_same_job(name):
    script = importlib.import_module(f"glue_jobs.{name}")
    assert name == script.JOB and callable(script.main)
