"""GET /chart/{symbol}: the bars the dashboard draws — the newest 250 of the served version, with the
gold overlays (SMA 20/50, Bollinger 20/2) and the holdout calls beside what happened, as export
published them beside the models (chart/<symbol>.json)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from lakecontract.artifacts import SYMBOL_PATTERN
from lakecontract.constants import INTERVAL_PATTERN
from serving.dependencies import Cache
from serving.errors import documented
from serving.routes.lookup import check_interval, unknown_symbol
from serving.schemas import ChartResponse

router = APIRouter()


@router.get("/chart/{symbol}", response_model=ChartResponse, responses=documented(404, 422, 503))
async def chart(
    cache: Cache,
    symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN)],
    interval: Annotated[str | None, Query(pattern=INTERVAL_PATTERN)] = None,
) -> ChartResponse:
    """Oldest first: ts, open, high, low, close, volume and the overlays; null where gold has no value
    yet (an SMA 50 needs 50 bars)."""
    bundle = cache.current()
    check_interval(bundle, interval)
    if symbol not in bundle.snapshot["symbols"]:
        raise unknown_symbol(bundle, symbol)
    doc = cache.chart(bundle, symbol)
    columns = doc["columns"]
    rows = zip(doc["ts"], doc["values"], strict=True)
    bars = [{"ts": ts, **dict(zip(columns, values, strict=True))} for ts, values in rows]
    return ChartResponse(
        symbol=symbol,
        interval=bundle.interval,
        model_version=bundle.version,
        columns=columns,
        bars=bars,
        calls=doc.get("calls", {}),
    )
