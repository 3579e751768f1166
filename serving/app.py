"""The prediction API: FastAPI routes over the verified, in-memory model version; `handler` for Lambda.

Lambda: `serving.app.handler` (Mangum; API Gateway HTTP API v2 and Function URL events alike).
Locally: `make serve` (uvicorn on 127.0.0.1:8000, the lake in ./lake). Configuration is the
environment (serving/settings.py): CANDLELAKE_LAKE_ROOT, CANDLELAKE_S3_ENDPOINT,
CANDLELAKE_RELOAD_SECONDS, CANDLELAKE_CORS_ORIGINS, CANDLELAKE_STATE_MACHINE_ARN, CANDLELAKE_LOG_LEVEL.

The model version loads when the module is imported — in a Lambda's init phase, which runs
before the first request and at full CPU — and is re-checked against `gold/models/latest` at most
every CANDLELAKE_RELOAD_SECONDS. Routes are `async def`: a sync route costs a thread-pool hop
(≈ 1.3 ms measured) and nothing here blocks except the rare reload.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query
from fastapi.responses import JSONResponse
from mangum import Mangum

from lakecontract.artifacts import SNAPSHOT_ROWS, SYMBOL_PATTERN, VERSION_PATTERN
from lakecontract.constants import INTERVAL_PATTERN
from serving import logs
from serving.artifacts import Bundle, ModelCache, artifact_age_seconds, latest_rows
from serving.errors import ApiError, error_response, install
from serving.pipeline_runs import AwsRuns, LocalRuns, new_run_id
from serving.schemas import (
    Baseline,
    ErrorResponse,
    Health,
    Horizon,
    LatestResponse,
    ModelDetail,
    ModelsResponse,
    ModelSummary,
    PipelineRun,
    PipelineRunRequest,
    Prediction,
    PredictRequest,
    SymbolInfo,
    SymbolsResponse,
)
from serving.settings import Settings
from serving.storage import open_store

log = logging.getLogger("candlelake.serving")
SymbolPath = Annotated[str, Path(pattern=SYMBOL_PATTERN, description="e.g. ^GSPC (URL-encode ^ as %5E)")]
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse, "description": d}
    for s, d in {
        404: "unknown symbol, model version or run",
        409: "pipeline runs: a run with that name exists (run_exists) or a local run is in progress (run_in_progress)",
        422: "invalid request",
        503: "no_model (none published yet, or the store unreadable before any loaded), artifact_refused (the "
        "published version or `latest` failed verification), storage_unavailable (the store cannot be read for "
        "what this request needs), pipeline_unavailable (no state machine ARN and no local lake to run on)",
    }.items()
}
READ_ERRORS = {s: ERRORS[s] for s in (404, 422, 503)}


class RequestContext:
    """Pure ASGI middleware (BaseHTTPMiddleware costs ≈ 0.3 ms a request): request id, one JSON
    access-log line, and a JSON 500 — never a traceback — for anything unexpected."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = logs.choose_request_id(header, scope)
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error", extra={"event": "unhandled", "path": scope.get("path")})
            if not status["sent"]:
                response = error_response(500, "internal_error", "internal error; quote the request_id when reporting")
                await response(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                extra={
                    "event": "request",
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status["code"],
                    "ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
            logs.request_id.reset(token)


def _prediction(bundle: Bundle, symbol: str, interval: str | None) -> Prediction:
    _check_interval(bundle, interval)
    p = bundle.predictions.get(symbol)
    if p is None:
        raise ApiError(404, "unknown_symbol", _unknown_symbol(bundle, symbol))
    base_prob = bundle.baseline_prob_up
    return Prediction(
        symbol=symbol,
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


def _unknown_symbol(bundle: Bundle, symbol: str) -> str:
    return f"unknown symbol {symbol!r}; model version {bundle.version} serves {', '.join(bundle.symbols)}"


def _check_interval(bundle: Bundle, interval: str | None) -> None:
    if interval and interval != bundle.interval:
        raise ApiError(
            404, "unknown_interval", f"model version {bundle.version} serves interval {bundle.interval}, not {interval}"
        )


def _summary(cache: ModelCache, version: str, latest: str | None) -> ModelSummary:
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


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    logs.configure(settings.log_level)
    cache = ModelCache(
        open_store(settings.lake_root, settings.s3_endpoint), settings.reload_seconds, settings.cached_versions
    )
    cache.refresh(force=True)
    runs = AwsRuns(settings.state_machine_arn) if settings.state_machine_arn else LocalRuns(settings.lake_root)
    app = FastAPI(
        title="candlelake prediction API",
        version="1",
        description="Next-bar direction and close predictions from the model version the export job published "
        "(gold/models/latest), every number beside its naive baseline. Errors are "
        '`{"error": {"code", "message", "request_id"}}`.',
        default_response_class=JSONResponse,
    )
    app.state.settings, app.state.cache, app.state.runs = settings, cache, runs
    install(app)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", "x-request-id"],
            expose_headers=["x-request-id"],
        )
    app.add_middleware(RequestContext)

    @app.get("/health", response_model=Health, responses={503: ERRORS[503]})
    async def health() -> Health:
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
            lake_root=settings.lake_root,
            reload_seconds=settings.reload_seconds,
            store_error=cache.store_error,
        )

    @app.get("/symbols", response_model=SymbolsResponse, responses={503: ERRORS[503]})
    async def symbols() -> SymbolsResponse:
        bundle = cache.current()
        infos = [
            SymbolInfo(symbol=s, interval=bundle.interval, last_ts=b["ts"][-1], rows=len(b["ts"]))
            for s, b in sorted(bundle.snapshot["symbols"].items())
            if b["ts"]
        ]
        return SymbolsResponse(model_version=bundle.version, symbols=infos)

    @app.get("/latest", response_model=LatestResponse, responses=READ_ERRORS)
    async def latest(
        symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN)],
        interval: Annotated[str | None, Query(pattern=INTERVAL_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=SNAPSHOT_ROWS)] = 5,
    ) -> LatestResponse:
        """The newest candles and their features from the serving snapshot, oldest first."""
        bundle = cache.current()
        _check_interval(bundle, interval)
        if symbol not in bundle.snapshot["symbols"]:
            raise ApiError(404, "unknown_symbol", _unknown_symbol(bundle, symbol))
        _, rows = latest_rows(bundle, symbol, limit)
        return LatestResponse(
            symbol=symbol, interval=bundle.interval, model_version=bundle.version, count=len(rows), candles=rows
        )

    @app.post("/predict", response_model=Prediction, responses=READ_ERRORS)
    async def predict(body: PredictRequest) -> Prediction:
        """Direction (prob_up → signal) and next close for the symbol's newest bar."""
        return _prediction(cache.version(body.model), body.symbol, body.interval)

    @app.get("/predict/{symbol}", response_model=Prediction, responses=READ_ERRORS)
    async def predict_get(
        symbol: SymbolPath,
        interval: Annotated[str | None, Query(pattern=INTERVAL_PATTERN)] = None,
        model: Annotated[str | None, Query(pattern=f"{VERSION_PATTERN}|^latest$")] = None,
    ) -> Prediction:
        return _prediction(cache.version(model), symbol, interval)

    @app.get("/models", response_model=ModelsResponse, responses={503: ERRORS[503]})
    async def models() -> ModelsResponse:
        """Every published version, newest first, with its served models beside their baselines."""
        current, _ = cache.status()
        latest_version = current.version if current else None
        versions = sorted(cache.published_versions(), reverse=True)
        return ModelsResponse(latest=latest_version, versions=[_summary(cache, v, latest_version) for v in versions])

    @app.get("/models/{version}", response_model=ModelDetail, responses=READ_ERRORS)
    async def model(version: Annotated[str, Path(pattern=f"{VERSION_PATTERN}|^latest$")]) -> ModelDetail:
        """The version's manifest (files, sha256, metrics, baselines, lineage) and its registry rows."""
        bundle = cache.version(version)
        current, _ = cache.status()
        return ModelDetail(
            version=bundle.version,
            latest=current is not None and current.version == bundle.version,
            manifest=bundle.manifest,
            registry=bundle.registry,
        )

    @app.post("/pipeline/runs", response_model=PipelineRun, status_code=202, responses=ERRORS)
    async def start_run(body: PipelineRunRequest | None = None) -> PipelineRun:
        """Start the pipeline (StartExecution on AWS; the local runner in a background process locally)."""
        body = body or PipelineRunRequest()
        run = runs.start(body.name or new_run_id(), body.execution_input())
        log.info("pipeline run started", extra={"event": "run_started", "run_id": run["id"], "mode": runs.mode})
        return PipelineRun(**run)

    @app.get("/pipeline/runs/{run_id}", response_model=PipelineRun, responses=READ_ERRORS)
    async def get_run(run_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")]) -> PipelineRun:
        return PipelineRun(**runs.get(run_id))

    return app


app = create_app()
# lifespan "off": with "auto" Mangum runs startup/shutdown around every invocation.
handler = Mangum(app, lifespan="off")
