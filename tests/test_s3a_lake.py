"""The silver build against an s3a:// lake root served by moto_server on 127.0.0.1.

This proves the S3 path end to end (hadoop-aws + Delta's S3 log store + our table paths), not
only the local one. moto runs as a real HTTP server, so the JVM's S3A client talks to it the way
it would talk to S3.
"""

import socket
from datetime import UTC, datetime

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lakehouse import delta_io
from lakehouse.config import LakeConfig
from lakehouse.ingest import run_ingest
from lakehouse.silver_build import run_build_silver
from lakehouse.spark import configure_s3_endpoint
from lakehouse.tables import BRONZE_CANDLES, SILVER_CANDLES, SILVER_QUARANTINE

pytestmark = pytest.mark.spark

BUCKET = "candlelake-test-lake"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint():
    port = _free_port()
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


def test_silver_build_on_an_s3a_lake_root(spark, s3_endpoint, monkeypatch):
    endpoint, client = s3_endpoint
    # The JVM gets its keys from the Hadoop conf; boto3 (data-quality reports) from the environment.
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CANDLELAKE_S3_ENDPOINT": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    configure_s3_endpoint(spark, endpoint, access_key="testing", secret_key="testing")
    cfg = LakeConfig(
        lake_root=f"s3a://{BUCKET}/lake",
        source="synthetic",
        symbols=(),
        synthetic_symbols=2,
        synthetic_bars=40,
    )
    now = datetime(2025, 1, 1, tzinfo=UTC)
    ingest = run_ingest(spark, cfg, now=now, log=lambda *_: None)
    built = run_build_silver(spark, cfg, now=now, log=lambda *_: None)

    assert ingest.rows_written == 80
    assert built.rows_written == 80 and built.rows_quarantined == 0
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="lake/")["Contents"]}
    for tbl in (BRONZE_CANDLES, SILVER_CANDLES, SILVER_QUARANTINE):
        assert f"lake/{tbl.name}/_delta_log/00000000000000000000.json" in keys
    assert any(k.startswith("lake/silver/candles/interval=1d/") and k.endswith(".parquet") for k in keys)
    assert any(k.startswith("lake/reports/dq/") and k.endswith(".html") for k in keys)
    assert "lake/gold/dq_results/_delta_log/00000000000000000000.json" in keys
    assert delta_io.read(spark, SILVER_CANDLES, cfg.resolved_root).count() == 80

    again = run_build_silver(spark, cfg, now=now, log=lambda *_: None)
    assert again.rows_read == 0
