"""The one place that builds a SparkSession.

On AWS Glue the session comes from the GlueContext (Glue provides Delta through the job
parameter `--datalake-formats delta`). Locally it is Spark in local mode with the Delta and
hadoop-aws JARs that `make jars` fetched with Maven into `.jars/`: no Ivy resolution at start-up,
so it works offline. `CANDLELAKE_SPARK_MASTER` names another master (e.g. a standalone cluster's
spark://host:7077): `spark.jars` then ships the same JARs to every executor, and PYSPARK_PYTHON must
name a Python that imports this package on every node (docs/development.md, "Running the jobs on a
Spark cluster"; tests/test_spark_cluster.py runs the jobs on one).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from lakehouse import log_store

REPO_ROOT = Path(__file__).resolve().parent.parent
JARS_DIR = Path(os.environ.get("CANDLELAKE_JARS_DIR", REPO_ROOT / ".jars"))
REQUIRED_JARS = (
    "delta-spark_2.12-3.3.2.jar",
    "delta-storage-3.3.2.jar",
    "hadoop-aws-3.3.4.jar",
    "aws-java-sdk-bundle-1.12.262.jar",
    "delta-storage-s3-dynamodb-3.3.2.jar",  # built from infra/delta_logstore/ by `make setup`
)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


# Our local jobs are short: C1-only JIT warms up faster (measured: a 20 k-row job 26 s → 19.5 s
# on 2 cores). Long benchmarks set CANDLELAKE_JAVA_OPTS="" to get the C2 compiler back.
JIT_QUICK = "-XX:TieredStopAtLevel=1"


class SparkSetupError(RuntimeError):
    """Spark cannot start as configured; the message names the missing piece."""


def running_on_glue() -> bool:
    try:
        import awsglue  # noqa: F401
    except ImportError:
        return False
    return True


def _local_jars() -> list[str]:
    missing = [j for j in REQUIRED_JARS if not (JARS_DIR / j).is_file()]
    if missing:
        raise SparkSetupError(
            f"missing JARs in {JARS_DIR}: {', '.join(missing)}. Run `make setup` (fetches them with Maven)."
        )
    return [str(JARS_DIR / j) for j in REQUIRED_JARS]


def local_conf(*, shuffle_partitions: int = 4, driver_memory: str = "4g") -> dict[str, str]:
    """Local-mode settings: sized for a 2-core machine, UTC everywhere, s3:// and s3a:// via S3A."""
    conf = {
        **DELTA_CONF,
        "spark.jars": ",".join(_local_jars()),
        "spark.driver.memory": os.environ.get("CANDLELAKE_DRIVER_MEMORY", driver_memory),
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.default.parallelism": str(shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": "-Duser.timezone=UTC " + os.environ.get("CANDLELAKE_JAVA_OPTS", JIT_QUICK),
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.warehouse.dir": str(REPO_ROOT / "build" / "spark-warehouse"),
        # s3:// maps to S3A off Glue. Delta's default S3 log store is safe for one driver per table only;
        # CANDLELAKE_DELTA_LOG_TABLE (below) switches to the DynamoDB one, as the Glue jobs are deployed.
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "spark.hadoop.fs.s3a.aws.credentials.provider": ("com.amazonaws.auth.DefaultAWSCredentialsProviderChain"),
        # Basic Delta protocol for new tables: Athena and other readers accept it.
        "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
        "spark.databricks.delta.retentionDurationCheck.enabled": "true",
        # Delta replays its log with 50 partitions by default: 50 tiny tasks per snapshot on
        # 2 cores. One per core is plenty for logs of this size.
        "spark.databricks.delta.snapshotPartitions": str(max(2, shuffle_partitions // 2)),
    }
    log_table = os.environ.get(log_store.TABLE_ENV)
    if log_table:  # s3:// and s3a:// commits arbitrated by DynamoDB: safe with other drivers writing (log_store.py)
        conf.update(log_store.log_store_conf(log_table, os.environ.get("AWS_REGION", "us-east-1")))
    endpoint = os.environ.get("CANDLELAKE_S3_ENDPOINT")
    if endpoint:
        conf.update(s3a_endpoint_conf(endpoint, prefix="spark.hadoop."))
    return conf


def s3a_endpoint_conf(endpoint: str, *, prefix: str = "") -> dict[str, str]:
    """Hadoop settings to reach an S3-compatible endpoint such as moto_server or MinIO."""
    return {
        f"{prefix}fs.s3a.endpoint": endpoint,
        f"{prefix}fs.s3a.path.style.access": "true",
        f"{prefix}fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https")).lower(),
        f"{prefix}fs.s3a.change.detection.mode": "none",
    }


def configure_s3_endpoint(
    spark: SparkSession, endpoint: str, *, access_key: str | None = None, secret_key: str | None = None
) -> None:
    """Point an already running session's S3A filesystem at another endpoint (tests, MinIO).
    Without keys, credentials come from the default AWS chain (environment, profile, role)."""
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    settings = s3a_endpoint_conf(endpoint)
    if access_key and secret_key:
        settings.update(
            {
                "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
                "fs.s3a.access.key": access_key,
                "fs.s3a.secret.key": secret_key,
            }
        )
    for key, value in settings.items():
        hadoop_conf.set(key, value)


def get_spark(app_name: str = "candlelake", *, shuffle_partitions: int = 4) -> SparkSession:
    """Return the process's SparkSession, building it on first use."""
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if running_on_glue():
        from awsglue.context import GlueContext
        from pyspark.context import SparkContext

        return GlueContext(SparkContext.getOrCreate()).spark_session
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).master(os.environ.get("CANDLELAKE_SPARK_MASTER", "local[2]"))
    for key, value in local_conf(shuffle_partitions=shuffle_partitions).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("CANDLELAKE_SPARK_LOG_LEVEL", "WARN"))
    return spark


def session_for(cfg_s3_endpoint: str | None, app_name: str = "candlelake") -> SparkSession:
    """The job's session, pointed at a non-AWS S3 endpoint when one is configured."""
    spark = get_spark(app_name)
    if cfg_s3_endpoint:
        configure_s3_endpoint(spark, cfg_s3_endpoint)
    return spark
