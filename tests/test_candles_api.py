"""POST /predict/candles: bars a caller sends get the lake's answer, by construction and by test.

Parity: each symbol's newest bars, sent as the caller would send them, give the features the gold
table holds for that bar (≤ 1e-9 relative) and the prediction `/predict` serves (≤ 1e-6) — on the
session's published lake (synthetic) and, for the features, on every bundled real series against
gold computed by Spark. Then silver's rules as 422s naming the rule and the bar, the limits (422
and 413, naming them), and the Lambda's process: no Spark, pandas, torch or scipy, same numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lakecontract.feature_spec import FEATURE_NAMES
from lakehouse.features import with_features
from lakehouse.sources.sample import BUNDLED
from serving import candles
from serving.app import create_app
from serving.candles import MIN_BARS
from serving.settings import Settings
from tests.feature_frames import _bars, real_candles_frame
from tests.test_serving import _assert_error, _copy_lake

pytestmark = [pytest.mark.spark, pytest.mark.slow]

FEATURE_RTOL, PROB_TOL = 1e-9, 1e-6
OHLCV = ["open", "high", "low", "close", "volume"]


@pytest.fixture(scope="module")
def api_root(published_lake, tmp_path_factory) -> Path:
    return _copy_lake(published_lake, tmp_path_factory.mktemp("candles"))


@pytest.fixture(scope="module")
def client(api_root) -> TestClient:
    return TestClient(create_app(Settings(lake_root=str(api_root))))


def iso(ts: object) -> str:
    """ISO 8601 in UTC (Spark's toPandas gives naive UTC times: the test session's zone is UTC)."""
    stamp = pd.Timestamp(ts)
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).isoformat()


def as_candles(frame: pd.DataFrame) -> list[dict]:
    """A frame's bars as a client sends them: ISO timestamps, plain floats."""
    records = frame[OHLCV].astype(float).to_dict("records")
    return [{"ts": iso(ts), **r} for ts, r in zip(frame["ts"], records, strict=True)]


def relative_gap(got: dict[str, float | None], want: pd.Series) -> dict[str, float]:
    """Per feature: |got − want| / |want| (0 where both are equal, including both null)."""
    gaps = {}
    for name, value in got.items():
        expected = want[name]
        if value is None or expected is None or np.isnan(expected):
            gaps[name] = 0.0 if (value is None) == (expected is None or np.isnan(expected)) else np.inf
        else:
            gaps[name] = 0.0 if value == expected else abs(value - expected) / max(abs(expected), 1e-300)
    return gaps


# --- parity ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lake_frames(spark, published_lake) -> tuple[pd.DataFrame, pd.DataFrame]:
    from lakehouse import delta_io
    from lakehouse.tables import SILVER_CANDLES, gold_features

    root = published_lake.cfg.resolved_root
    silver = delta_io.read(spark, SILVER_CANDLES, root).where("interval = '1d'").select("symbol", "ts", *OHLCV)
    gold = delta_io.read(spark, gold_features("1d"), root).select("symbol", "ts", *FEATURE_NAMES)
    return silver.toPandas(), gold.toPandas()


def test_each_symbols_newest_bars_get_the_gold_features_and_the_predict_answer(client, lake_frames):
    silver, gold = lake_frames
    for symbol, bars in silver.sort_values("ts").groupby("symbol"):
        sent = bars.tail(MIN_BARS)
        response = client.post(
            "/predict/candles", json={"symbol": symbol, "candles": as_candles(sent), "include_features": True}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        served = client.get("/predict/" + symbol.replace("^", "%5E")).json()
        assert body["asof"] == served["asof"] == iso(sent["ts"].iloc[-1])
        assert body["bars"] == MIN_BARS and body["close"] == served["close"]
        assert body["served"] == served["served"] and body["model_version"] == served["model_version"]
        assert abs(body["prob_up"] - served["prob_up"]) <= PROB_TOL, symbol
        assert abs(body["predicted_return"] - served["predicted_return"]) <= PROB_TOL, symbol
        assert body["signal"] == served["signal"]

        row = gold[(gold.symbol == symbol) & (gold.ts == sent["ts"].iloc[-1])].iloc[0]
        assert len(body["features"]) >= 50
        gaps = relative_gap(body["features"], row)
        worst = max(gaps, key=gaps.get)
        assert gaps[worst] <= FEATURE_RTOL, f"{symbol} {worst}: {body['features'][worst]!r} vs gold {row[worst]!r}"


@pytest.fixture(scope="module")
def bundled_gold(spark) -> pd.DataFrame:
    """Every bundled real series through the gold job's Spark feature code, from its first bar."""
    # BTC-USD's file has four days without prices (2020-04-17, 2020-10-09/12/13): silver quarantines them
    # (missing_value), so gold never sees them; nor does this frame.
    frame = real_candles_frame(tuple(BUNDLED)).dropna()
    return with_features(spark.createDataFrame(frame)).toPandas()


@pytest.mark.parametrize("symbol", sorted(BUNDLED))
def test_every_feature_of_a_bundled_series_newest_bar_equals_gold(client, bundled_gold, symbol, monkeypatch):
    """Real prices, all 115 features (not only those the models read): the API's series starts
    decades after gold's, and from MIN_BARS on its newest bar still carries gold's numbers."""
    monkeypatch.setattr(candles, "input_features", lambda bundle: list(FEATURE_NAMES))
    gold = bundled_gold[bundled_gold.symbol == symbol].sort_values("ts")
    sent = gold.tail(MIN_BARS)
    response = client.post(
        "/predict/candles", json={"symbol": symbol, "candles": as_candles(sent), "include_features": True}
    )
    assert response.status_code == 200, response.text
    features = response.json()["features"]
    assert set(features) == set(FEATURE_NAMES)
    gaps = relative_gap(features, gold.iloc[-1])
    worst = max(gaps, key=gaps.get)
    assert gaps[worst] <= FEATURE_RTOL, f"{worst}: {features[worst]!r} vs gold {gold.iloc[-1][worst]!r}"
    # and the length is needed: a series 400 bars shorter misses gold's ema_50 by far more
    short = candles.compute(*(sent[c].to_numpy(float)[400:] for c in OHLCV), only=["ema_50"])["ema_50"][-1]
    assert abs(short / gold.iloc[-1]["ema_50"] - 1) > 100 * FEATURE_RTOL


# --- validation and limits -----------------------------------------------------------------------

T_END = datetime(2020, 6, 1, tzinfo=UTC)


def walk(n: int = MIN_BARS) -> list[dict]:
    """n consistent daily bars ending at T_END, on the 00:00 UTC grid."""
    frame = _bars(np.random.default_rng(1), n, 50.0)
    frame["ts"] = [T_END - timedelta(days=n - 1 - i) for i in range(n)]
    return as_candles(frame)


def post(client: TestClient, bars: list[dict], **extra):
    """Encoded by Python's json, which writes NaN as the token clients such as pandas send."""
    body = json.dumps({"symbol": "NEW", "candles": bars, **extra})
    return client.post("/predict/candles", content=body, headers={"content-type": "application/json"})


def test_a_valid_series_of_a_symbol_the_lake_has_never_seen_is_answered(client):
    body = post(client, walk()).json()
    assert body["symbol"] == "NEW" and body["asof"] == T_END.isoformat() and body["features"] is None
    assert 0 <= body["prob_up"] <= 1 and body["signal"] in ("buy", "hold", "sell")
    shuffled = walk()[::-1]  # any order: the bars are ordered by ts
    assert post(client, shuffled).json()["prob_up"] == body["prob_up"]


@pytest.mark.parametrize(
    "change, rule",
    [
        ({"low": 1e9}, "ohlc_inconsistent"),
        ({"volume": None}, "missing_value"),
        ({"close": float("nan")}, "missing_value"),
        ({"volume": -1.0}, "negative_volume"),
        ({"open": -1.0, "low": -2.0}, "non_positive_price"),
        ({"ts": "2020-06-01T12:00:00+00:00"}, "off_interval_grid"),
        ({"ts": "2999-01-01T00:00:00+00:00"}, "future_timestamp"),
    ],
)
def test_a_bar_silver_would_quarantine_is_a_422_naming_the_rule_and_the_bar(client, change, rule):
    bars = walk()
    bars[100] = {**bars[100], **change}
    error = _assert_error(post(client, bars), 422, "bar_rejected")
    assert error["details"][0]["bar"] == 100 and error["details"][0]["rule"] == rule
    assert "candles[100]" in error["message"] and rule in error["message"]


def test_same_ts_bars_are_silvers_duplicates(client):
    bars = walk()
    bars.append(dict(bars[-1]))
    error = _assert_error(post(client, bars), 422, "bar_rejected")
    assert [d["rule"] for d in error["details"]] == ["duplicate_row"] and error["details"][0]["bar"] == MIN_BARS
    bars[-1]["volume"] += 1
    error = _assert_error(post(client, bars), 422, "bar_rejected")
    assert [d["rule"] for d in error["details"]] == ["conflicting_duplicate", "conflicting_duplicate"]


def test_intervals_too_few_bars_and_malformed_bodies(client):
    error = _assert_error(post(client, walk(MIN_BARS - 1)), 422, "too_few_bars")
    assert error["details"] == [{"sent": MIN_BARS - 1, "needed": MIN_BARS}] and str(MIN_BARS) in error["message"]
    error = _assert_error(post(client, walk(), interval="1w"), 422, "bar_rejected")
    assert error["details"][0]["rule"] == "unknown_interval"
    _assert_error(post(client, walk(), interval="1h"), 404, "unknown_interval")  # not this version's interval
    _assert_error(post(client, [{**walk(1)[0], "adj_close": 1.0}]), 422, "invalid_request")  # unknown field
    _assert_error(post(client, []), 422, "invalid_request")


def test_the_limits_are_answered_with_the_limit(api_root):
    small = TestClient(create_app(Settings(lake_root=str(api_root), max_candles=MIN_BARS + 5, max_body_bytes=120_000)))
    error = _assert_error(post(small, walk(MIN_BARS + 6)), 422, "too_many_bars")
    assert error["details"] == [{"sent": MIN_BARS + 6, "max": MIN_BARS + 5}]
    assert post(small, walk()).status_code == 200  # ≈ 80 KB: under both limits
    big = json.dumps({"symbol": "NEW", "candles": walk(1000)}).encode()
    for headers, body in (
        ({"content-type": "application/json"}, big),  # Content-Length declared: refused unread
        ({"content-type": "application/json"}, iter([big[:60_000], big[60_000:]])),  # chunked: counted
    ):
        error = _assert_error(small.post("/predict/candles", content=body, headers=headers), 413, "body_too_large")
        assert "120000 bytes" in error["message"]


def test_a_version_trained_on_other_features_is_refused_not_served(client, monkeypatch):
    monkeypatch.setattr(candles, "_SPEC_HASH", "0" * 64)
    error = _assert_error(post(client, walk()), 503, "feature_spec_mismatch")
    assert "000000000000" in error["message"]


# --- the Lambda's process ------------------------------------------------------------------------

LAMBDA_PROBE = """
import json, sys
sys.modules["scipy"] = None  # the Lambda ships no scipy: importing it raises ImportError
from serving.app import handler
from tests.lambda_events import LambdaContext, http_api_v2, response_json
body = json.loads(sys.stdin.read())
out = response_json(handler(http_api_v2("POST", "/predict/candles", body), LambdaContext()))
heavy = ("pyspark", "pandas", "torch", "sklearn", "lightning", "xgboost", "lakehouse", "scipy")
print(json.dumps({"loaded": sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy
                                     and sys.modules[m] is not None}), "answer": out}))
"""


def test_the_lambda_process_loads_no_heavy_module_and_gives_the_same_numbers(client, api_root):
    body = {"symbol": "NEW", "candles": walk(), "include_features": True}
    out = subprocess.run(
        [sys.executable, "-c", LAMBDA_PROBE],
        input=json.dumps(body),
        capture_output=True,
        text=True,
        check=True,
        env={"CANDLELAKE_LAKE_ROOT": str(api_root), "CANDLELAKE_LOG_LEVEL": "WARNING", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).parents[1],
    )
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe["loaded"] == [], out.stderr
    here = client.post("/predict/candles", json=body).json()  # this process has scipy: lfilter
    assert probe["answer"]["features"] == here["features"]  # bit for bit, through JSON
    assert probe["answer"]["prob_up"] == here["prob_up"]
