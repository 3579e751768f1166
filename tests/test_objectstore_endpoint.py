"""The configured S3 endpoint (`--s3-endpoint`, cfg.s3_endpoint) reaches the boto3 writers too.

Spark got the endpoint, but ObjectStore read only CANDLELAKE_S3_ENDPOINT, so with the flag alone the
tables went to the given endpoint and the reports and model files to AWS. These tests build the
stores the way the jobs do, from a config made of flags, with the environment variable unset, and
look for the objects on a moto_server with a plain boto3 client (the oracle). The default endpoint
is pointed at a closed local port, so a store that ignores the configured one fails fast here
instead of reaching for AWS.
"""

import argparse
import json
from datetime import UTC, datetime

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lakecontract.objectstore import ObjectStore
from lakehouse.config import add_config_arguments, config_from
from lakehouse.ml.export import describe_latest, latest_version
from lakehouse.quality.report import latest_report, write_report
from lakehouse.quality.validate import ExpectationOutcome, ValidationRun
from tests.local_servers import free_port

BUCKET = "endpoint-test-lake"


@pytest.fixture(scope="module")
def moto_endpoint():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


@pytest.fixture
def cfg(moto_endpoint, monkeypatch, tmp_path):
    """A job's config from flags only: --lake-root s3a://… --s3-endpoint <moto_server>."""
    endpoint, _ = moto_endpoint
    monkeypatch.delenv("CANDLELAKE_S3_ENDPOINT", raising=False)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    # boto3's default endpoint, standing in for AWS: a port nobody listens on, one attempt.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    root = f"s3a://{BUCKET}/{tmp_path.name}"
    args = add_config_arguments(argparse.ArgumentParser()).parse_args(["--lake-root", root, "--s3-endpoint", endpoint])
    config = config_from(args, environ={})
    assert config.s3_endpoint == endpoint
    return config


def _prefix(cfg) -> str:
    return cfg.resolved_root.split(f"s3a://{BUCKET}/", 1)[1]


def test_an_object_store_given_the_config_endpoint_writes_there(cfg, moto_endpoint):
    _, client = moto_endpoint
    store = ObjectStore(cfg.resolved_root, "runs", endpoint=cfg.s3_endpoint)
    store.write("x.json", '{"a": 1}', "application/json")
    body = client.get_object(Bucket=BUCKET, Key=f"{_prefix(cfg)}/runs/x.json")["Body"].read()
    assert json.loads(body) == {"a": 1}
    assert store.names(".json") == ["x.json"]


def test_the_quality_report_goes_to_the_configured_endpoint(cfg, moto_endpoint):
    _, client = moto_endpoint
    started = datetime(2024, 1, 2, tzinfo=UTC)
    run = ValidationRun(
        run_id="run-ep",
        layer="silver",
        table_name="silver/candles",
        suite="silver_candles",
        started_at=started,
        ended_at=started,
        outcomes=[ExpectationOutcome("key_unique", "expect_x", "halt", True, None, 0, 0.0, 10)],
    )
    uri = write_report([run], cfg.resolved_root, s3_endpoint=cfg.s3_endpoint)
    assert uri == f"{cfg.resolved_root}/reports/dq/run-ep.html"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=_prefix(cfg))["Contents"]}
    assert keys == {f"{_prefix(cfg)}/reports/dq/{name}" for name in ("run-ep.html", "run-ep.json", "index.html")}
    assert latest_report(cfg.resolved_root, s3_endpoint=cfg.s3_endpoint) == uri


def test_the_published_model_pointer_is_read_at_the_configured_endpoint(cfg, moto_endpoint):
    _, client = moto_endpoint
    prefix = _prefix(cfg)
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/gold/models/latest", Body=b'{"version": "v7"}')
    manifest = {
        "models": {"direction": {"algorithm": "logreg", "promoted": True, "reason": "beats it"}},
        "baselines": {},
    }
    client.put_object(Bucket=BUCKET, Key=f"{prefix}/gold/models/v7/manifest.json", Body=json.dumps(manifest).encode())
    assert latest_version(cfg.resolved_root, s3_endpoint=cfg.s3_endpoint) == "v7"
    assert "direction serves logreg: beats it" in describe_latest(cfg.resolved_root, s3_endpoint=cfg.s3_endpoint)


# --- a GetObject AccessDenied that means "not there" ----------------------------------------------


def _denying_store(listed_keys: list[str]) -> tuple[ObjectStore, object]:
    """A store whose client answers GetObject with 403 AccessDenied (S3's answer for a missing key to
    a role that may list only under a prefix) and lists `listed_keys` under the key asked for."""
    from botocore.stub import Stubber

    store = ObjectStore("s3://lake-bucket/lake")
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    key = "lake/gold/models/v1/model.onnx"
    where = {"Bucket": "lake-bucket", "Key": key}
    stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403, expected_params=where)
    stub.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": k} for k in listed_keys], "KeyCount": len(listed_keys)},
        {"Bucket": "lake-bucket", "Prefix": key, "MaxKeys": 1},
    )
    stub.activate()
    store._s3 = client
    return store, stub


def test_an_access_denied_read_of_a_missing_object_is_not_found_and_a_real_denial_is_not():
    """Issue 17: a missing model file was AccessDenied → 503 from the API (firing the 5xx alarm)."""
    from lakecontract.objectstore import ObjectNotFound, StoreUnavailable

    store, stub = _denying_store([])
    with pytest.raises(ObjectNotFound):
        store.read_bytes("gold/models/v1/model.onnx")
    stub.assert_no_pending_responses()
    store, _ = _denying_store(["lake/gold/models/v1/model.onnx"])  # it is there: the denial is real
    with pytest.raises(StoreUnavailable, match="AccessDenied"):
        store.read_bytes("gold/models/v1/model.onnx")
