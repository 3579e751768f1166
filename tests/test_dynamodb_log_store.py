"""Two Spark drivers append to one s3a:// Delta table at the same moment, arbitrated by DynamoDB.

S3 cannot refuse a second writer of `_delta_log/<version>.json`, so with Delta's default S3 log
store two drivers committing the same version both "succeed" and one commit is silently lost.
Delta's S3DynamoDBLogStore (the vendored jar, lakehouse/log_store.py) claims each version with a
conditional DynamoDB put first; the loser sees the version taken and Delta retries it on the next.

Here moto_server plays S3 and DynamoDB (over TLS: tests/tls_moto.py says why), and two driver
processes (this module run with `python -m`, see `_drive`) meet at a file barrier before every
round, so both start their append from the same snapshot and race for the same version. The test
then checks the three places the outcome is visible: DynamoDB (one complete entry per version),
the log in S3 (consecutive versions, each append exactly once, at least one commit retried past
a version the other driver took) and the rows (every row of both drivers exactly once).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lakehouse.log_store import LOG_STORE_JAR, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, log_store_conf
from lakehouse.spark import JARS_DIR, REPO_ROOT, local_conf, s3a_endpoint_conf
from tests.tls_moto import CREDENTIALS, REGION, jvm_options, make_tls, regions_override, tls_moto_server

pytestmark = pytest.mark.spark

BUCKET = "candlelake-ddb-lake"
TABLE_PATH = f"s3a://{BUCKET}/lake/t"
WARM_UP_PATH = f"s3a://{BUCKET}/lake/warm_up"
DDB_TABLE = "candlelake-delta-log-test"
ROUNDS = 2  # rounds in which both drivers append at once, after the one that creates the table
ROWS = 3  # per append
WRITERS = ("w0", "w1")  # w0 creates the table and reads it back at the end
# Measured on 2 cores: ~43 s for the whole test on an idle machine, ~60 s beside another Spark test
# run. Two concurrent drivers fit the budget, so the test keeps them: one driver could not race.
WAIT_S = 150  # the longest any wait may take: it only ever ends a broken run


def test_concurrent_drivers_commit_every_version_once_through_dynamodb(tmp_path):
    jar = JARS_DIR / LOG_STORE_JAR
    if not jar.is_file():
        pytest.fail(f"{jar} is missing: run `make setup` (it builds the jar with infra/delta_logstore/build.sh)")
    tls = make_tls(tmp_path)
    with tls_moto_server(tls, tmp_path / "moto.log") as moto:
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        settings = {
            "endpoint": moto.endpoint,
            "jar": str(jar),
            "java_options": jvm_options(tls, regions_override(tmp_path / "regions.xml", moto.port)),
        }
        (tmp_path / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        _run_drivers(tmp_path)
        commits = _commit_infos(s3)
        ddb = moto.client("dynamodb")
        table = ddb.describe_table(TableName=DDB_TABLE)["Table"]
        items = ddb.scan(TableName=DDB_TABLE, ConsistentRead=True)["Items"]

    appends = ["w0-0"] + [f"{w}-{r}" for r in range(1, ROUNDS + 1) for w in WRITERS]
    versions = list(range(len(appends)))
    assert sorted(commits) == versions  # _delta_log/0…N.json with no gap: no commit lost
    assert sorted(c["userMetadata"] for c in commits.values()) == sorted(appends)  # each append once
    # A commit that read version v-2 but landed on v lost the race for v-1 to the other driver and
    # was retried: the drivers really collided, and DynamoDB arbitrated.
    assert any(c.get("readVersion", -1) < v - 1 for v, c in commits.items() if v > 0), commits
    rows = json.loads((tmp_path / "rows.json").read_text(encoding="utf-8"))  # what Delta reads back
    written = [[w, int(r), i] for w, r in (a.split("-") for a in appends) for i in range(ROWS)]
    assert sorted(rows) == sorted(written)

    assert table["KeySchema"] == [
        {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
        {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
    ]
    entries = sorted((i for i in items if i[PARTITION_KEY]["S"] == TABLE_PATH), key=lambda i: i[SORT_KEY]["S"])
    assert [i[SORT_KEY]["S"] for i in entries] == [f"{v:020d}.json" for v in versions]
    assert all(i["complete"]["S"] == "true" and TTL_ATTRIBUTE in i for i in entries), entries


def _commit_infos(s3) -> dict[int, dict]:
    """version -> commitInfo, read from the log's JSON files in S3 (not through Delta)."""
    prefix = TABLE_PATH.removeprefix(f"s3a://{BUCKET}/") + "/_delta_log/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]]
    commits = {}
    for key in keys:
        name = key.removeprefix(prefix)
        if name.endswith(".json") and name[:-5].isdigit():
            lines = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
            actions = [json.loads(line) for line in lines]
            commits[int(name[:-5])] = next(a["commitInfo"] for a in actions if "commitInfo" in a)
    return commits


def _run_drivers(workdir: Path) -> None:
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        # The log store's DynamoDB client takes the default AWS chain: these variables come first.
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.pop("CANDLELAKE_S3_ENDPOINT", None)
    logs = {w: (workdir / f"{w}.log").open("wb") for w in WRITERS}
    drivers = {
        w: subprocess.Popen(
            [sys.executable, "-m", "tests.test_dynamodb_log_store", w, str(workdir)],
            cwd=REPO_ROOT,
            env=env,
            stdout=logs[w],
            stderr=subprocess.STDOUT,
        )
        for w in WRITERS
    }
    try:
        codes = _wait_all(drivers)
    finally:
        for p in drivers.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for f in logs.values():
            f.close()
    tails = {w: (workdir / f"{w}.log").read_text(errors="replace")[-3000:] for w in WRITERS}
    assert codes == dict.fromkeys(WRITERS, 0), tails


def _wait_all(drivers: dict[str, subprocess.Popen[bytes]]) -> dict[str, int | None]:
    """Exit codes; stops early when one driver fails, since the other then waits at a barrier."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        codes = {w: p.poll() for w, p in drivers.items()}
        if all(c is not None for c in codes.values()) or any(c for c in codes.values()):
            return codes
        time.sleep(0.2)
    return {w: p.poll() for w, p in drivers.items()}


# --- the driver process ---------------------------------------------------------------------------

STARTED = time.monotonic()  # the driver's clock, for the progress lines in its log


def _mark(workdir: Path, name: str) -> None:
    (workdir / name).touch()


def _wait_for(workdir: Path, name: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not (workdir / name).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name} after {WAIT_S} s: did the other driver fail?")
        time.sleep(0.02)


def _session(workdir: Path):
    from pyspark.sql import SparkSession

    settings = json.loads((workdir / "settings.json").read_text(encoding="utf-8"))
    conf = local_conf(shuffle_partitions=1, driver_memory="1g")
    if settings["jar"] not in conf["spark.jars"].split(","):  # lakehouse.spark may already list it
        conf["spark.jars"] += "," + settings["jar"]
    conf["spark.driver.extraJavaOptions"] += " " + settings["java_options"]
    conf.update(s3a_endpoint_conf(settings["endpoint"], prefix="spark.hadoop."))
    conf.update(
        {
            "spark.hadoop.fs.s3a.endpoint.region": REGION,
            "spark.hadoop.fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "spark.hadoop.fs.s3a.access.key": CREDENTIALS["aws_access_key_id"],
            "spark.hadoop.fs.s3a.secret.key": CREDENTIALS["aws_secret_access_key"],
            "spark.databricks.delta.snapshotPartitions": "1",
            **log_store_conf(DDB_TABLE, REGION),
        }
    )
    builder = SparkSession.builder.master("local[1]").appName(f"ddb-log-store-{workdir.name}")
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    print(f"{time.monotonic() - STARTED:5.1f}s session up", flush=True)
    return spark


def _append(spark, writer: str, round_: int, path: str = TABLE_PATH) -> None:
    # Rows made in the JVM: a DataFrame from a Python list would boot a Python worker (~1 s of CPU).
    frame = spark.range(ROWS).selectExpr(f"'{writer}' AS writer", f"{round_} AS round", "CAST(id AS INT) AS i")
    frame.write.format("delta").mode("append").option("userMetadata", f"{writer}-{round_}").save(path)
    print(f"{time.monotonic() - STARTED:5.1f}s {writer} appended round {round_} to {path}", flush=True)


def _drive(writer: str, workdir: Path) -> None:
    """One driver. In round 0, w0 creates the table alone (two drivers creating one table is a
    metadata conflict, not the race under test) while w1 warms its JVM up on a table of its own:
    a cold first write takes ~15 s, a warm one ~1 s, and the rounds race only if both are warm."""
    spark = _session(workdir)
    _append(spark, writer, 0, TABLE_PATH if writer == "w0" else WARM_UP_PATH)
    other = next(w for w in WRITERS if w != writer)
    for round_ in range(1, ROUNDS + 1):
        _mark(workdir, f"ready-{writer}-{round_}")
        _wait_for(workdir, f"ready-{other}-{round_}")
        _append(spark, writer, round_)
    if writer == "w0":
        _wait_for(workdir, f"ready-{other}-done")
        rows = [[r.writer, r.round, r.i] for r in spark.read.format("delta").load(TABLE_PATH).collect()]
        print(f"{time.monotonic() - STARTED:5.1f}s read back", flush=True)
        (workdir / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    else:
        _mark(workdir, f"ready-{writer}-done")
    spark.stop()


if __name__ == "__main__":
    _drive(sys.argv[1], Path(sys.argv[2]))
