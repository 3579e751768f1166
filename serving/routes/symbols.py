"""GET /symbols and GET /latest: what the serving snapshot holds — its symbols and their newest candles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from lakecontract.artifacts import SNAPSHOT_ROWS, SYMBOL_PATTERN
from lakecontract.constants import INTERVAL_PATTERN
from serving.artifacts import latest_rows
from serving.dependencies import Cache
from serving.errors import documented
from serving.routes.lookup import check_interval, unknown_symbol
from serving.schemas import LatestResponse, SymbolInfo, SymbolsResponse

router = APIRouter()


@router.get("/symbols", response_model=SymbolsResponse, responses=documented(503))
async def symbols(cache: Cache) -> SymbolsResponse:
    bundle = cache.current()
    infos = [
        SymbolInfo(symbol=s, interval=bundle.interval, last_ts=b["ts"][-1], rows=len(b["ts"]))
        for s, b in sorted(bundle.snapshot["symbols"].items())
        if b["ts"]
    ]
    return SymbolsResponse(model_version=bundle.version, symbols=infos)


@router.get("/latest", response_model=LatestResponse, responses=documented(404, 422, 503))
async def latest(
    cache: Cache,
    symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN)],
    interval: Annotated[str | None, Query(pattern=INTERVAL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=SNAPSHOT_ROWS)] = 5,
) -> LatestResponse:
    """The newest candles and their features from the serving snapshot, oldest first."""
    bundle = cache.current()
    check_interval(bundle, interval)
    if symbol not in bundle.snapshot["symbols"]:
        raise unknown_symbol(bundle, symbol)
    _, rows = latest_rows(bundle, symbol, limit)
    return LatestResponse(
        symbol=symbol, interval=bundle.interval, model_version=bundle.version, count=len(rows), candles=rows
    )
