"""POST /predict/candles: the served answer for bars the caller sends (serving/candles.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from lakecontract.constants import INTERVALS
from serving import candles
from serving.dependencies import AppSettings, Cache
from serving.errors import documented
from serving.routes.lookup import check_interval
from serving.routes.predictions import answer
from serving.schemas import CandlesPrediction, CandlesRequest

router = APIRouter()


@router.post("/predict/candles", response_model=CandlesPrediction, responses=documented(400, 404, 413, 422, 503))
async def predict_candles(body: CandlesRequest, cache: Cache, settings: AppSettings) -> CandlesPrediction:
    """Direction and next close for the newest of the bars sent, from features computed by gold's own
    code: bars checked with silver's rules (422 `bar_rejected` names the rule and the bar), at least
    as many as the features need to equal gold's (422 `too_few_bars` says how many), at most the
    configured limit (422 `too_many_bars`); a body over the byte limit is a 413."""
    bundle = cache.version(body.model)
    interval = body.interval or bundle.interval
    if interval in INTERVALS:  # a known interval this version was not trained on: 404, as for /predict
        check_interval(bundle, interval)
    series = candles.Series(body.symbol, interval, body.candles)
    candles.check(series, datetime.now(UTC), settings.max_candles)  # an unknown one: silver's unknown_interval
    served, features = candles.predict(bundle, series, body.include_features)
    return CandlesPrediction(**answer(bundle, served).model_dump(), bars=len(series), features=features)
