"""Every error is JSON `{"error": {"code", "message", "request_id"}}` with a 4xx/5xx status, and
every status a route can answer is in the OpenAPI document with that schema (`documented`).

FastAPI's default 422 body echoes the client's input back and its 400/404/405 bodies are
`{"detail": …}`; all are replaced here. An unexpected exception is caught by the request
middleware (serving/middleware.py), logged with its traceback and answered with a 500 that
carries only the request id, never the traceback.

Where a 400 comes from: FastAPI turns a body that is not valid JSON *syntax* into a 422
(`json_invalid`), but a body that cannot be decoded at all into a 400: bytes that are not UTF-8
(a declared charset is not consulted), nesting deeper than Python's recursion limit, an integer
longer than Python's 4,300-digit limit. Every route that takes a body documents both;
tests/test_openapi_contract.py drives them.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.api_error import ApiError
from serving.logs import request_id
from serving.schemas import ErrorResponse

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "body_too_large"}
_MEANING = {
    400: "bad_request: the body cannot be decoded as JSON text (bytes that are not UTF-8, nesting deeper than "
    "the parser allows, an integer of over 4,300 digits); a JSON syntax error is a 422",
    403: "pipeline runs on AWS: the caller is not an operator (not_an_operator) or none is configured "
    "(runs_not_allowed)",
    404: "unknown symbol, model version or run",
    409: "pipeline runs: a run with that name exists (run_exists), another run is in progress (run_in_progress) "
    "or holds the lake (lake_busy)",
    413: "body_too_large: the body is over the limit the message names (a Lambda's memory is shared by requests)",
    422: "invalid request (invalid_request); POST /predict/candles also: bar_rejected (a silver rule, naming the rule "
    "and the bars), too_few_bars / too_many_bars (naming the limit)",
    500: "internal_error: an unexpected failure, logged with its traceback; the body carries only the request id",
    503: "no_model (none published yet, or the store unreadable before any loaded), artifact_refused (the "
    "published version or `latest` failed verification), storage_unavailable (the store cannot be read for "
    "what this request needs), pipeline_unavailable (no state machine ARN and no local lake to run on)",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of these error statuses, each with the error schema: what a route
    passes as `responses=` for the errors it can answer."""
    return {s: {"model": ErrorResponse, "description": _MEANING[s]} for s in statuses}


def error_response(status: int, code: str, message: str, details: list | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id.get()}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)  # artifact and pipeline-run errors are ApiErrors too
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "request"
        return error_response(422, "invalid_request", f"{where}: {first['msg']}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, _HTTP_CODES.get(exc.status_code, "http_error"), message)
