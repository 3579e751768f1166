"""Delta's DynamoDB-backed log store for s3:// and s3a:// tables.

S3 has no put-if-absent, so Delta's default S3 log store is only safe when one driver at a time
writes a table: two jobs committing the same version at once both "succeed" and one commit is
lost. `S3DynamoDBLogStore` makes a conditional DynamoDB write the arbiter of each version, which
lets concurrent Glue jobs (or a job and a maintenance run) append to the same table.

The jar is built from vendored sources (infra/delta_logstore/README.md). The table shape below
is the one the log store creates and reads (infra/delta_logstore/src/.../S3DynamoDBLogStore.java);
the CDK app copies these constants to create the table itself, which is why this module imports
nothing beyond the standard library.
"""

from __future__ import annotations

LOG_STORE_CLASS = "io.delta.storage.S3DynamoDBLogStore"
LOG_STORE_JAR = "delta-storage-s3-dynamodb-3.3.2.jar"
# Names the DynamoDB table a deployment provisioned; DEFAULT_TABLE_NAME otherwise.
TABLE_ENV = "CANDLELAKE_DELTA_LOG_TABLE"
DEFAULT_TABLE_NAME = "candlelake-delta-log"

# The DynamoDB table's key schema and TTL attribute, as the log store writes them. The partition
# key is the table's root URI *with its scheme*: s3://b/t and s3a://b/t are different keys, so every
# writer of one table must address it with the same scheme or they do not exclude each other.
PARTITION_KEY = "tablePath"  # HASH, string, e.g. s3://bucket/lake/silver/candles
SORT_KEY = "fileName"  # RANGE, string: the commit file, e.g. 00000000000000000000.json
# Number, epoch seconds: written when the commit is complete (ddb.ttl later, 1 day by default);
# the table's TTL on it lets DynamoDB drop entries Delta no longer needs.
TTL_ATTRIBUTE = "expireTime"

# The log store reads its own settings under either `spark.io.delta.storage.S3DynamoDBLogStore.`
# or `io.delta.storage.S3DynamoDBLogStore.`; the Spark-prefixed form is the one spark-submit and
# Glue's --conf pass through (they drop keys that do not start with `spark.`).
_SETTINGS_PREFIX = "io.delta.storage.S3DynamoDBLogStore."


def log_store_conf(table_name: str, region: str, *, prefix: str = "spark.") -> dict[str, str]:
    """The conf that routes s3:// and s3a:// Delta commits through the DynamoDB log store.

    Both schemes are set: Glue addresses the lake as s3://, local runs and tests as s3a://, and a
    scheme left on the default store would commit without mutual exclusion. `prefix=""` gives the
    unprefixed forms, which Delta and the log store also accept when set programmatically.
    """
    return {
        f"{prefix}delta.logStore.s3.impl": LOG_STORE_CLASS,
        f"{prefix}delta.logStore.s3a.impl": LOG_STORE_CLASS,
        f"{prefix}{_SETTINGS_PREFIX}ddb.tableName": table_name,
        f"{prefix}{_SETTINGS_PREFIX}ddb.region": region,
    }


def glue_conf_argument(table_name: str, region: str) -> str:
    """The same settings as the value of Glue's single `--conf` job parameter.

    Glue accepts `--conf` only once per job, so further settings are chained inside its value as
    " --conf k=v"; the first has no leading `--conf` because Glue supplies it.
    """
    return " --conf ".join(f"{key}={value}" for key, value in log_store_conf(table_name, region).items())
