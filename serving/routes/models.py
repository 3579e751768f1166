"""GET /models and GET /models/{version}: the published versions, their served models beside their baselines."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from lakecontract.artifacts import VERSION_PATTERN
from serving.artifacts import ModelCache
from serving.dependencies import Cache
from serving.errors import documented
from serving.schemas import ModelDetail, ModelsResponse, ModelSummary

router = APIRouter()


def summary(cache: ModelCache, version: str, latest: str | None) -> ModelSummary:
    """A version's line in the listing, from its manifest alone (not verified until it is served)."""
    try:
        m = cache.manifest(version)
    except Exception as exc:  # one unreadable version must not hide the others
        return ModelSummary(version=version, latest=version == latest, error=f"{type(exc).__name__}: {exc}")
    models = {
        task: {
            "algorithm": doc["algorithm"],
            "promoted": doc["promoted"],
            "serve": doc["serve"],
            "key_metric": doc["key_metric"],
            "holdout": doc["holdout"].get(doc["key_metric"]),
            "baseline": doc["baseline"].get(doc["key_metric"]),
        }
        for task, doc in m["models"].items()
    }
    return ModelSummary(
        version=version, latest=version == latest, created_at=m.get("created_at"), interval=m["interval"], models=models
    )


@router.get("/models", response_model=ModelsResponse, responses=documented(503))
async def models(cache: Cache) -> ModelsResponse:
    """Every published version, newest first, with its served models beside their baselines."""
    current, _ = cache.status()
    latest_version = current.version if current else None
    versions = sorted(cache.published_versions(), reverse=True)
    return ModelsResponse(latest=latest_version, versions=[summary(cache, v, latest_version) for v in versions])


@router.get("/models/{version}", response_model=ModelDetail, responses=documented(404, 422, 503))
async def model(version: Annotated[str, Path(pattern=f"{VERSION_PATTERN}|^latest$")], cache: Cache) -> ModelDetail:
    """The version's manifest (files, sha256, metrics, baselines, lineage) and its registry rows."""
    bundle = cache.version(version)
    current, _ = cache.status()
    return ModelDetail(
        version=bundle.version,
        latest=current is not None and current.version == bundle.version,
        manifest=bundle.manifest,
        registry=bundle.registry,
    )
