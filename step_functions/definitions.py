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
DEFINITIONS = (PIPELINE, INGEST_INTRADAY)

# ASL placeholder → the glue_jobs module that is that Glue job's script.
GLUE_JOBS = {
    "IngestJobName": "ingest_candles",
    "BuildSilverJobName": "build_silver",
    "BuildFeaturesJobName": "build_features",
    "TrainJobName": "train_models",
    "ExportJobName": "export_models",
    "RecordFailureJobName": "record_failure",
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
}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z]+)\}")


def glue_job_name(placeholder: str, prefix: str = "candlelake") -> str:
    return f"{prefix}-{GLUE_JOBS[placeholder].replace('_', '-')}"


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
