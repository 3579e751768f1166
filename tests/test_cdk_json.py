"""infra/cdk.json: `npx cdk synth` / `diff` typed in infra/ run the same app as `make synth`.

Without node: the cdk CLI only runs cdk.json's "app" as a shell command from infra/, with the
output folder ("output", relative to infra/) in CDK_OUTDIR and the context in CDK_CONTEXT_JSON,
then reads the cloud assembly there. These tests do exactly that.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.infra_fixtures import stand_in_wheel_bundles

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
STACKS = {"candlelake-storage", "candlelake-analytics", "candlelake-pipeline", "candlelake-api"}
# What cdk 2.1148 adds to the context of every synth (read from CDK_CONTEXT_JSON under `npx cdk synth`).
CLI_CONTEXT = {
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:enable-asset-metadata": True,
    "aws:cdk:version-reporting": True,
    "aws:cdk:bundling-stacks": ["**"],
    "@aws-cdk/core:failSynthOnValidationErrors": False,
}


def _cdk_json() -> dict:
    return json.loads((INFRA / "cdk.json").read_text())


def _run_app(outdir: str, context: dict) -> subprocess.CompletedProcess:
    """cdk.json's app as the CLI runs it: a shell command in infra/, CDK_OUTDIR as given (maybe relative)."""
    env = {
        **os.environ,
        "CDK_OUTDIR": outdir,
        "CDK_CONTEXT_JSON": json.dumps({**context, **CLI_CONTEXT}),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    env.pop("PYTHONPATH", None)
    return subprocess.run(_cdk_json()["app"], shell=True, cwd=INFRA, env=env, capture_output=True, text=True)


def _make_variable(name: str) -> str:
    """A variable of the Makefile as make expands it (make is the oracle of what `make synth` runs)."""
    result = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", f"print-var: ; @echo '$({name})'", "print-var"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _python_and_module(command: str, cwd: Path) -> tuple[Path, str]:
    """The interpreter (resolved against `cwd`) and the `-m` module of a shell command line."""
    words = [w for w in shlex.split(command) if "=" not in w or w.startswith("-")]
    python = next(w for w in words if Path(w).name.startswith("python"))
    return Path(os.path.normpath(cwd / python)), words[words.index("-m") + 1]


def test_cdk_json_app_run_from_infra_synthesizes_every_stack_where_the_cli_reads_it(tmp_path):
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    # Under the repository, given relative to infra/ as the CLI passes "output": an app that ran from
    # another folder (`cd .. && …`) would write elsewhere and the CLI would find no manifest.json here.
    (REPO / "build").mkdir(exist_ok=True)
    outdir = Path(tempfile.mkdtemp(prefix="test-cdk-json-", dir=REPO / "build"))
    try:
        wheels = stand_in_wheel_bundles(tmp_path)
        context = {"api_layer_path": str(layer), "glue_wheels_path": str(wheels), "workers": "3"}
        result = _run_app(os.path.relpath(outdir, INFRA), context)
        assert result.returncode == 0, result.stdout + result.stderr
        manifest = json.loads((outdir / "manifest.json").read_text())
        stacks = {k for k, a in manifest["artifacts"].items() if a["type"] == "aws:cloudformation:stack"}
        assert stacks == STACKS
        for stack in STACKS:
            assert json.loads((outdir / f"{stack}.template.json").read_text())["Resources"]
        # the context the CLI passes (-c workers=3) reaches the app
        jobs = json.loads((outdir / "candlelake-pipeline.template.json").read_text())["Resources"]
        workers = {r["Properties"]["NumberOfWorkers"] for r in jobs.values() if r["Type"] == "AWS::Glue::Job"}
        assert workers == {3, 2}  # 3 for ingest/silver/features/failure, train_workers (2) for the ML jobs
        api = json.loads((outdir / "candlelake-api.template.json").read_text())["Resources"]
        assert not [r for r in api.values() if r["Type"].startswith("AWS::CloudFront::")]  # no dashboard_cidrs
    finally:
        shutil.rmtree(outdir, ignore_errors=True)


def test_without_the_lambda_layer_the_app_says_to_run_make_lambda_layer(tmp_path):
    wheels = str(stand_in_wheel_bundles(tmp_path))
    result = _run_app(
        str(tmp_path / "cdk.out"), {"api_layer_path": str(tmp_path / "no-layer"), "glue_wheels_path": wheels}
    )
    assert result.returncode != 0
    assert "run `make lambda-layer`" in result.stderr and str(tmp_path / "no-layer") in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


def test_without_the_glue_wheel_bundles_the_app_says_to_run_make_glue_wheels(tmp_path):
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    missing = tmp_path / "no-wheels"
    result = _run_app(str(tmp_path / "cdk.out"), {"api_layer_path": str(layer), "glue_wheels_path": str(missing)})
    assert result.returncode != 0
    assert "run `make glue-wheels`" in result.stderr and str(missing / "etl.gluewheels.zip") in result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"worker_typo": "4", "acknowledged-issue-numbers": [12345]}, "unknown context key(s) ['worker_typo']"),
        ({"workers": "four"}, "context workers='four': expected int"),
        ({"intraday_enabled": "flase"}, "context intraday_enabled='flase': expected true or false"),
    ],
)
def test_a_wrong_context_key_or_value_is_refused_by_name(tmp_path, context, message):
    layer = tmp_path / "layer"
    (layer / "python").mkdir(parents=True)
    result = _run_app(str(tmp_path / "cdk.out"), {"api_layer_path": str(layer), **context})
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "cdk.out" / "manifest.json").exists()  # refused before anything is synthesized


def test_cdk_json_and_the_makefile_run_the_same_app_into_the_same_folder():
    config = _cdk_json()
    assert _python_and_module(config["app"], INFRA) == _python_and_module(_make_variable("CDK_APP"), REPO)
    assert _python_and_module(config["app"], INFRA) == (REPO / ".venv" / "bin" / "python", "infra.app")
    assert Path(os.path.normpath(INFRA / config["output"])) == REPO / _make_variable("CDK_OUT")
