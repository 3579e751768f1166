"""The API's routes, one module per thing served, each an `APIRouter` that `serving.app` includes.

| module | paths |
|---|---|
| `health.py` | `GET /health` |
| `symbols.py` | `GET /symbols`, `GET /latest` (the serving snapshot: symbols and their newest candles) |
| `chart.py` | `GET /chart/{symbol}` (250 bars with overlays, for the dashboard) |
| `quality.py` | `GET /quality`, `GET /quality/report` (the data-quality report published with the version) |
| `dashboard.py` | `GET /` → `/dashboard/`: the page and its static files (serving/dashboard/static/) |
| `predictions.py` | `POST /predict`, `GET /predict/{symbol}` |
| `candles.py` | `POST /predict/candles` (bars the caller sends; serving/candles.py) |
| `models.py` | `GET /models`, `GET /models/{version}` |
| `pipeline_runs.py` | `POST /pipeline/runs`, `GET /pipeline/runs/{run_id}` |

A route states the errors it can answer with `responses=documented(...)` (serving/errors.py); the
500 every route can answer is documented once, on the app.
"""

from __future__ import annotations

from serving.routes import candles, chart, health, models, pipeline_runs, predictions, quality, symbols

# The order of the OpenAPI document's paths (and of /docs), and the order requests are matched in:
# FastAPI 0.165 tries each included router in turn, so the hot path (/predict) comes first — with it
# third, a warm POST /predict cost ≈ 20 % more (measured through the Lambda handler).
ROUTERS = (
    predictions.router,
    candles.router,
    health.router,
    symbols.router,
    chart.router,
    quality.router,
    models.router,
    pipeline_runs.router,
)
