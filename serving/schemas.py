"""Request and response bodies: the API's public contract, and the OpenAPI schema at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict

from lakecontract.artifacts import SIGNAL_THRESHOLDS, SYMBOL_PATTERN, VERSION_PATTERN
from lakecontract.constants import INTERVAL_LIST_PATTERN, INTERVAL_PATTERN

Symbol = Field(pattern=SYMBOL_PATTERN, description="ticker as Yahoo spells it, e.g. ^GSPC, MSFT, BRK-B")


class ErrorDetail(BaseModel):
    code: str = Field(description="stable, machine-readable: unknown_symbol, invalid_request, no_model, …")
    message: str
    request_id: str | None = None
    details: list[dict[str, Any]] | None = Field(default=None, description="per-field problems of a 422")


class ErrorResponse(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: the store could not be read at the last check; the version loaded before is served"
    )
    model_version: str
    interval: str
    published_at: str | None
    artifact_age_seconds: float | None = Field(description="seconds since export published the version")
    loaded_seconds_ago: float
    load_ms: float
    symbols: int
    reload_seconds: float
    store_error: str | None = Field(
        default=None, description="why the last check of gold/models/latest failed, if it did"
    )


class SymbolInfo(BaseModel):
    symbol: str
    interval: str
    last_ts: str
    rows: int = Field(description="rows of the serving snapshot (the newest bars)")


class SymbolsResponse(BaseModel):
    model_version: str
    symbols: list[SymbolInfo]


class LatestResponse(BaseModel):
    symbol: str
    interval: str
    model_version: str
    count: int
    candles: list[dict[str, Any]] = Field(description="oldest first: ts, open, high, low, close, volume, features")


class ChartResponse(BaseModel):
    symbol: str
    interval: str
    model_version: str
    columns: list[str] = Field(description="the value columns of every bar, besides ts")
    bars: list[dict[str, Any]] = Field(description="oldest first: ts, open, high, low, close, volume, the overlays")
    calls: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="the published models' scores of the holdout bars among these: ts, prob_up, signal, "
        "actual_up (1 if the next bar closed higher, null while not known)",
    )


class QualityLayer(BaseModel):
    layer: str
    table: str
    suite: str
    passed: dict[str, int] = Field(description="tier → expectations that passed")
    failed: dict[str, int] = Field(description="tier → expectations that failed")


class QualityResponse(BaseModel):
    model_version: str
    run_id: str = Field(
        description="the run whose validations these are: the one that published the version, or the newest "
        "that validated new rows before it"
    )
    started_at: str | None
    layers: list[QualityLayer]
    report: str = Field(description="the path of the run's HTML report")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Symbol
    interval: str | None = Field(default=None, pattern=INTERVAL_PATTERN, description="defaults to the model's interval")
    model: str | None = Field(
        None,
        pattern=f"{VERSION_PATTERN}|^latest$",
        description="a published model version; default: the one gold/models/latest names",
    )


class Horizon(BaseModel):
    bars: int
    interval: str


class Baseline(BaseModel):
    prob_up: float = Field(description="the training fold's base rate of up bars")
    signal: str
    predicted_return: float = Field(description="persistence: the close does not move")
    predicted_close: float


class Prediction(BaseModel):
    symbol: str
    interval: str
    asof: str = Field(description="timestamp of the newest bar the prediction is made from")
    close: float = Field(description="close of that bar")
    horizon: Horizon
    prob_up: float = Field(description="P(next close > this close), from the served direction model")
    signal: Literal["buy", "hold", "sell"] = Field(
        description=f"buy if prob_up ≥ {SIGNAL_THRESHOLDS['buy']}, sell if ≤ {SIGNAL_THRESHOLDS['sell']}, else hold"
    )
    predicted_return: float
    predicted_close: float
    model_version: str
    served: dict[str, str] = Field(description="per task: the algorithm answering, or 'baseline'")
    baseline: Baseline
    notes: list[str] = []


@with_config(ConfigDict(extra="forbid"))
class Candle(TypedDict):
    """One bar. Prices as the caller wants them treated (gold computes on split- and dividend-adjusted
    prices); a null or missing value is allowed here so that the silver rule `missing_value` names it.
    A TypedDict, not a model: validating 569 bars into dicts takes half the time (0.5 vs 1.05 ms)."""

    ts: Annotated[
        datetime | None,
        Field(description="the bar's start: ISO 8601 (no zone means UTC) or Unix seconds; 1d bars at 00:00 UTC"),
    ]
    open: NotRequired[float | None]
    high: NotRequired[float | None]
    low: NotRequired[float | None]
    close: NotRequired[float | None]
    volume: NotRequired[float | None]


class CandlesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str = Symbol
    interval: str | None = Field(
        default=None, max_length=16, description="the bars' size; defaults to the model's, which must match"
    )
    candles: list[Candle] = Field(
        min_length=1,
        description="one symbol's bars, oldest first (they are ordered by ts); at least the number of bars "
        "the features need to equal gold's (a 422 too_few_bars says how many) and at most the API's limit",
    )
    model: str | None = Field(
        None,
        pattern=f"{VERSION_PATTERN}|^latest$",
        description="a published model version; default: the one gold/models/latest names",
    )
    include_features: bool = Field(
        default=False, description="also return the feature values the models were given (the newest bar's)"
    )


class CandlesPrediction(Prediction):
    bars: int = Field(description="bars the features were computed from")
    features: dict[str, float | None] | None = Field(
        default=None, description="with include_features: the newest bar's features the models read (null if NaN)"
    )


class ModelSummary(BaseModel):
    version: str
    latest: bool
    created_at: str | None = None
    interval: str | None = None
    models: dict[str, dict[str, Any]] = Field(default_factory=dict, description="task → algorithm, promoted, metric")
    error: str | None = Field(default=None, description="why this version cannot be read")


class ModelsResponse(BaseModel):
    latest: str | None
    versions: list[ModelSummary]


class ModelDetail(BaseModel):
    version: str
    latest: bool
    manifest: dict[str, Any]
    registry: list[dict[str, Any]] = Field(description="every candidate model of the version, with its metrics")


class PipelineRunRequest(BaseModel):
    """The pipeline's execution input (step_functions/README.md); every field optional."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$", description="execution name")
    source: Literal["sample", "yfinance", "csv", "synthetic"] | None = None
    csv_path: str | None = Field(
        default=None,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[A-Za-z0-9!_.*'()/=+-]{1,900}\.csv$",
        description="the CSV object source=csv reads (on AWS the jobs read their own lake bucket only); "
        "local paths are not accepted from the API",
        examples=["s3://my-lake-bucket/lake/raw/btc-usd.csv"],
    )
    symbols: str | None = Field(default=None, pattern=r"^[A-Za-z0-9^._=,-]{1,400}$", examples=["^GSPC,MSFT"])
    intervals: str | None = Field(default=None, pattern=INTERVAL_LIST_PATTERN)
    start: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    end: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    backfill: bool | None = None
    train_interval: str | None = Field(default=None, pattern=INTERVAL_PATTERN)
    train_folds: int | None = Field(default=None, ge=1, le=20)
    train_test_bars: int | None = Field(default=None, ge=10, le=100_000)
    train_gap: int | None = Field(default=None, ge=1, le=1_000)
    train_epochs: int | None = Field(default=None, ge=1, le=1_000)
    train_window: int | None = Field(default=None, ge=2, le=1_000)

    def execution_input(self) -> dict[str, str]:
        """The fields that were given, as the strings the state machine passes to Glue."""
        fields = self.model_dump(exclude_none=True, exclude={"name"})
        return {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in fields.items()}


class PipelineRuns(BaseModel):
    mode: Literal["aws", "local"]
    starts: Literal["anyone", "operators", "nobody"] = Field(
        description="who may start a run here: anyone (local), the configured operators (AWS), nobody (AWS, none)"
    )
    runs: list[PipelineRun] = Field(description="newest first")


class PipelineRun(BaseModel):
    id: str
    status: str = Field(description="RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED")
    mode: Literal["aws", "local"]
    started_at: str | None = None
    stopped_at: str | None = None
    execution_arn: str | None = None
    error: str | None = None
    cause: str | None = None
    input: dict[str, Any] | None = None
    states: list[dict[str, Any]] | None = None
    log: str | None = Field(default=None, description="local mode: the runner's log file")
