"""Markets beyond US equities, end to end through the pipeline's ASL (issue 19).

- A 24/7 synthetic universe (BTC-USD, ETH-USD at 1h, `--calendar 24x7`) through ingest → silver →
  features → train → export, annualised on its own calendar, then `/predict/BTC-USD` from the API.
- A CSV dropped under `<lake>/raw/` in S3 (moto_server, its own process): the execution input the
  EventBridge rule produces (`definitions.drop_input_from_event` of an S3 "Object Created" event) run
  through the local runner; the same file dropped again changes no table; a malformed file fails the
  execution at Ingest, recorded, with nothing ingested.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
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
                "--symbols", "BTC-USD,ETH-USD", "--intervals", "1h", "--synthetic-bars", "700",
                "--train-interval", "1h", *TRAIN_FLAGS, "--retry-wait-scale", "0", "--name", "crypto",
            ]
        )  # fmt: skip
    assert code == EXIT_SUCCEEDED, out.getvalue()[-4000:]
    assert "annualised on 24x7: 365 days × 24 bar(s) = 8,760 bars a year for 1h" in out.getvalue()
    return root


def test_a_24x7_universe_trains_on_its_own_calendar_and_serves_btc_usd(spark, crypto_lake):
    root = str(crypto_lake)
    silver = delta_io.read(spark, SILVER_CANDLES, root).toPandas()
    assert set(silver["symbol"]) == {"BTC-USD", "ETH-USD"} and len(silver) == 1_400
    weekend = pd.to_datetime(silver["ts"]).dt.dayofweek >= 5
    assert weekend.sum() > 0  # Saturday and Sunday bars are candles like any other
    gold = delta_io.read(spark, gold_features("1h"), root).select("symbol").distinct().collect()
    assert {r.symbol for r in gold} == {"BTC-USD", "ETH-USD"}

    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, root).toPandas()
    assert set(registry["calendar"]) == {"24x7"} and set(registry["bars_per_year"]) == {365 * 24}

    client = TestClient(create_app(Settings(lake_root=root)))
    response = client.get("/predict/BTC-USD", params={"interval": "1h"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["symbol"] == "BTC-USD" and 0 <= body["prob_up"] <= 1
    assert client.get("/chart/ETH-USD", params={"interval": "1h"}).status_code == 200
    missing = client.get("/predict/SOL-USD", params={"interval": "1h"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_symbol"


# --- a CSV dropped under <lake>/raw/ ------------------------------------------------------------

BUCKET = "candlelake-drops"
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_s3():
    """moto_server in a process of its own: the local runner's moto (mock_aws) resets the in-process
    backends, which an in-process server shares."""
    port = _free_port()
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
    """BTC-USD-style daily bars of a named synthetic walk, every day of the week, dropped as a CSV."""
    endpoint, client = moto_s3
    frame = named_candles("ETH-USD", 1_500, "1d", seed=5, calendar="24x7")  # the default folds need 1,265 labeled bars
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
    assert set(bronze["symbol"]) == {"ETH-USD"} and len(bronze) == 1_500
    assert set(bronze["source"]) == {"csv"}
    registry = delta_io.read(spark, GOLD_MODEL_REGISTRY, str(root)).toPandas()
    assert set(registry["calendar"]) == {"24x7"}  # every day of the week: crypto's calendar, measured
    assert json.loads((root / "gold" / "models" / "latest").read_text())["version"]
    assert versions[GOLD_PREDICTIONS.name] is not None


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
