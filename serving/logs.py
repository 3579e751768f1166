"""Structured JSON logs, one object per line, each with the request id it belongs to.

CloudWatch Logs Insights parses JSON lines into fields, so `filter status >= 500` or
`stats pct(ms, 99) by path` work without regexes. The request id is the caller's
`x-request-id` when it sends a sane one, else the Lambda request id, else a new uuid; it is
returned in the `x-request-id` response header and in every error body.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any, TextIO

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._:=-]{1,128}$")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (a captured or redirected stdout included)."""

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str = "INFO") -> None:
    """Route the `candlelake` loggers to stdout as JSON (Lambda ships stdout to CloudWatch)."""
    logger = logging.getLogger("candlelake")
    if not any(isinstance(h, StdoutHandler) for h in logger.handlers):
        handler = StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def choose_request_id(header: str | None, scope: Mapping[str, Any]) -> str:
    if header and _CLIENT_ID.match(header):
        return header
    context = scope.get("aws.context")
    aws_id = getattr(context, "aws_request_id", None)
    return str(aws_id) if aws_id else uuid.uuid4().hex
