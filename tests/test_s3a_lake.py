"""The silver build against an s3a:// lake root served by moto_server on 127.0.0.1.

This proves the S3 path end to end (hadoop-aws + Delta's S3 log store + our table paths), not
only the local one. moto runs as a real HTTP server, so the JVM's S3A client talks to it the way
it would talk to S3.
"""

from datetime import UTC, datetime

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.jobs import build_silver, ingest_candles
from lakehouse.spark import configure_s3_endpoint
from lakehouse.tables import BRONZE_CANDLES, SILVER_CANDLES, SILVER_QUARANTINE
from tests.local_servers import free_port

pytestmark = pytest.mark.spark

BUCKET = "candlelake-test-lake"


@pytest.fixture(scope="module")
def s3_endpoint():
    """One server for the module: the JVM caches its S3A filesystem per bucket, endpoint included,
    so a second server on another port would leave it calling the first (and retrying for minutes)."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def _point_at(spark, endpoint, monkeypatch):
    # The JVM gets its keys from the Hadoop conf; boto3 (reports, model files) from the environment.
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CANDLELAKE_S3_ENDPOINT": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    configure_s3_endpoint(spark, endpoint, access_key="testing", secret_key="testing")


def test_silver_build_on_an_s3a_lake_root(spark, s3_endpoint, monkeypatch):
    endpoint, client = s3_endpoint
    _point_at(spark, endpoint, monkeypatch)
    cfg = LakeConfig(
        lake_root=f"s3a://{BUCKET}/lake",
        source="synthetic",
        symbols=(),
        synthetic_symbols=2,
        synthetic_bars=40,
    )
    now = datetime(2025, 1, 1, tzinfo=UTC)
    ingest = ingest_candles.run(spark, cfg, run_id=None, now=now, log=lambda *_: None)
    built = build_silver.run(spark, cfg, run_id=None, now=now, log=lambda *_: None)

    assert ingest.rows_written == 80
    assert built.rows_written == 80 and built.rows_quarantined == 0
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="lake/")["Contents"]}
    for tbl in (BRONZE_CANDLES, SILVER_CANDLES, SILVER_QUARANTINE):
        assert f"lake/{tbl.name}/_delta_log/00000000000000000000.json" in keys
    assert any(k.startswith("lake/silver/candles/interval=1d/") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("lake/reports/dq/") and k.endswith(".html") for k in keys)
    assert "lake/gold/dq_results/_delta_log/00000000000000000000.json" in keys
    assert delta_io.read(spark, SILVER_CANDLES, cfg.resolved_root).count() == 80

    again = build_silver.run(spark, cfg, run_id=None, now=now, log=lambda *_: None)
    assert again.rows_read == 0


@pytest.mark.slow
def test_train_and_export_publish_verified_models_to_an_s3a_lake(spark, s3_endpoint, monkeypatch):
    import hashlib
    import json

    from lakehouse.jobs import build_features, export_models, train_models
    from lakehouse.ml.export import latest_version
    from lakehouse.ml.lstm import LSTMSettings
    from lakehouse.ml.train import TrainSettings

    endpoint, client = s3_endpoint
    _point_at(spark, endpoint, monkeypatch)
    cfg = LakeConfig(
        lake_root=f"s3a://{BUCKET}/ml", source="synthetic", symbols=(), synthetic_symbols=2, synthetic_bars=400
    )
    now, quiet = datetime(2025, 1, 1, tzinfo=UTC), {"log": lambda *_: None}
    ingest_candles.run(spark, cfg, run_id=None, now=now, **quiet)
    build_silver.run(spark, cfg, run_id=None, now=now, **quiet)
    build_features.run(spark, cfg, run_id=None, now=now, **quiet)
    settings = TrainSettings(folds=2, test_bars=40, gap=2, lstm=LSTMSettings(window=5, epochs=1, hidden=4))
    version = train_models.run(spark, cfg, run_id=None, now=now, settings=settings, **quiet).details["model_version"]
    export_models.run(spark, cfg, run_id=None, now=now, **quiet)

    assert latest_version(cfg.resolved_root) == version
    body = lambda key: client.get_object(Bucket=BUCKET, Key=f"ml/{key}")["Body"].read()  # noqa: E731
    pointer = json.loads(body("gold/models/latest"))
    manifest_bytes = body(f"gold/models/{version}/manifest.json")
    assert pointer["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    for name, meta in json.loads(manifest_bytes)["files"].items():
        assert hashlib.sha256(body(f"gold/models/{version}/{name}")).hexdigest() == meta["sha256"], name
