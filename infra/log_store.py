"""The Glue jobs' side of Delta's DynamoDB log store: the table's shape, the `--conf` that selects it and
the actions its client calls. A copy of lakehouse/log_store.py's constants (the app imports no runtime
code); tests/test_infra.py checks that the two agree."""

from __future__ import annotations

LOG_STORE_CLASS = "io.delta.storage.S3DynamoDBLogStore"
LOG_PARTITION_KEY = "tablePath"
LOG_SORT_KEY = "fileName"
LOG_TTL_ATTRIBUTE = "expireTime"
# What S3DynamoDBLogStore's client calls (infra/delta_logstore/src): describeTable once per JVM, getItem,
# putItem (conditional: the arbiter of a version), query (the newest entry of a table). Not CreateTable:
# the app creates the table, a job that cannot find it fails instead of creating an unmanaged one.
LOG_STORE_ACTIONS = ("dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query")


def log_store_conf(table_name: str, region: str) -> str:
    """The settings after Glue's single `--conf` (chained with ` --conf `): s3:// and s3a:// commits
    through the DynamoDB log store on `table_name`."""
    settings = {
        "spark.delta.logStore.s3.impl": LOG_STORE_CLASS,
        "spark.delta.logStore.s3a.impl": LOG_STORE_CLASS,
        "spark.io.delta.storage.S3DynamoDBLogStore.ddb.tableName": table_name,
        "spark.io.delta.storage.S3DynamoDBLogStore.ddb.region": region,
    }
    return " --conf ".join(f"{key}={value}" for key, value in settings.items())
