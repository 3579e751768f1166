"""GET /health: which version is served, how old it is, and whether the store could be read."""

from __future__ import annotations

import time

from fastapi import APIRouter

from serving.artifacts import artifact_age_seconds
from serving.dependencies import AppSettings, Cache
from serving.errors import documented
from serving.schemas import Health

router = APIRouter()


@router.get("/health", response_model=Health, responses=documented(503))
async def health(cache: Cache, settings: AppSettings) -> Health:
    """Which version is loaded and how old it is; 503 (with the reason) when none can be served."""
    bundle = cache.current()
    return Health(
        status="degraded" if cache.store_error else "ok",
        model_version=bundle.version,
        interval=bundle.interval,
        published_at=bundle.published_at,
        artifact_age_seconds=artifact_age_seconds(bundle),
        loaded_seconds_ago=round(time.time() - bundle.loaded_at, 1),
        load_ms=round(bundle.load_seconds * 1000, 1),
        symbols=len(bundle.predictions),
        reload_seconds=settings.reload_seconds,
        store_error=cache.store_error,
    )
