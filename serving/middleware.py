"""The request middleware: a request id, one JSON access-log line, and a JSON 500 for anything unexpected;
a JSON 413 for a body over the limit."""

from __future__ import annotations

import logging
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import logs
from serving.errors import error_response

log = logging.getLogger("candlelake.serving")


class RequestContext:
    """Pure ASGI middleware (BaseHTTPMiddleware costs ≈ 0.3 ms a request): request id, one JSON
    access-log line, and a JSON 500 — never a traceback — for anything unexpected."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = logs.choose_request_id(header, scope)
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
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


class BodyLimit:
    """Refuse a request body over `max_bytes` with a JSON 413 naming the limit, before it is parsed.

    A declared Content-Length over the limit is answered at once, without reading the body; a body
    without one (chunked) is counted as it arrives and refused as soon as it passes the limit, so
    neither reaches the JSON parser or the model code. Not FastAPI's own `max_body_size`: in 0.165
    it sits outside every user middleware and answers a declared oversize body in plain text
    ("Content Too Large"), overwriting the JSON error the API promises (tried, see docs/api.md)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large()(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge(self._message())
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:  # where nothing answered it on the way out
            await self._too_large()(scope, receive, send)

    def _message(self) -> str:
        return f"the request body is over the limit of {self.max_bytes} bytes (CANDLELAKE_MAX_BODY_BYTES)"

    def _too_large(self) -> ASGIApp:
        return error_response(413, "body_too_large", self._message(), [{"limit_bytes": self.max_bytes}])


class _TooLarge(HTTPException):
    """Raised from `receive` as an HTTPException: FastAPI turns any other exception met while reading
    a body into a 400, but lets an HTTPException through to the API's handler (serving/errors.py)."""

    def __init__(self, message: str) -> None:
        super().__init__(413, detail=message)
