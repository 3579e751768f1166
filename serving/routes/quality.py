"""GET /quality and GET /quality/report: the data-quality report published with the served version —
that of the pipeline run that published it, or, when that run validated no new rows, of the newest
run that did (export copies it into the version: quality/report.json and .html) — as counts per
layer and tier, and as the self-contained HTML page the run wrote."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from lakecontract.artifacts import QUALITY_HTML, QUALITY_JSON
from serving.artifacts import Bundle, NoQualityReport
from serving.dependencies import Cache
from serving.errors import documented
from serving.schemas import QualityLayer, QualityResponse

router = APIRouter()
# The report has inline CSS and no script or link (lakehouse/quality/report.py): allow exactly that.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def _report(cache: Any, bundle: Bundle, name: str) -> bytes:
    raw = cache.published_file(bundle, name)
    if raw is None:
        raise NoQualityReport(
            f"model version {bundle.version} was published without a data-quality report (no run had validated "
            "the lake, or export predates publishing reports)"
        )
    return bytes(raw)


def summarize(document: dict[str, Any]) -> list[QualityLayer]:
    """Per validated table: how many expectations passed and failed in each tier."""
    layers = []
    for run in document.get("runs", []):
        passed: dict[str, int] = {}
        failed: dict[str, int] = {}
        for outcome in run.get("outcomes", []):
            bucket = passed if outcome.get("success") else failed
            bucket[outcome.get("tier", "?")] = bucket.get(outcome.get("tier", "?"), 0) + 1
        layers.append(
            QualityLayer(layer=run["layer"], table=run["table_name"], suite=run["suite"], passed=passed, failed=failed)
        )
    return layers


@router.get("/quality", response_model=QualityResponse, responses=documented(404, 503))
async def quality(cache: Cache) -> QualityResponse:
    bundle = cache.current()
    document = json.loads(_report(cache, bundle, QUALITY_JSON))
    return QualityResponse(
        model_version=bundle.version,
        run_id=document.get("run_id", ""),
        started_at=document.get("started_at"),
        layers=summarize(document),
        report="/quality/report",
    )


# Response, not HTMLResponse, as the route's class: with HTMLResponse FastAPI documents the JSON errors as HTML.
HTML_REPORT: dict[int | str, dict[str, Any]] = {
    200: {"description": "the run's HTML report", "content": {"text/html": {"schema": {"type": "string"}}}}
}


@router.get("/quality/report", response_class=Response, responses={**HTML_REPORT, **documented(404, 503)})
async def quality_report(cache: Cache) -> Response:
    """The run's HTML report (inline CSS, no script)."""
    bundle = cache.current()
    page = _report(cache, bundle, QUALITY_HTML)
    return HTMLResponse(page, headers={"content-security-policy": REPORT_CSP, "cache-control": "no-cache"})
