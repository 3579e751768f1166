"""The prediction API on a published lake: every endpoint, its errors, Lambda events, reloads, tampering.

The lake is the session's small synthetic one (tests/ml_lake.py); each test module copies the
pristine `gold/models` so tampering here cannot leak into other tests.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mangum import Mangum

from serving.app import create_app
from serving.settings import Settings, SettingsError
from tests.lambda_events import LambdaContext, function_url, http_api_v2, response_json

pytestmark = [pytest.mark.spark, pytest.mark.slow]  # the published lake is built with Spark


def _copy_lake(published_lake, folder: Path) -> Path:
    root = folder / "lake"
    shutil.copytree(published_lake.pristine_models, root / "gold" / "models")
    return root


@pytest.fixture(scope="module")
def api_lake(published_lake, tmp_path_factory) -> Path:
    return _copy_lake(published_lake, tmp_path_factory.mktemp("api"))


@pytest.fixture
def fresh_lake(published_lake, tmp_path) -> Path:
    """A copy this one test may change."""
    return _copy_lake(published_lake, tmp_path)


@pytest.fixture
def aws_env(monkeypatch):
    """Fake credentials for moto (boto3 refuses to sign without any)."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def _client(root: Path | str, **settings) -> TestClient:
    return TestClient(create_app(Settings(lake_root=str(root), **settings)))


@pytest.fixture(scope="module")
def client(api_lake) -> TestClient:
    return _client(api_lake)


@pytest.fixture(scope="module")
def published(api_lake):
    models = api_lake / "gold" / "models"
    version = json.loads((models / "latest").read_text())["version"]
    folder = models / version
    return (
        version,
        json.loads((folder / "manifest.json").read_text()),
        json.loads((folder / "features.json").read_text()),
    )


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"] and body["error"]["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body["error"]


# --- endpoints ---------------------------------------------------------------------------------


def test_health_names_the_version_latest_points_at_and_its_age(client, published):
    version, manifest, snap = published
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["model_version"] == version
    assert body["interval"] == manifest["interval"] == "1d" and body["symbols"] == len(snap["symbols"]) == 3
    assert body["artifact_age_seconds"] > 0  # published "2025-01-01" by the fixture's clock
    assert body["load_ms"] > 0


def test_symbols_lists_the_snapshot(client, published):
    _, _, snap = published
    body = client.get("/symbols").json()
    assert [s["symbol"] for s in body["symbols"]] == sorted(snap["symbols"])
    for s in body["symbols"]:
        assert s["last_ts"] == snap["symbols"][s["symbol"]]["ts"][-1] and s["rows"] == 60


def test_latest_returns_the_newest_candles_and_features(client, published):
    _, _, snap = published
    symbol = sorted(snap["symbols"])[0]
    body = client.get("/latest", params={"symbol": symbol, "limit": 3}).json()
    assert body["count"] == 3 and body["symbol"] == symbol
    expected = snap["symbols"][symbol]
    assert [c["ts"] for c in body["candles"]] == expected["ts"][-3:]
    close = snap["columns"].index("close")
    assert body["candles"][-1]["close"] == expected["values"][-1][close]
    assert {"open", "high", "low", "close", "volume", "rsi_14", "KMID"} <= set(body["candles"][0])
    assert client.get("/latest", params={"symbol": symbol}).json()["count"] == 5  # the default


def test_latest_errors(client):
    _assert_error(client.get("/latest", params={"symbol": "NOPE"}), 404, "unknown_symbol")
    _assert_error(client.get("/latest", params={"symbol": "SYN0001", "limit": 0}), 422, "invalid_request")
    _assert_error(client.get("/latest", params={"symbol": "SYN0001", "limit": 61}), 422, "invalid_request")
    _assert_error(client.get("/latest", params={"symbol": "SYN0001", "interval": "5m"}), 404, "unknown_interval")
    _assert_error(client.get("/latest", params={"symbol": "SYN0001", "interval": "1w"}), 422, "invalid_request")
    _assert_error(client.get("/latest"), 422, "invalid_request")


def test_chart_serves_gold_s_newest_250_bars_with_their_overlays(client, published, published_lake, spark):
    """The oracle is gold itself (the features table export read), and the SMA 20 by hand."""
    from lakecontract.artifacts import CHART_COLUMNS, CHART_ROWS
    from lakehouse import delta_io
    from lakehouse.tables import gold_features

    version, manifest, _ = published
    body = client.get("/chart/SYN0002").json()
    assert body["symbol"] == "SYN0002" and body["model_version"] == version and body["interval"] == "1d"
    assert body["columns"] == list(CHART_COLUMNS) and len(body["bars"]) == CHART_ROWS
    gold = delta_io.read(spark, gold_features("1d"), published_lake.cfg.resolved_root).where("symbol = 'SYN0002'")
    frame = gold.select("ts", *CHART_COLUMNS).toPandas().sort_values("ts").tail(CHART_ROWS)
    for bar, (_, row) in zip(body["bars"], frame.iterrows(), strict=True):
        assert pd.Timestamp(bar["ts"]) == pd.Timestamp(row["ts"]).tz_localize("UTC")  # Spark's session zone is UTC
        assert [bar[c] for c in CHART_COLUMNS] == [None if pd.isna(row[c]) else float(row[c]) for c in CHART_COLUMNS]
    closes = [b["close"] for b in body["bars"]]
    assert body["bars"][-1]["sma_20"] == pytest.approx(sum(closes[-20:]) / 20, rel=1e-9)
    assert body["bars"][0]["ts"] < body["bars"][-1]["ts"]  # oldest first
    assert "chart/SYN0002.json" in manifest["files"]  # published, and verified like every file
    # the holdout calls on these bars are gold/predictions' rows of the version, beside what happened
    from lakehouse.tables import GOLD_PREDICTIONS

    scored = (
        delta_io.read(spark, GOLD_PREDICTIONS, published_lake.cfg.resolved_root)
        .where(f"symbol = 'SYN0002' AND model_version = '{version}'")
        .toPandas()
        .sort_values("ts")
    )
    scored = scored[scored["ts"] >= frame["ts"].min()]
    calls = body["calls"]
    assert len(calls["ts"]) == len(scored) > 0
    assert calls["prob_up"] == pytest.approx(scored["prob_up"].tolist(), rel=1e-12)
    assert calls["signal"] == scored["signal"].tolist()
    assert calls["actual_up"] == [None if pd.isna(v) else int(v) for v in scored["actual_up"]]
    assert calls["actual_up"][-1] is None  # the newest bar's next close is not known yet


def test_chart_errors(client, fresh_lake):
    _assert_error(client.get("/chart/NOPE"), 404, "unknown_symbol")
    _assert_error(client.get("/chart/SYN0001", params={"interval": "5m"}), 404, "unknown_interval")
    _assert_error(client.get("/chart/SYN0001", params={"interval": "1w"}), 422, "invalid_request")
    # A version published before export wrote chart bars: a 404 that says so, not a 500.
    from tests.ml_lake import unpublish

    unpublish(fresh_lake, "chart/")
    error = _assert_error(_client(fresh_lake).get("/chart/SYN0001"), 404, "no_chart")
    assert "published before export wrote chart bars" in error["message"]


def test_quality_counts_the_published_run_s_expectations_by_layer_and_tier(client, published, published_lake, spark):
    """The oracle: gold/dq_results of the run that published the version (r1 in the test lake)."""
    from lakehouse import delta_io
    from lakehouse.tables import GOLD_DQ_RESULTS

    version, manifest, _ = published
    body = client.get("/quality").json()
    assert body["model_version"] == version and body["run_id"] == "r1" and body["report"] == "/quality/report"
    results = delta_io.read(spark, GOLD_DQ_RESULTS, published_lake.cfg.resolved_root).where("run_id = 'r1'").toPandas()
    expected = {}
    for (table, tier, success), n in results.groupby(["table_name", "tier", "success"]).size().items():
        expected.setdefault(table, ({}, {}))[0 if success else 1][tier] = int(n)
    assert {layer["table"]: (layer["passed"], layer["failed"]) for layer in body["layers"]} == expected
    assert {layer["layer"] for layer in body["layers"]} == {"silver", "gold"}
    report = client.get("/quality/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "script-src" not in report.headers["content-security-policy"]  # default-src 'none': no script at all
    published_html = Path(published_lake.cfg.resolved_root, "reports", "dq", "r1.html").read_bytes()
    assert report.content == published_html and "quality/report.html" in manifest["files"]


def test_quality_of_a_version_published_without_a_report_is_a_404(fresh_lake):
    from tests.ml_lake import unpublish

    unpublish(fresh_lake, "quality/")
    fresh = _client(fresh_lake)
    for path in ("/quality", "/quality/report"):
        error = _assert_error(fresh.get(path), 404, "no_quality_report")
        assert "published without a data-quality report" in error["message"]


def _newest_scores(published_lake) -> dict[str, dict]:
    """The oracle: gold/predictions of the published version as the batch export wrote them — the
    NATIVE scikit-learn / PyTorch models (which the API never loads) scored on the training frame
    (not on the API's snapshot inputs). Each symbol's newest bar is the one with no next bar yet."""
    frame = published_lake.predictions
    newest = frame[frame["ts"] == frame.groupby("symbol")["ts"].transform("max")]
    assert len(newest) == 3 and newest["actual_return"].isna().all() and newest["symbol"].is_unique
    assert np.isfinite(newest[["prob_up", "predicted_return", "baseline_prob_up", "close"]].to_numpy()).all()
    return {row["symbol"]: row for row in newest.to_dict("records")}


def _republish(lake: Path, serve: dict[str, str]) -> None:
    """Serve `task` by its model or its baseline, as export would have published it: manifest
    edited, and `latest` re-signed with the new manifest's sha256 (files are unchanged)."""
    models = lake / "gold" / "models"
    pointer = json.loads((models / "latest").read_text())
    path = models / pointer["version"] / "manifest.json"
    manifest = json.loads(path.read_text())
    for task, how in serve.items():
        manifest["models"][task].update(promoted=how == "model", serve=how)
    raw = json.dumps(manifest).encode()
    path.write_bytes(raw)
    (models / "latest").write_text(json.dumps({**pointer, "manifest_sha256": hashlib.sha256(raw).hexdigest()}))


def _utc(ts) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo else t


def _signal(prob_up: float) -> str:
    return "buy" if prob_up >= 0.55 else "sell" if prob_up <= 0.45 else "hold"  # the documented thresholds


@pytest.mark.parametrize(
    "serve",
    [
        None,
        {"direction": "model", "return": "model"},
        {"direction": "baseline", "return": "baseline"},
        {"direction": "model", "return": "baseline"},
        {"direction": "baseline", "return": "model"},
    ],
    ids=["as-published", "both-models", "both-baselines", "direction-model", "return-model"],
)
def test_predict_equals_the_batch_scores_of_the_native_models_for_every_symbol(published_lake, tmp_path, serve):
    """Whatever the seed promoted, both branches are exercised: a task served by its model answers
    the native model's number for the newest bar; one served by its baseline answers the baseline's."""
    lake = _copy_lake(published_lake, tmp_path)
    if serve:
        _republish(lake, serve)
    oracle = _newest_scores(published_lake)
    client = _client(lake)
    assert sorted(s["symbol"] for s in client.get("/symbols").json()["symbols"]) == sorted(oracle)
    for symbol, row in oracle.items():
        how = serve or {
            "direction": "model" if row["direction_promoted"] else "baseline",
            "return": "model" if row["return_promoted"] else "baseline",
        }
        response = client.post("/predict", json={"symbol": symbol})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == row["model_version"] == published_lake.version and body["symbol"] == symbol
        assert _utc(body["asof"]) == _utc(row["ts"]) and body["close"] == pytest.approx(row["close"], rel=1e-12)
        assert body["horizon"] == {"bars": 1, "interval": "1d"} and body["interval"] == row["interval"]
        assert body["served"] == {
            "direction": row["direction_model"] if how["direction"] == "model" else "baseline",
            "return": row["return_model"] if how["return"] == "model" else "baseline",
        }
        if how["direction"] == "model":
            assert body["prob_up"] == pytest.approx(row["prob_up"], abs=1e-5), symbol
        else:
            assert body["prob_up"] == row["baseline_prob_up"]
        if how["return"] == "model":
            assert body["predicted_return"] == pytest.approx(row["predicted_return"], abs=1e-5), symbol
        else:
            assert body["predicted_return"] == 0.0  # persistence
        assert body["predicted_close"] == pytest.approx(row["close"] * (1 + body["predicted_return"]), rel=1e-9)
        assert body["signal"] == _signal(body["prob_up"]) and body["notes"] == []
        if serve is None:
            assert body["signal"] == row["signal"]  # as export scored the served probability
        assert body["baseline"] == {
            "prob_up": row["baseline_prob_up"],
            "signal": _signal(row["baseline_prob_up"]),
            "predicted_return": 0.0,
            "predicted_close": pytest.approx(row["close"], rel=1e-12),
        }


def test_predict_get_equals_post_and_accepts_an_encoded_caret(fresh_lake):
    client = _client(fresh_lake)
    assert client.get("/predict/SYN0002").json() == client.post("/predict", json={"symbol": "SYN0002"}).json()
    # A real symbol with ^: not in this lake, but it passes validation and reaches the lookup.
    _assert_error(client.get("/predict/%5EGSPC"), 404, "unknown_symbol")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"symbol": "NOPE"}, 404, "unknown_symbol"),
        ({"symbol": "SYN0001", "interval": "1h"}, 404, "unknown_interval"),
        ({"symbol": "SYN0001", "model": "20990101T000000Z"}, 404, "unknown_model_version"),
        ({"symbol": "../../etc/passwd"}, 422, "invalid_request"),
        ({"symbol": "SYN0001", "model": "../../secrets"}, 422, "invalid_request"),
        ({"symbol": ""}, 422, "invalid_request"),
        ({}, 422, "invalid_request"),
        ({"symbol": "SYN0001", "extra": 1}, 422, "invalid_request"),
        ({"symbol": 5}, 422, "invalid_request"),
        ({"symbol": "SYN0001", "interval": "1w"}, 422, "invalid_request"),
    ],
)
def test_predict_rejects_bad_requests_with_json_errors(client, body, status, code):
    _assert_error(client.post("/predict", json=body), status, code)


def test_malformed_json_unknown_routes_and_methods_are_json_errors(client):
    error = _assert_error(
        client.post("/predict", content=b'{"symbol": ', headers={"content-type": "application/json"}),
        422,
        "invalid_request",
    )
    assert "details" in error and "symbol" not in json.dumps(error["details"]).replace('"loc"', "")  # no echo
    # Bytes that cannot be decoded as JSON text at all: FastAPI's 400, as JSON (documented: test_openapi_contract).
    undecodable = client.post("/predict", content=b'{"symbol": "\xff"}', headers={"content-type": "application/json"})
    assert "There was an error parsing the body" in _assert_error(undecodable, 400, "bad_request")["message"]
    _assert_error(client.get("/nowhere"), 404, "not_found")
    _assert_error(client.delete("/predict/SYN0001"), 405, "method_not_allowed")


def test_an_unexpected_error_is_a_json_500_without_a_traceback(api_lake, capsys):
    client = _client(api_lake)

    async def boom() -> None:
        raise RuntimeError("secret internals")

    client.app.add_api_route("/boom", boom)
    error = _assert_error(client.get("/boom"), 500, "internal_error")
    assert "secret internals" not in json.dumps(error)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    unhandled = [r for r in logged if r.get("event") == "unhandled"]
    assert unhandled and "secret internals" in unhandled[0]["exception"]  # the log has it, the client not
    assert unhandled[0]["request_id"] == error["request_id"]


def test_validation_errors_do_not_echo_the_input(client):
    secret = "x" * 30 + "TOPSECRET"
    error = _assert_error(client.post("/predict", json={"symbol": secret}), 422, "invalid_request")
    assert "TOPSECRET" not in json.dumps(error)


def test_models_list_and_detail_carry_registry_rows_and_the_manifest(client, published):
    version, manifest, _ = published
    listing = client.get("/models").json()
    assert listing["latest"] == version and [v["version"] for v in listing["versions"]] == [version]
    summary = listing["versions"][0]
    assert summary["latest"] and set(summary["models"]) == {"direction", "return"}
    assert summary["models"]["direction"]["baseline"] == manifest["models"]["direction"]["baseline"]["brier"]
    detail = client.get(f"/models/{version}").json()
    assert detail["manifest"]["files"] == manifest["files"] and detail["latest"]
    algorithms = {(r["task"], r["algorithm"]) for r in detail["registry"]}
    assert len(detail["registry"]) == 7 and ("return", "lstm") in algorithms  # every candidate, not just the best
    promoted = {r["task"] for r in detail["registry"] if r["promoted"]}
    assert promoted == {t for t, d in manifest["models"].items() if d["promoted"]}
    assert client.get("/models/latest").json()["version"] == version
    _assert_error(client.get("/models/20990101T000000Z"), 404, "unknown_model_version")
    _assert_error(client.get("/models/..%2F..%2Fetc"), 404, "not_found")
    _assert_error(client.get("/models/bad..name"), 404, "unknown_model_version")


def test_routes_reach_the_cache_and_settings_through_their_dependencies(api_lake, tmp_path):
    """Routes hold no state of their own: swapping the app's cache (a dependency override) swaps
    what every route answers from, and two apps over two lakes answer each from its own."""
    from serving.dependencies import get_cache

    served, empty = _client(api_lake), _client(tmp_path / "empty-lake", reload_seconds=7)
    # /health names no bucket or path: an API reader learns the served version, not where the lake is
    assert "lake_root" not in served.get("/health").json() and str(api_lake) not in served.get("/health").text
    _assert_error(empty.get("/health"), 503, "no_model")
    served_cache = served.app.state.cache

    async def the_served_cache() -> object:
        return served_cache

    empty.app.dependency_overrides[get_cache] = the_served_cache
    assert empty.get("/predict/SYN0001").json() == served.get("/predict/SYN0001").json()
    health = empty.get("/health").json()
    assert health["model_version"] == served.get("/health").json()["model_version"]
    assert health["reload_seconds"] == 7 != served.get("/health").json()["reload_seconds"]  # its own settings


def test_openapi_documents_every_route(client):
    spec = client.get("/openapi.json").json()
    assert {
        "/health",
        "/symbols",
        "/latest",
        "/predict",
        "/predict/{symbol}",
        "/models",
        "/models/{version}",
        "/pipeline/runs",
        "/pipeline/runs/{run_id}",
    } <= set(spec["paths"])
    assert "PredictRequest" in spec["components"]["schemas"] and client.get("/docs").status_code == 200


# --- artifacts: none, tampered, reloaded, from S3 -----------------------------------------------


def test_no_model_yet_is_503_everywhere_it_matters(tmp_path):
    client = _client(tmp_path / "empty-lake")
    for response in (
        client.get("/health"),
        client.post("/predict", json={"symbol": "SYN0001"}),
        client.get("/symbols"),
    ):
        assert "make run" in _assert_error(response, 503, "no_model")["message"]


@pytest.mark.parametrize("target", ["direction/model.onnx", "features.json", "return/io.json", "manifest.json"])
def test_a_tampered_artifact_is_refused_with_the_reason(fresh_lake, target):
    models = fresh_lake / "gold" / "models"
    version = json.loads((models / "latest").read_text())["version"]
    path = models / version / target
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    path.write_bytes(bytes(data))
    client = _client(fresh_lake)
    error = _assert_error(client.post("/predict", json={"symbol": "SYN0001"}), 503, "artifact_refused")
    assert "sha256" in error["message"] and target in error["message"]
    _assert_error(client.get("/health"), 503, "artifact_refused")


def _publish_copy(models: Path, old: str, new: str, serve_baseline: str | None = None) -> None:
    """A second version, as export would publish it: files, manifest, then the `latest` switch."""
    shutil.copytree(models / old, models / new)
    manifest = json.loads((models / new / "manifest.json").read_text())
    manifest["version"] = new
    if serve_baseline:
        manifest["models"][serve_baseline].update(promoted=False, serve="baseline")
    raw = json.dumps(manifest).encode()
    (models / new / "manifest.json").write_bytes(raw)
    pointer = {
        "version": new,
        "manifest_sha256": hashlib.sha256(raw).hexdigest(),
        "published_at": "2025-02-01T00:00:00+00:00",
    }
    (models / "latest").write_text(json.dumps(pointer))


def test_a_new_latest_is_picked_up_and_older_versions_stay_addressable(fresh_lake, published):
    version, manifest, _ = published
    models = fresh_lake / "gold" / "models"
    eager, lazy = _client(fresh_lake, reload_seconds=0), _client(fresh_lake, reload_seconds=3600)
    before = eager.post("/predict", json={"symbol": "SYN0001"}).json()
    _publish_copy(models, version, "29990101T000000Z", serve_baseline="direction")
    after = eager.post("/predict", json={"symbol": "SYN0001"}).json()
    assert after["model_version"] == "29990101T000000Z" and after["served"]["direction"] == "baseline"
    assert after["prob_up"] == manifest["baselines"]["direction"]["prob_up"] and after["signal"] == "hold"
    assert after["predicted_return"] == before["predicted_return"]  # the return model is still served
    # The old version on request, and a container that checks hourly still on the old one.
    assert eager.post("/predict", json={"symbol": "SYN0001", "model": version}).json() == before
    assert lazy.post("/predict", json={"symbol": "SYN0001"}).json()["model_version"] == version
    assert [v["version"] for v in eager.get("/models").json()["versions"]] == ["29990101T000000Z", version]


def _logged(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_an_unreadable_store_after_a_good_load_keeps_serving_the_version_in_memory(fresh_lake, published, capsys):
    """The verified version in memory needs no storage: a store that cannot be read (a symlink
    loop stands for a broken mount or a permission error, which root ignores) or is gone keeps
    it served, /health says why it may be stale; what needs the store is a JSON 503, never a 500."""
    version = published[0]
    client = _client(fresh_lake, reload_seconds=0)  # every request looks at the store
    before = client.get("/predict/SYN0001").json()
    assert client.get("/health").json()["store_error"] is None
    models, away = fresh_lake / "gold" / "models", fresh_lake / "gold" / "models.away"
    models.rename(away)
    models.symlink_to(models)  # ELOOP on every read
    capsys.readouterr()
    response = client.get("/predict/SYN0001")
    assert response.status_code == 200 and response.json() == before
    health = client.get("/health").json()
    assert health["status"] == "degraded" and health["model_version"] == version
    assert "latest" in health["store_error"] and "symbolic links" in health["store_error"]
    assert version in health["store_error"]
    assert any(r.get("event") == "store_unreadable" and r["level"] == "WARNING" for r in _logged(capsys))
    # What the version in memory cannot answer needs the store: a clear 503.
    other = _assert_error(
        client.get("/predict/SYN0001", params={"model": "20990101T000000Z"}), 503, "storage_unavailable"
    )
    assert "20990101T000000Z/manifest.json" in other["message"]
    _assert_error(client.get("/models"), 503, "storage_unavailable")
    # The lake folder gone altogether (wiped for a rebuild, unmounted): still the version in memory.
    models.unlink()
    assert client.post("/predict", json={"symbol": "SYN0001"}).json() == before
    health = client.get("/health").json()
    assert health["status"] == "degraded" and "does not exist" in health["store_error"]
    # Back: healthy again, nothing reloaded needlessly.
    away.rename(models)
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["store_error"] is None and health["model_version"] == version
    assert client.get("/predict/SYN0001").json() == before


def test_a_new_version_that_cannot_be_read_yet_is_retried_not_skipped(fresh_lake, published):
    """`latest` switched to a version whose files cannot be read (yet): the old version stays
    served, and once they can be read the new one is loaded — the failed attempt is not remembered
    as done."""
    version = published[0]
    models, new = fresh_lake / "gold" / "models", "29990101T000000Z"
    client = _client(fresh_lake, reload_seconds=0)
    before = client.get("/predict/SYN0001").json()
    _publish_copy(models, version, new, serve_baseline="direction")
    (models / new).rename(models / "staged")
    (models / new).symlink_to(models / new)  # ELOOP: the new version's manifest cannot be read
    response = client.get("/predict/SYN0001")
    assert response.status_code == 200 and response.json() == before
    health = client.get("/health").json()
    assert health["status"] == "degraded" and f"{new}/manifest.json" in health["store_error"]
    (models / new).unlink()
    (models / "staged").rename(models / new)
    after = client.get("/predict/SYN0001").json()
    assert after["model_version"] == new and after["served"]["direction"] == "baseline"
    assert client.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"\x80\x81 not utf-8", "not JSON"),
        (b'{"version": "2025', "not JSON"),
        (b'["20250101T000000Z"]', "not an object"),
        (b'{"published_at": "2025-01-01T00:00:00+00:00"}', "'version'"),
        (b'{"version": 7, "manifest_sha256": "ab"}', "'version'"),
        (b'{"version": "20250101T000000Z"}', "'manifest_sha256'"),
    ],
    ids=["not-utf8", "truncated", "a-list", "no-version", "version-not-a-string", "no-sha256"],
)
def test_a_malformed_latest_is_a_503_naming_it_at_start_and_after_a_good_load(fresh_lake, content, says):
    """A readable but malformed pointer is a bad publish: refused (503), as a tampered version is,
    not a 500 and not a crash at import; a good pointer again serves again."""
    latest = fresh_lake / "gold" / "models" / "latest"
    good = latest.read_bytes()
    running = _client(fresh_lake, reload_seconds=0)
    assert running.get("/predict/SYN0001").status_code == 200
    latest.write_bytes(content)
    for client in (running, _client(fresh_lake)):  # a container already serving, and a new one
        for response in (client.get("/predict/SYN0001"), client.get("/health")):
            error = _assert_error(response, 503, "artifact_refused")
            assert "gold/models/latest" in error["message"] and says in error["message"], error
    latest.write_bytes(good)
    assert running.get("/predict/SYN0001").status_code == 200


def test_a_latest_naming_a_missing_manifest_is_a_503_naming_the_manifest(fresh_lake):
    models = fresh_lake / "gold" / "models"
    good = (models / "latest").read_bytes()
    running = _client(fresh_lake, reload_seconds=0)
    assert running.get("/predict/SYN0001").status_code == 200
    (models / "latest").write_text(json.dumps({"version": "20990101T000000Z", "manifest_sha256": "0" * 64}))
    for client in (running, _client(fresh_lake)):
        error = _assert_error(client.post("/predict", json={"symbol": "SYN0001"}), 503, "artifact_refused")
        assert str(models / "20990101T000000Z" / "manifest.json") in error["message"]
        assert "does not exist" in error["message"]
    (models / "latest").write_bytes(good)
    assert running.get("/predict/SYN0001").status_code == 200


def test_artifacts_are_served_from_a_bucket_on_moto_server(published_lake, aws_env, client):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="candlelake-api")
        for path in published_lake.pristine_models.rglob("*"):
            if path.is_file():
                key = f"lake/gold/models/{path.relative_to(published_lake.pristine_models)}"
                s3.put_object(Bucket="candlelake-api", Key=key, Body=path.read_bytes())
        remote = _client("s3://candlelake-api/lake", s3_endpoint=endpoint)
        kept = _client("s3://candlelake-api/lake", s3_endpoint=endpoint, reload_seconds=0)
        assert remote.get("/health").json()["status"] == "ok"
        for symbol in ("SYN0001", "SYN0003"):
            assert remote.get(f"/predict/{symbol}").json() == client.get(f"/predict/{symbol}").json()
        assert [v["version"] for v in remote.get("/models").json()["versions"]] == [published_lake.version]
        # Tamper in the bucket: a new container refuses it.
        key = f"lake/gold/models/{published_lake.version}/direction/model.onnx"
        body = s3.get_object(Bucket="candlelake-api", Key=key)["Body"].read()
        s3.put_object(Bucket="candlelake-api", Key=key, Body=body[:-1] + bytes([body[-1] ^ 1]))
        _assert_error(
            _client("s3://candlelake-api/lake", s3_endpoint=endpoint).get("/predict/SYN0001"), 503, "artifact_refused"
        )
        # The bucket gone: a container that loaded before keeps its verified version and says why.
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket="candlelake-api"):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket="candlelake-api", Key=obj["Key"])
        s3.delete_bucket(Bucket="candlelake-api")
        assert kept.get("/predict/SYN0003").json() == client.get("/predict/SYN0003").json()
        health = kept.get("/health").json()
        assert health["status"] == "degraded" and "NoSuchBucket" in health["store_error"], health
    finally:
        server.stop()


# --- Lambda: Mangum with real event shapes ------------------------------------------------------


@pytest.mark.parametrize("make_event", [http_api_v2, function_url], ids=["http-api-v2", "function-url"])
def test_the_lambda_handler_serves_api_gateway_and_function_url_events(api_lake, published, make_event):
    version = published[0]
    handler = Mangum(create_app(Settings(lake_root=str(api_lake))), lifespan="off")
    context = LambdaContext()
    out = handler(make_event("POST", "/predict", {"symbol": "SYN0001"}), context)
    assert out["statusCode"] == 200 and out["headers"]["content-type"] == "application/json"
    assert response_json(out)["model_version"] == version
    assert out["headers"]["x-request-id"] == context.aws_request_id
    encoded = handler(make_event("POST", "/predict", {"symbol": "SYN0001"}, b64=True), context)
    assert response_json(encoded) == response_json(out)
    got = handler(make_event("GET", "/predict/SYN0001", query="interval=1d"), context)
    assert response_json(got) == response_json(out)
    latest = handler(make_event("GET", "/latest", query="symbol=SYN0001&limit=2"), context)
    assert response_json(latest)["count"] == 2
    missing = handler(make_event("GET", "/predict/NOPE"), context)
    assert missing["statusCode"] == 404 and response_json(missing)["error"]["code"] == "unknown_symbol"
    invalid = handler(make_event("POST", "/predict", "{not json"), context)
    assert invalid["statusCode"] == 422 and response_json(invalid)["error"]["code"] == "invalid_request"
    undecodable = handler(make_event("POST", "/predict", b'{"symbol": "\xff"}', b64=True), context)
    assert undecodable["statusCode"] == 400 and response_json(undecodable)["error"]["code"] == "bad_request"
    caller = handler(make_event("GET", "/health", headers={"x-request-id": "client-42"}), context)
    assert caller["headers"]["x-request-id"] == "client-42"


def test_cors_allows_only_the_configured_origins(api_lake):
    client = _client(api_lake, cors_origins=("https://app.example.com",))
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    ok = client.options("/predict", headers={"origin": "https://app.example.com", **preflight})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://app.example.com"
    other = client.get("/health", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in _client(api_lake).get("/health", headers={"origin": "x"}).headers


def test_logs_are_json_lines_with_the_request_id(api_lake, capsys):
    client = _client(api_lake)
    capsys.readouterr()
    response = client.get("/predict/NOPE", headers={"x-request-id": "trace-me-1"})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    access = [r for r in lines if r.get("event") == "request"]
    assert access and access[-1]["request_id"] == "trace-me-1" == response.headers["x-request-id"]
    assert access[-1]["status"] == 404 and access[-1]["path"] == "/predict/NOPE" and access[-1]["ms"] >= 0


def test_settings_reject_nonsense(monkeypatch):
    with pytest.raises(SettingsError, match="CANDLELAKE_RELOAD_SECONDS"):
        Settings.from_env({"CANDLELAKE_RELOAD_SECONDS": "soon"})
    s = Settings.from_env(
        {"CANDLELAKE_CORS_ORIGINS": "https://a.example, https://b.example", "CANDLELAKE_LAKE_ROOT": "s3://b/l/"}
    )
    assert s.cors_origins == ("https://a.example", "https://b.example") and s.lake_root == "s3://b/l"


# --- pipeline runs -----------------------------------------------------------------------------


def moto_pipeline_machine() -> tuple[Any, str]:
    """(a Step Functions client, the ARN of a one-state machine named as the deployed pipeline), inside
    mock_aws: what AwsRuns starts executions on."""
    import boto3

    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.create_state_machine(
        name="candlelake-pipeline",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    return sfn, arn


OPERATORS = ("arn:aws:sts::123456789012:assumed-role/candlelake-operator/*",)
OPERATOR = "arn:aws:sts::123456789012:assumed-role/candlelake-operator/alice"
READER = "arn:aws:iam::123456789012:user/analyst"


def _as(caller: str | None, method: str, path: str, body: dict | None = None) -> dict:
    """A Function URL event (auth AWS_IAM) signed by `caller`, or unsigned."""
    event = function_url(method, path, body)
    if caller:
        event["requestContext"]["authorizer"] = {"iam": {"userArn": caller, "accountId": "123456789012"}}
    return event


def test_pipeline_runs_start_executions_on_step_functions_for_operators_one_at_a_time(api_lake, aws_env):
    from moto import mock_aws

    with mock_aws():
        sfn, arn = moto_pipeline_machine()
        app = create_app(Settings(lake_root=str(api_lake), state_machine_arn=arn, operator_arns=OPERATORS))
        handler, context = Mangum(app, lifespan="off"), LambdaContext()

        def call(caller: str | None, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
            out = handler(_as(caller, method, path, body), context)
            return out["statusCode"], response_json(out)

        # Readers of the API may not rewrite the lake (issue 17): not signed, signed by a non-operator.
        for caller in (None, READER):
            status, body = call(caller, "POST", "/pipeline/runs", {"symbols": "^GSPC"})
            assert (status, body["error"]["code"]) == (403, "not_an_operator"), body
        assert sfn.list_executions(stateMachineArn=arn)["executions"] == []
        nobody = Mangum(create_app(Settings(lake_root=str(api_lake), state_machine_arn=arn)), lifespan="off")
        assert response_json(nobody(_as(OPERATOR, "POST", "/pipeline/runs", {}), context))["error"]["code"] == (
            "runs_not_allowed"
        )

        status, run = call(
            OPERATOR, "POST", "/pipeline/runs", {"symbols": "^GSPC,MSFT", "backfill": True, "train_folds": 2}
        )
        assert status == 202, run
        assert run["mode"] == "aws" and run["status"] == "RUNNING" and run["id"].startswith("api-")
        assert run["input"] == {"symbols": "^GSPC,MSFT", "backfill": "true", "train_folds": "2"}
        described = sfn.describe_execution(executionArn=run["execution_arn"])
        assert json.loads(described["input"]) == run["input"]
        status, got = call(READER, "GET", f"/pipeline/runs/{run['id']}")  # following a run is reading
        assert status == 200 and got["execution_arn"] == run["execution_arn"]

        # One run at a time on AWS too: another while this one is RUNNING is refused, naming it.
        assert sfn.describe_execution(executionArn=run["execution_arn"])["status"] == "RUNNING"  # moto keeps it so
        status, body = call(OPERATOR, "POST", "/pipeline/runs", {"name": "nightly-1"})
        assert (status, body["error"]["code"]) == (409, "run_in_progress") and run["id"] in body["error"]["message"]
        sfn.stop_execution(executionArn=run["execution_arn"])
        status, named = call(OPERATOR, "POST", "/pipeline/runs", {"name": "nightly-1"})
        assert status == 202, named
        # StartExecution is idempotent on (name, input); the same name with another input is a conflict.
        status, again = call(OPERATOR, "POST", "/pipeline/runs", {"name": "nightly-1"})
        assert status == 202 and again["execution_arn"] == named["execution_arn"]
        status, body = call(
            OPERATOR,
            "POST",
            "/pipeline/runs",
            {"name": "nightly-1", "source": "csv", "csv_path": "s3://lake/raw/a.csv"},
        )
        assert (status, body["error"]["code"]) == (409, "run_exists")
        assert call(READER, "GET", "/pipeline/runs/nope")[1]["error"]["code"] == "unknown_run"
        assert call(OPERATOR, "POST", "/pipeline/runs", {"source": "ftp"})[0] == 422
        assert call(OPERATOR, "POST", "/pipeline/runs", {"source": "csv", "csv_path": "/etc/passwd"})[0] == 422
        assert call(OPERATOR, "POST", "/pipeline/runs", {"symbols": "A;rm -rf"})[0] == 422
        # The newest executions, for anyone who may read the API (the dashboard's runs panel).
        status, listing = call(READER, "GET", "/pipeline/runs")
        assert status == 200 and listing["mode"] == "aws" and listing["starts"] == "operators"
        assert {r["id"] for r in listing["runs"]} == {run["id"], "nightly-1"}
        statuses = {r["id"]: r["status"] for r in listing["runs"]}
        assert statuses[run["id"]] == "ABORTED" and statuses["nightly-1"] == "RUNNING"
        assert len(app.state.runs.recent(1)) == 1  # ?limit= (a query string: the contract test drives it)
        nobody_lists = response_json(nobody(_as(READER, "GET", "/pipeline/runs"), context))
        assert nobody_lists["starts"] == "nobody"


def test_a_local_pipeline_run_executes_the_state_machine_in_the_background(tmp_path, monkeypatch):
    """The real runner, made to fail at Ingest (quick): the run is FAILED with the state machine's
    error, recorded in the lake, and readable from the runner's history after the process ends."""
    monkeypatch.setenv("CANDLELAKE_INJECT_FAULT", "Ingest:9:States.TaskFailed")
    monkeypatch.setenv("CANDLELAKE_RETRY_WAIT_SCALE", "0")
    lake = tmp_path / "lake"
    client = _client(lake)
    started = client.post("/pipeline/runs", json={"name": "local-1", "source": "synthetic"})
    assert started.status_code == 202, started.text
    assert started.json()["mode"] == "local" and started.json()["status"] == "RUNNING"
    _assert_error(client.post("/pipeline/runs", json={}), 409, "run_in_progress")
    deadline = time.monotonic() + 240
    while (status := client.get("/pipeline/runs/local-1").json())["status"] == "RUNNING":
        assert time.monotonic() < deadline, Path(status["log"]).read_text()[-2000:]
        time.sleep(1)
    assert status["status"] == "FAILED" and status["error"] == "PipelineFailed", status
    assert [s["state"] for s in status["states"]][:2] == ["Defaults", "ApplyInput"]
    assert (lake / "gold" / "pipeline_failures" / "_delta_log").is_dir()
    assert _client(lake).get("/pipeline/runs/local-1").json()["status"] == "FAILED"  # after a restart too
    # `make run` in a terminal holds the lake: a POST is refused at once, naming that run.
    from lakecontract import lake_lock

    with lake_lock.holding(str(lake), "make-run-in-a-terminal"):
        refused = _assert_error(client.post("/pipeline/runs", json={"name": "local-2"}), 409, "lake_busy")
    assert "held by run 'make-run-in-a-terminal'" in refused["message"]
    assert not (lake / "runs" / "local-2.log").exists(), "nothing was started"


def test_pipeline_runs_without_a_state_machine_or_a_local_lake_folder_are_503(tmp_path, aws_env):
    """A Lambda given an s3:// lake but no CANDLELAKE_STATE_MACHINE_ARN, or a local lake root that
    cannot hold runs/ (here a file): nothing can run the pipeline, and the answer says so."""
    from moto import mock_aws

    with mock_aws():  # no bucket: the API has no model either, and says which store failed
        client = _client("s3://candlelake-nothing/lake")
        assert "candlelake-nothing" in _assert_error(client.get("/health"), 503, "storage_unavailable")["message"]
        for response in (client.post("/pipeline/runs", json={"name": "r1"}), client.get("/pipeline/runs/r1")):
            error = _assert_error(response, 503, "pipeline_unavailable")
            assert "CANDLELAKE_STATE_MACHINE_ARN" in error["message"]
    not_a_folder = tmp_path / "lake"
    not_a_folder.write_text("a file where the lake folder should be")
    error = _assert_error(
        _client(not_a_folder).post("/pipeline/runs", json={"name": "r1"}), 503, "pipeline_unavailable"
    )
    assert str(not_a_folder / "runs") in error["message"]


def _wait_for_exit(client: TestClient, run_id: str) -> dict:
    deadline = time.monotonic() + 60
    while (response := client.get(f"/pipeline/runs/{run_id}")).json().get("status") == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_runner_that_exits_without_a_usable_history_reports_failed_not_500(tmp_path, monkeypatch):
    """Stand-ins for step_functions.run_local that die before or while writing `runs/<id>.json`."""
    from serving.pipeline_runs import LocalRuns

    lake = tmp_path / "lake"
    scripts = {
        "dies": "import sys; print('runner: cannot import pyspark'); sys.exit(3)",
        "cut": 'import sys; open(sys.argv[1], \'w\').write(\'{"execution": "cut", "status": "SUCC\')',
        "odd": "import sys; open(sys.argv[1], 'w').write('[\"SUCCEEDED\"]')",
    }

    def command(self, run_id: str, fields: dict[str, str]) -> list[str]:
        return [sys.executable, "-c", scripts[run_id], str(lake / "runs" / f"{run_id}.json")]

    monkeypatch.setattr(LocalRuns, "_command", command)
    client = _client(lake)
    assert client.post("/pipeline/runs", json={"name": "dies"}).status_code == 202
    status = _wait_for_exit(client, "dies")
    assert status["status"] == "FAILED" and status["error"] == "runner exited with code 3", status
    assert "cannot import pyspark" in status["cause"]
    for run_id in ("cut", "odd"):
        assert client.post("/pipeline/runs", json={"name": run_id}).status_code == 202
        status = _wait_for_exit(client, run_id)
        assert status["status"] == "FAILED" and status["error"] == "HistoryUnreadable", status
        assert str(lake / "runs" / f"{run_id}.json") in status["cause"]
    listing = client.get("/pipeline/runs").json()  # this process's runs and the saved histories, newest first
    assert listing["mode"] == "local" and listing["starts"] == "anyone"
    assert [r["id"] for r in listing["runs"]] == ["odd", "cut", "dies"]
    assert [r["status"] for r in listing["runs"]] == ["FAILED"] * 3
    assert [r["id"] for r in _client(lake).get("/pipeline/runs").json()["runs"]] == ["odd", "cut"]  # histories only
    restarted = _client(lake)  # the history is all a restarted API knows
    assert restarted.get("/pipeline/runs/cut").json()["error"] == "HistoryUnreadable"
    _assert_error(restarted.get("/pipeline/runs/dies"), 404, "unknown_run")  # no history, no process


# --- what the Lambda package may contain --------------------------------------------------------


def test_the_api_imports_no_spark_torch_sklearn_or_pandas(api_lake):
    probe = (
        "import sys, serving.app as a; a.app; "
        "heavy = [m for m in ('pyspark', 'torch', 'sklearn', 'pandas', 'lightning', 'lakehouse') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"CANDLELAKE_LAKE_ROOT": str(api_lake), "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).parents[1],
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_serving_requirements_match_the_pyproject_extra():
    import tomllib

    root = Path(__file__).parents[1]
    extra = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serving"]
    names = lambda reqs: {r.split(">")[0].split("=")[0].split("<")[0].strip().lower() for r in reqs}  # noqa: E731
    wanted = [
        line
        for line in (root / "serving" / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert names(extra) == names(wanted) == {"fastapi", "mangum", "pydantic", "numpy", "onnxruntime", "boto3"}
    pinned = (root / "serving" / "requirements.txt").read_text()
    for heavy in ("pyspark", "torch", "scikit-learn", "pandas"):
        assert f"\n{heavy}==" not in pinned


def test_recent_local_runs_sort_newest_first_whatever_the_spelling_of_their_start(tmp_path):
    """The runner's histories spell a state's start with a space (str(datetime)); ISO elsewhere."""
    from serving.pipeline_runs import LocalRuns

    runs = tmp_path / "lake" / "runs"
    runs.mkdir(parents=True)
    for run_id, started in (("late", "2026-12-01 10:40:43+00:00"), ("early", "2026-12-01T09:00:00+00:00")):
        history = {"status": "SUCCEEDED", "states": [{"state": "Defaults", "started": started}]}
        (runs / f"{run_id}.json").write_text(json.dumps(history))
    recent = LocalRuns(str(tmp_path / "lake")).recent(10)
    assert [(r["id"], r["started_at"]) for r in recent] == [
        ("late", "2026-12-01T10:40:43+00:00"),
        ("early", "2026-12-01T09:00:00+00:00"),
    ]
