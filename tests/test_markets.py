"""Markets beyond US equities, end to end through the pipeline's ASL (issue 19).

- A 24/7 synthetic universe (BTC-USD, ETH-USD at 15m and 1wk, `--calendar 24x7`) through ingest → silver →
  features → train (15m) → export, annualised on its own calendar, then `/predict/BTC-USD` from the API.
- A CSV dropped under `<lake>/raw/` in S3 (moto_server, its own process): the execution input the
  EventBridge rule produces (`definitions.drop_input_from_event` of an S3 "Object Created" event) run
  through the local runner; the same file dropped again changes no table; a malformed file fails the
  execution at Ingest, recorded, with nothing ingested.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.sources.synthetic import named_candles
from lakehouse.tables import (
    BRONZE_CANDLES,
    GOLD_MODEL_REGISTRY,
    GOLD_PIPELINE_FAILURES,
    GOLD_PREDICTIONS,
    SILVER_CANDLES,
    gold_features,
)
from serving.app import create_app
from serving.settings import Settings
from step_functions import definitions
from step_functions.run_local import EXIT_SUCCEEDED, execute, job_default_arguments, main
from tests.local_servers import free_port
from tests.test_step_functions import SMALL_TRAIN

pytestmark = [pytest.mark.spark, pytest.mark.slow]

TRAIN_FLAGS = [part for k, v in SMALL_TRAIN.items() for part in (f"--train-{k.replace('_', '-')}", v)]


@pytest.fixture(scope="module")
def crypto_lake(spark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("crypto") / "lake"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            [
                "--lake-root", str(root), "--source", "synthetic", "--calendar", "24x7",
                "--symbols", "BTC-USD,ETH-USD", "--intervals", "15m,1wk", "--synthetic-bars", "450",
                "--train-interval", "15m", *TRAIN_FLAGS, "--retry-wait-scale", "0", "--name", "crypto",
            ]
        )  # fmt: skip
    assert code == EXIT_SUCCEEDED, out.getvalue()[-4000:]
    assert "annualised on 24x7: 365 days × 96 bar(s) = 35,040 bars a year for 15m" in out.getvalue()
    return root


def test_a_24x7_universe_trains_on_its_own_calendar_and_serves_btc_usd(spark, crypto_lake):
    root = str(crypto_lake)
    silver = delta_io.read(spark, SILVER_CANDLES, root).toPandas()
    assert silver.groupby(["interval", "symbol"]).size().to_dict() == {
        (interval, symbol): 450 for interval in ("15m", "1wk") for symbol in ("BTC-USD", "ETH-USD")
    }  # nothing quarantined: every bar on its grid
    ts = pd.to_datetime(silver["ts"], utc=True)
    assert (ts[silver["interval"] == "15m"].dt.dayofweek >= 5).sum() > 0  # weekend bars are candles like any other
    assert set(ts[silver["interval"] == "1wk"].dt.day_name()) == {"Monday"}
    for interval in ("15m", "1wk"):
        gold = delta_io.read(spark, gold_features(interval), root).groupBy("symbol").count().collect()
        assert {r.symbol: r["count"] for r in gold} == {"BTC-USD": 450, "ETH-USD": 450}, interval

    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root).toPandas()
    assert set(registry["interval"]) == {"15m"}
    assert set(registry["calendar"]) == {"24x7"} and set(registry["bars_per_year"]) == {365 * 96}

    client = TestClient(create_app(Settings(lake_root=root)))
    response = client.get("/predict/BTC-USD", params={"interval": "15m"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["symbol"] == "BTC-USD" and 0 <= body["prob_up"] <= 1
    assert client.get("/chart/ETH-USD", params={"interval": "15m"}).status_code == 200
    missing = client.get("/predict/SOL-USD", params={"interval": "15m"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_symbol"


# --- a CSV dropped under <lake>/raw/ ------------------------------------------------------------

BUCKET = "candlelake-drops"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def moto_s3():
    """moto_server in a process of its own: the local runner's moto (mock_aws) resets the in-process
    backends, which an in-process server shares."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **{
        "aws_access_key_id": "testing", "aws_secret_access_key": "testing"})  # fmt: skip
    for _ in range(100):
        try:
            client.create_bucket(Bucket=BUCKET)
            break
        except Exception:
            time.sleep(0.1)
    yield endpoint, client
    server.terminate()
    server.wait(10)


def _event(key: str) -> dict:
    """An S3 "Object Created" event as EventBridge delivers it (the shape of the AWS documentation's example)."""
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": {"key": key, "size": 1},
            "reason": "PutObject",
        },
    }


def _versions(spark, root: str) -> dict[str, int | None]:
    tables = (BRONZE_CANDLES, SILVER_CANDLES, gold_features("1d"), GOLD_MODEL_REGISTRY, GOLD_PREDICTIONS)
    return {t.name: delta_io.version(spark, t, root) for t in tables}


def _drop(spark, tmp_path: Path, client, endpoint: str, key: str, body: bytes, name: str, monkeypatch):
    for k, v in S3_ENV.items():
        monkeypatch.setenv(k, v)
    client.put_object(Bucket=BUCKET, Key=key, Body=body)
    cfg = LakeConfig(lake_root=str(tmp_path / "lake"), source="csv", csv_path="x", s3_endpoint=endpoint)
    return execute(
        definitions.PIPELINE,
        definitions.drop_input_from_event(_event(key)),
        lake_root=cfg.resolved_root,
        job_arguments=job_default_arguments(cfg),  # the endpoint, as a deployed job's default argument
        retry_scale=0.0,
        name=name,
        log=lambda *_: None,
    )


@pytest.fixture(scope="module")
def dropped(spark, moto_s3, tmp_path_factory):
    """Daily bars of three markets in one CSV: ETH-USD every day (the default folds need 1,265 labeled bars),
    EURUSD=X on weekdays, BRK.B on exchange sessions; names with `-`, `=` and `.` all the way to the API."""
    endpoint, client = moto_s3
    frame = pd.concat(
        [
            named_candles("ETH-USD", 1_500, "1d", seed=5, calendar="24x7"),
            named_candles("EURUSD=X", 400, "1d", seed=5, calendar="24x5"),
            named_candles("BRK.B", 400, "1d", seed=5, calendar="sessions"),
        ]
    )
    csv = frame[["symbol", "ts", "open", "high", "low", "close", "volume"]].to_csv(index=False).encode()
    tmp_path = tmp_path_factory.mktemp("drop")
    with pytest.MonkeyPatch.context() as mp:
        first = _drop(spark, tmp_path, client, endpoint, "lake/raw/eth-usd.csv", csv, "drop-1", mp)
        after_first = _versions(spark, str(tmp_path / "lake"))
        second = _drop(spark, tmp_path, client, endpoint, "lake/raw/eth-usd.csv", csv, "drop-2", mp)
    return tmp_path / "lake", first, after_first, second


def test_the_rules_input_runs_the_pipeline_on_the_dropped_file(spark, dropped):
    root, first, versions, _ = dropped
    assert first.status == "SUCCEEDED", (first.error, first.cause)
    bronze = delta_io.read(spark, BRONZE_CANDLES, str(root)).toPandas()
    assert bronze.groupby("symbol").size().to_dict() == {"BRK.B": 400, "ETH-USD": 1_500, "EURUSD=X": 400}
    assert set(bronze["source"]) == {"csv"}
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, str(root)).toPandas()
    # The pooled portfolio holds a bar every day (ETH-USD's weekends): its calendar is 24x7, measured.
    assert set(registry["calendar"]) == {"24x7"} and set(registry["bars_per_year"]) == {365}
    assert json.loads((root / "gold" / "models" / "latest").read_text())["version"]
    assert versions[GOLD_PREDICTIONS.name] is not None
    client = TestClient(create_app(Settings(lake_root=str(root))))
    for symbol in ("ETH-USD", "EURUSD=X", "BRK.B"):
        response = client.get(f"/predict/{symbol}")
        assert response.status_code == 200 and response.json()["symbol"] == symbol, response.text
        assert client.get(f"/chart/{symbol}").status_code == 200, symbol
    assert (root / "gold" / "models" / registry["model_version"].iloc[0] / "chart" / "EURUSD=X.json").is_file()


def test_the_same_file_dropped_twice_changes_nothing(spark, dropped):
    root, _, before, second = dropped
    assert second.status == "SUCCEEDED", (second.error, second.cause)
    assert _versions(spark, str(root)) == before
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, str(root)).toPandas()
    assert registry["model_version"].nunique() == 1


def test_a_malformed_drop_fails_the_execution_recorded_with_nothing_ingested(spark, moto_s3, tmp_path, monkeypatch):
    endpoint, client = moto_s3
    body = b"when,price\n2024-01-02,10\n"
    run = _drop(spark, tmp_path, client, endpoint, "lake/raw/prices.csv", body, "bad-drop", monkeypatch)
    assert run.status == "FAILED"
    failed = {s.state: s for s in run.states}
    assert failed["Ingest"].status == "CAUGHT" and failed["RecordFailure"].status == "SUCCEEDED"
    assert "missing column(s)" in (run.cause or "") + json.dumps([s.errors for s in run.states])
    root = str(tmp_path / "lake")
    assert not delta_io.exists(spark, BRONZE_CANDLES, root)  # nothing written…
    failures = delta_io.read(spark, GOLD_PIPELINE_FAILURES, root).toPandas()
    assert list(failures["state"]) == ["Ingest"]  # …but the failure, with its message
    assert "s3://candlelake-drops/lake/raw/prices.csv" in failures["message"].iloc[0] + failures["cause"].iloc[0]


def test_gold_features_do_not_depend_on_the_calendar(spark):
    """No feature assumes sessions: the same bars stamped every day round the clock (24x7) and on weekday
    sessions give gold the same numbers, weekend bars included."""
    from lakecontract.feature_spec import FEATURE_NAMES
    from lakehouse.features import with_features
    from lakehouse.sources.synthetic import bar_times
    from tests.feature_frames import CANDLE_COLUMNS

    bars = named_candles("BTC-USD", 400, "1h", seed=3, calendar="24x7")
    crypto = bars[CANDLE_COLUMNS]
    equity = crypto.assign(ts=bar_times("1h", 400, "sessions"))
    assert (pd.to_datetime(crypto["ts"]).dt.dayofweek >= 5).sum() > 0

    def gold(frame: pd.DataFrame) -> pd.DataFrame:
        out = with_features(spark.createDataFrame(frame)).toPandas().sort_values("ts").reset_index(drop=True)
        return out[["bar_no", "is_warm", "label_up", "label_ret_1", *FEATURE_NAMES]]

    pd.testing.assert_frame_equal(gold(crypto), gold(equity))


def test_the_real_btc_usd_15m_file_through_silver_by_hand(spark, tmp_path):
    """8,721 published bars: 3 partial bars off the grid, and the 32 timestamps two downloads overlap on (21 with
    the same values: the first kept, the repeat quarantined; 11 with other values: both quarantined). Every bar
    stamped +01:00 lands on the same UTC grid as the +00:00 ones."""
    from datetime import UTC, datetime

    from lakehouse.jobs import build_silver, ingest_candles
    from lakehouse.tables import SILVER_QUARANTINE

    cfg = LakeConfig(lake_root=str(tmp_path / "lake"), source="sample", symbols=("BTC-USD",), intervals=("15m",))
    now, quiet = datetime(2026, 1, 1, tzinfo=UTC), {"run_id": None, "log": lambda *_: None}
    assert ingest_candles.run(spark, cfg, now=now, **quiet).rows_written == 8_721
    built = build_silver.run(spark, cfg, now=now, **quiet)
    assert (built.rows_written, built.rows_quarantined) == (8_721 - 46, 3 + 21 + 2 * 11)
    rules = delta_io.read(spark, SILVER_QUARANTINE, cfg.resolved_root).groupBy("rule").count().collect()
    assert {r.rule: r["count"] for r in rules} == {
        "off_interval_grid": 3,
        "duplicate_row": 21,
        "conflicting_duplicate": 22,
    }
