"""The dashboard: `GET /` redirects to `/dashboard/`, which serves serving/dashboard/static/ — the
page, its script and style, and the chart library copied from its npm package by `make dashboard`.

Everything comes from this origin: no CDN, and a Content-Security-Policy of 'self' makes the browser
refuse any other host too. The page reads the API's own JSON routes (/symbols, /chart, /predict,
/models). The HTML is revalidated on every load (an export does not change it, a deploy does);
script, style and the library are cached for an hour and revalidated by ETag after that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC = Path(__file__).resolve().parents[1] / "dashboard" / "static"
VENDOR = STATIC / "vendor"
CHART_LIBRARY = "lightweight-charts.standalone.production.js"
# Scripts from this origin only; the chart library writes inline style attributes (the one allowance).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class DashboardFiles(StaticFiles):
    """StaticFiles with the cache and security headers above."""

    async def get_response(self, path: str, scope: Scope) -> Any:
        response = await super().get_response(path, scope)
        if response.status_code in (200, 304):
            page = path in ("", ".") or path.endswith(".html")
            response.headers["cache-control"] = "no-cache" if page else "public, max-age=3600"
            response.headers["x-content-type-options"] = "nosniff"
            if page:
                response.headers["content-security-policy"] = CSP
        return response


def install(app: FastAPI) -> None:
    """Mount the page at /dashboard/ and send / there (neither is part of the OpenAPI document)."""

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    app.mount("/dashboard", DashboardFiles(directory=STATIC, html=True, check_dir=False), name="dashboard")
