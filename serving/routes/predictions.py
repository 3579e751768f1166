"""POST /predict and GET /predict/{symbol}: the served answer for a symbol's newest bar, beside its baseline.

Both are a dictionary lookup: the version's ONNX graphs ran once, over every symbol, when it was
loaded (serving/artifacts.py).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from lakecontract.artifacts import SYMBOL_PATTERN, VERSION_PATTERN
from lakecontract.constants import INTERVAL_PATTERN
from serving.artifacts import Bundle
from serving.artifacts import Prediction as Served
from serving.dependencies import Cache
from serving.errors import documented
from serving.routes.lookup import check_interval, unknown_symbol
from serving.schemas import Baseline, Horizon, Prediction, PredictRequest

router = APIRouter()
SymbolPath = Annotated[str, Path(pattern=SYMBOL_PATTERN, description="e.g. ^GSPC (URL-encode ^ as %5E)")]


def prediction(bundle: Bundle, symbol: str, interval: str | None) -> Prediction:
    check_interval(bundle, interval)
    p = bundle.predictions.get(symbol)
    if p is None:
        raise unknown_symbol(bundle, symbol)
    return answer(bundle, p)


def answer(bundle: Bundle, p: Served) -> Prediction:
    """The response for one served prediction: the version's horizon, signal and baseline around it."""
    base_prob = bundle.baseline_prob_up
    return Prediction(
        symbol=p.symbol,
        interval=bundle.interval,
        asof=p.asof,
        close=p.close,
        horizon=Horizon(bars=int(bundle.manifest.get("horizon_bars", 1)), interval=bundle.interval),
        prob_up=p.prob_up,
        signal=bundle.signal(p.prob_up),
        predicted_return=p.predicted_return,
        predicted_close=p.close * (1 + p.predicted_return),
        model_version=bundle.version,
        served={"direction": p.direction_source, "return": p.return_source},
        baseline=Baseline(
            prob_up=base_prob, signal=bundle.signal(base_prob), predicted_return=0.0, predicted_close=p.close
        ),
        notes=list(p.notes),
    )


@router.post("/predict", response_model=Prediction, responses=documented(400, 404, 413, 422, 503))
async def predict(body: PredictRequest, cache: Cache) -> Prediction:
    """Direction (prob_up → signal) and next close for the symbol's newest bar."""
    return prediction(cache.version(body.model), body.symbol, body.interval)


@router.get("/predict/{symbol}", response_model=Prediction, responses=documented(404, 422, 503))
async def predict_get(
    symbol: SymbolPath,
    cache: Cache,
    interval: Annotated[str | None, Query(pattern=INTERVAL_PATTERN)] = None,
    model: Annotated[str | None, Query(pattern=f"{VERSION_PATTERN}|^latest$")] = None,
) -> Prediction:
    return prediction(cache.version(model), symbol, interval)
