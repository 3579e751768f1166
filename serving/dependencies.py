"""What a route needs, as FastAPI dependencies: the settings, the model cache, the runs launcher.

`create_app(settings)` builds them once per app and keeps them on `app.state`; a route names what
it needs by type (`cache: Cache`) and FastAPI hands it over. So a route module reads alone, one
process can hold several apps over different lakes (the tests build one per lake), and a test can
swap a dependency with `app.dependency_overrides[get_cache] = ...`.

The providers are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool,
a hop measured at ≈ 1.3 ms a request (serving/app.py), to hand over an object already in memory.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.artifacts import ModelCache
from serving.pipeline_runs import AwsRuns, LocalRuns
from serving.settings import Settings


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_cache(request: Request) -> ModelCache:
    return request.app.state.cache


async def get_runs(request: Request) -> AwsRuns | LocalRuns:
    return request.app.state.runs


AppSettings = Annotated[Settings, Depends(get_settings)]
Cache = Annotated[ModelCache, Depends(get_cache)]
Runs = Annotated[AwsRuns | LocalRuns, Depends(get_runs)]
