"""POST /pipeline/runs, GET /pipeline/runs and GET /pipeline/runs/{run_id}: start the pipeline, list the
newest runs, follow one.

The launcher (StartExecution on AWS, the local runner elsewhere) is serving/pipeline_runs.py.
"""

from __future__ import annotations

import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request

from serving.dependencies import AppSettings, Runs
from serving.errors import documented
from serving.pipeline_runs import RECENT_MAX, new_run_id, require_operator
from serving.schemas import PipelineRun, PipelineRunRequest, PipelineRuns

log = logging.getLogger("candlelake.serving")
router = APIRouter()
RunId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")]


@router.post(
    "/pipeline/runs", response_model=PipelineRun, status_code=202, responses=documented(400, 403, 409, 413, 422, 503)
)
async def start_run(
    request: Request, runs: Runs, settings: AppSettings, body: PipelineRunRequest | None = None
) -> PipelineRun:
    """Start the pipeline (StartExecution on AWS, for operators only and one run at a time; the local
    runner in a background process locally)."""
    if runs.mode == "aws":
        require_operator(request.scope, settings.operator_arns)
    body = body or PipelineRunRequest()
    run = runs.start(body.name or new_run_id(), body.execution_input())
    log.info("pipeline run started", extra={"event": "run_started", "run_id": run["id"], "mode": runs.mode})
    return PipelineRun(**run)


@router.get("/pipeline/runs", response_model=PipelineRuns, responses=documented(422, 503))
async def recent_runs(
    runs: Runs, settings: AppSettings, limit: Annotated[int, Query(ge=1, le=RECENT_MAX)] = 10
) -> PipelineRuns:
    """The newest runs (Step Functions executions on AWS; the runner's histories locally)."""
    starts: Literal["anyone", "operators", "nobody"] = "anyone"
    if runs.mode == "aws":
        starts = "operators" if settings.operator_arns else "nobody"
    return PipelineRuns(mode=runs.mode, starts=starts, runs=[PipelineRun(**r) for r in runs.recent(limit)])


@router.get("/pipeline/runs/{run_id}", response_model=PipelineRun, responses=documented(404, 422, 503))
async def get_run(run_id: RunId, runs: Runs) -> PipelineRun:
    return PipelineRun(**runs.get(run_id))
