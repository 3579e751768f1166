"""The published-artifact contract between the export job and the API, in one place.

Export (`lakehouse/ml/export.py`) writes `gold/models/<version>/…` and checks its ONNX graphs on
inputs built by `snapshot_inputs`; the API builds its inputs with the very same function. Keeping
it here, with the standard library at import (numpy inside the two functions that build arrays),
means the API never imports the training stack (pandas, scikit-learn, torch), the batch side never
imports the API, and the export check exercises the serving code path.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

MODELS_DIR = "gold/models"
LATEST = "latest"
MANIFEST = "manifest.json"
FEATURES = "features.json"
REGISTRY = "registry.json"
SNAPSHOT_ROWS = 60  # per symbol: enough for the LSTM window and for /latest?limit=
# chart/<symbol>.json: the newest CHART_ROWS bars of each symbol with the overlays a trader reads
# (GET /chart/{symbol}, the dashboard). One file per symbol: a request reads its symbol's only.
CHART_DIR = "chart"
CHART_ROWS = 250
CHART_COLUMNS = (
    *("open", "high", "low", "close", "volume"),
    *("sma_20", "sma_50", "bb_upper_20", "bb_mid_20", "bb_lower_20"),
)
# On prob_up (the served probability that the next bar closes higher): ≥ buy → "buy",
# ≤ sell → "sell", between → "hold". The manifest carries the thresholds it was published with.
SIGNAL_THRESHOLDS = {"buy": 0.55, "sell": 0.45}
# Symbols as Yahoo spells them (^GSPC, BRK-B, EURUSD=X, BTC-USD); checked before any storage path
# is built from one, so "../" or "/" can never reach the object store.
SYMBOL_PATTERN = r"^[A-Za-z0-9^][A-Za-z0-9^._=-]{0,19}$"
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$"
_VERSION_RE = re.compile(VERSION_PATTERN)


# The data-quality report of the pipeline run that published a version (lakehouse/quality/report.py
# writes it; export copies it into the version): GET /quality and /quality/report serve it.
QUALITY_JSON = "quality/report.json"
QUALITY_HTML = "quality/report.html"


def chart_file(symbol: str) -> str:
    return f"{CHART_DIR}/{symbol}.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def signal(prob_up: float, thresholds: dict[str, float] = SIGNAL_THRESHOLDS) -> Literal["buy", "hold", "sell"]:
    if prob_up >= thresholds["buy"]:
        return "buy"
    if prob_up <= thresholds["sell"]:
        return "sell"
    return "hold"


def valid_version(version: str) -> bool:
    return bool(_VERSION_RE.match(version)) and ".." not in version


def snapshot_inputs(snap: dict[str, Any], io_spec: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """(symbols, model input for each symbol's newest row): one row of features, or the newest
    `window` rows for a sequence model; symbols with too few rows for the window are left out."""
    import numpy as np

    index = {c: i for i, c in enumerate(snap["columns"])}
    cols = [index[f] for f in io_spec["features"]]
    window = io_spec.get("window")
    names, xs = [], []
    for symbol, body in snap["symbols"].items():
        values = np.asarray(body["values"], dtype=np.float64)[:, cols]
        if window:
            if len(values) < window:
                continue
            xs.append(values[-window:])
        else:
            xs.append(values[-1])
        names.append(symbol)
    width = (window, len(cols)) if window else (len(cols),)
    return names, np.asarray(xs, dtype=np.float32).reshape(len(xs), *width)


def output_column(out: np.ndarray, io_spec: dict[str, Any]) -> np.ndarray:
    """The one number per row a task's ONNX output holds: P(up) column of the probability
    matrix for classifiers, the flattened prediction for regressors."""
    import numpy as np

    return (out[:, io_spec["column"]] if io_spec["column"] is not None else out.reshape(-1)).astype(np.float64)
