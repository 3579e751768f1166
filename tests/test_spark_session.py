"""How `lakehouse.spark.get_spark` builds its session: from the GlueContext on Glue, locally from
the JARs in `.jars/`, and with a clear `SparkSetupError` when those are missing.

No Spark starts here: `SparkSession` (and on the Glue path `SparkContext.getOrCreate` and the
`awsglue` package) are replaced by recording fakes, so these tests also run where Java is absent.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from lakehouse import spark as spark_module
from lakehouse.spark import SparkSetupError

JAR_NAMES = (
    "delta-spark_2.12-3.3.2.jar",
    "delta-storage-3.3.2.jar",
    "hadoop-aws-3.3.4.jar",
    "aws-java-sdk-bundle-1.12.262.jar",
    "delta-storage-s3-dynamodb-3.3.2.jar",
)


class FakeBuilder:
    """Records what get_spark asks of SparkSession.builder; getOrCreate returns a fake session."""

    def __init__(self) -> None:
        self.settings: dict[str, str] = {}
        self.log_levels: list[str] = []

    def appName(self, name: str) -> FakeBuilder:  # pyspark's spelling
        self.settings["app"] = name
        return self

    def master(self, master: str) -> FakeBuilder:
        self.settings["master"] = master
        return self

    def config(self, key: str, value: str) -> FakeBuilder:
        self.settings[key] = value
        return self

    def getOrCreate(self) -> types.SimpleNamespace:  # pyspark's spelling
        context = types.SimpleNamespace(setLogLevel=self.log_levels.append)
        return types.SimpleNamespace(name="local session", sparkContext=context)


@pytest.fixture
def no_active_session(monkeypatch: pytest.MonkeyPatch) -> FakeBuilder:
    """`lakehouse.spark.SparkSession` as a fake with no active session and a recording builder."""
    builder = FakeBuilder()
    fake = types.SimpleNamespace(getActiveSession=lambda: None, builder=builder)
    monkeypatch.setattr(spark_module, "SparkSession", fake)
    return builder


@pytest.fixture
def fake_glue(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """An `awsglue` package in sys.modules whose GlueContext records the SparkContext it gets,
    and a `SparkContext.getOrCreate` that returns a marker object instead of starting Spark."""
    calls: list[tuple[str, object]] = []
    spark_context = object()

    class GlueContext:
        def __init__(self, sc: object) -> None:
            calls.append(("GlueContext", sc))
            self.spark_session = "glue session"

    def get_or_create() -> object:
        calls.append(("SparkContext.getOrCreate", None))
        return spark_context

    package = types.ModuleType("awsglue")
    context = types.ModuleType("awsglue.context")
    context.GlueContext = GlueContext  # type: ignore[attr-defined]
    package.context = context  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "awsglue", package)
    monkeypatch.setitem(sys.modules, "awsglue.context", context)
    import pyspark.context

    monkeypatch.setattr(pyspark.context.SparkContext, "getOrCreate", staticmethod(get_or_create))
    return types.SimpleNamespace(calls=calls, spark_context=spark_context)


def _jar_dir(tmp_path: Path, names: tuple[str, ...]) -> Path:
    folder = tmp_path / "jars"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_on_glue_the_session_comes_from_the_glue_context_and_needs_no_local_jars(
    fake_glue, no_active_session, monkeypatch, tmp_path
):
    monkeypatch.setattr(spark_module, "JARS_DIR", tmp_path / "no-jars-here")
    assert spark_module.running_on_glue() is True
    session = spark_module.get_spark("ingest_candles")
    assert session == "glue session"
    assert fake_glue.calls == [("SparkContext.getOrCreate", None), ("GlueContext", fake_glue.spark_context)]
    assert no_active_session.settings == {}, "no local builder on Glue"


def test_off_glue_there_is_no_awsglue_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "awsglue", None)  # a None entry makes `import awsglue` fail
    assert spark_module.running_on_glue() is False


def test_an_active_session_is_reused_without_building_another(monkeypatch, fake_glue):
    active = object()
    builder = FakeBuilder()
    fake = types.SimpleNamespace(getActiveSession=lambda: active, builder=builder)
    monkeypatch.setattr(spark_module, "SparkSession", fake)
    assert spark_module.get_spark() is active
    assert builder.settings == {} and fake_glue.calls == [], "neither the builder nor Glue was asked"


def test_locally_the_session_loads_its_jars_and_runs_in_utc(no_active_session, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "awsglue", None)
    jars = _jar_dir(tmp_path, JAR_NAMES)
    monkeypatch.setattr(spark_module, "JARS_DIR", jars)
    monkeypatch.delenv("CANDLELAKE_SPARK_MASTER", raising=False)
    monkeypatch.delenv("CANDLELAKE_SPARK_LOG_LEVEL", raising=False)
    monkeypatch.delenv("CANDLELAKE_S3_ENDPOINT", raising=False)
    monkeypatch.delenv("CANDLELAKE_DELTA_LOG_TABLE", raising=False)
    session = spark_module.get_spark("unit", shuffle_partitions=3)
    got = no_active_session.settings
    assert session.name == "local session"
    assert (got["app"], got["master"]) == ("unit", "local[2]")
    assert got["spark.jars"].split(",") == [str(jars / name) for name in JAR_NAMES]
    assert got["spark.sql.session.timeZone"] == "UTC"
    assert got["spark.driver.extraJavaOptions"].startswith("-Duser.timezone=UTC")
    assert got["spark.sql.shuffle.partitions"] == "3"
    assert got["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert "spark.hadoop.fs.s3a.endpoint" not in got
    assert "spark.delta.logStore.s3a.impl" not in got, "the DynamoDB log store only where a table is named"
    assert no_active_session.log_levels == ["WARN"]


def test_a_named_delta_log_table_routes_s3_commits_through_dynamodb(no_active_session, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "awsglue", None)
    monkeypatch.setattr(spark_module, "JARS_DIR", _jar_dir(tmp_path, JAR_NAMES))
    monkeypatch.setenv("CANDLELAKE_DELTA_LOG_TABLE", "ops-delta-log")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    spark_module.get_spark("unit")
    got = no_active_session.settings
    for scheme in ("s3", "s3a"):
        assert got[f"spark.delta.logStore.{scheme}.impl"] == "io.delta.storage.S3DynamoDBLogStore"
    assert got["spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName"] == "ops-delta-log"
    assert got["spark.io.delta.storage.S3DynamoDBLogStore.ddb.region"] == "eu-west-1"


@pytest.mark.parametrize("present", [(), JAR_NAMES[:-1]], ids=["none", "one-missing"])
def test_missing_jars_are_a_setup_error_naming_them_and_what_to_run(no_active_session, monkeypatch, tmp_path, present):
    monkeypatch.setitem(sys.modules, "awsglue", None)
    jars = _jar_dir(tmp_path, present)
    monkeypatch.setattr(spark_module, "JARS_DIR", jars)
    with pytest.raises(SparkSetupError) as err:
        spark_module.get_spark("unit")
    message = str(err.value)
    missing = [name for name in JAR_NAMES if name not in present]
    assert f"missing JARs in {jars}: {', '.join(missing)}." in message
    assert "make setup" in message
    assert "spark.jars" not in no_active_session.settings, "no session was started"
