"""The state-machine definitions (ASL files beside this module) and the names they refer to.

The ASL files are the single source of truth: the CDK app deploys them with these placeholders
substituted (`DefinitionBody.from_string` + definition substitutions), and the local runner
executes the very same files through moto. Nothing here imports Spark or moto.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
PIPELINE = HERE / "pipeline.asl.json"
INGEST_INTRADAY = HERE / "ingest_intraday.asl.json"
MAINTENANCE = HERE / "maintenance.asl.json"
DEFINITIONS = (PIPELINE, INGEST_INTRADAY, MAINTENANCE)

# ASL placeholder → the glue_jobs module that is that Glue job's script.
GLUE_JOBS = {
    "IngestJobName": "ingest_candles",
    "BuildSilverJobName": "build_silver",
    "BuildFeaturesJobName": "build_features",
    "TrainJobName": "train_models",
    "ExportJobName": "export_models",
    "RecordFailureJobName": "record_failure",
    "MaintainTablesJobName": "maintain_tables",
}
# State name → placeholder of the job it runs (what fault injection names).
STATE_JOBS = {
    "Ingest": "IngestJobName",
    "BuildSilver": "BuildSilverJobName",
    "BuildFeatures": "BuildFeaturesJobName",
    "Train": "TrainJobName",
    "Export": "ExportJobName",
    "RecordFailure": "RecordFailureJobName",
    "RecordQualityHalt": "RecordFailureJobName",
    "MaintainTables": "MaintainTablesJobName",
}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z]+)\}")
# The deployment's settings, the other placeholders. `LakeRoot` is the lake every job of a machine
# writes: a constant of the deployment, never execution input (an execution naming one is refused),
# so whoever may start an execution cannot point the jobs' roles at another prefix. `DefaultSource`
# is what `{}` ingests: yfinance on AWS (the bundled `sample` reads packages Glue does not install),
# the bundled sample locally (no internet here).
SETTINGS = ("LakeRoot", "DefaultSource")
LOCAL_DEFAULT_SOURCE = "sample"
DEPLOYED_DEFAULT_SOURCE = "yfinance"


# A CSV object created under `<lake root>/raw/` starts the pipeline (the CDK app's EventBridge rule):
# this is the execution input the rule sends. Only the source and the file: every other field takes
# the definition's default (daily bars, every symbol in the file, the default training settings).
RAW_DROP_PREFIX = "raw/"


def drop_input(bucket: str, key: str) -> dict[str, str]:
    """The execution input for the object `key` created in `bucket`. The CDK app calls this with
    EventBridge's `<$.detail.bucket.name>` and `<$.detail.object.key>` fields, the local runner
    with a real bucket and key, so both start the same execution."""
    return {"source": "csv", "csv_path": f"s3://{bucket}/{key}"}


def drop_input_from_event(event: dict[str, Any]) -> dict[str, str]:
    """`drop_input` of an S3 "Object Created" event as EventBridge delivers it."""
    detail = event["detail"]
    return drop_input(detail["bucket"]["name"], detail["object"]["key"])


def glue_job_name(placeholder: str, prefix: str = "candlelake") -> str:
    return f"{prefix}-{GLUE_JOBS[placeholder].replace('_', '-')}"


def substitutions(lake_root: str, default_source: str, prefix: str = "candlelake") -> dict[str, str]:
    """Every placeholder's value for a deployment (or a local run) of the definitions."""
    values = {p: glue_job_name(p, prefix) for p in GLUE_JOBS}
    values.update(LakeRoot=lake_root, DefaultSource=default_source)
    return values


def placeholders(path: Path) -> set[str]:
    return set(PLACEHOLDER.findall(path.read_text()))


def render(path: Path, substitutions: dict[str, str]) -> str:
    """The definition with every `${Name}` replaced; an unknown or missing name is an error."""
    text = path.read_text()
    missing = placeholders(path) - set(substitutions)
    if missing:
        raise KeyError(f"{path.name}: no value for {sorted(missing)}")
    return PLACEHOLDER.sub(lambda m: json.dumps(substitutions[m.group(1)])[1:-1], text)


def load(path: Path, substitutions: dict[str, str]) -> dict[str, Any]:
    return json.loads(render(path, substitutions))
