"""The one exception type the API turns into an error response (serving/errors.py).

It lives apart from the FastAPI code so the artifact loader and the pipeline-run launcher can
raise it without importing FastAPI.
"""

from __future__ import annotations


class ApiError(Exception):
    """An answer the client should get: HTTP status, stable code, readable message."""

    def __init__(self, status: int, code: str, message: str, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
