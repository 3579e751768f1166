"""ingest → silver → features on a real Spark standalone cluster (a master and two 1-core workers on
127.0.0.1, started from the pyspark wheel by tests/spark_cluster.py) give the same gold table as on local[2].

What local[2] cannot show and this test does: the executors are other JVMs in other folders, so they must
receive the Delta JARs through `spark.jars`, start the venv's Python (PYSPARK_PYTHON) that imports our package
for the per-symbol applyInPandas, and find the lake by its absolute path. Both runs are driver subprocesses
(one SparkContext per Python process), started side by side; this process starts no JVM of its own, so it
carries the `spark` mark itself (tests/conftest.py marks only the users of the `spark` fixture).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from lakehouse.tables import gold_features
from tests.spark_cluster import (
    INTERVAL,
    RUN_TIME_COLUMNS,
    StandaloneCluster,
    live_members,
    start_cluster,
    start_pipeline,
)

pytestmark = [pytest.mark.spark, pytest.mark.slow]

SYMBOLS, BARS = 4, 300
RUN_TIMEOUT_S = 300


@pytest.fixture
def local_reference(tmp_path: Path):
    """The same three jobs on local[2], started first so that they run while the cluster starts."""
    run = start_pipeline(
        tmp_path / "lake-local",
        tmp_path / "out-local",
        master="local[2]",
        app_name="candlelake-local-reference",
        symbols=SYMBOLS,
        bars=BARS,
    )
    try:
        yield run
    finally:
        run.stop()


@pytest.fixture
def cluster(tmp_path: Path):
    """A master and two workers (1 core, 1 GiB each); stopped, executors included, however the test ends."""
    running = start_cluster(tmp_path / "cluster", workers=2, cores=1, memory="1g")
    try:
        yield running
    finally:
        running.stop()
        # No daemon's process group (its executors and their Python workers included) outlives the test.
        assert [live_members(proc.pid) for proc in running.processes] == [[]] * len(running.processes)


def _finished(run, name: str) -> None:
    assert run.wait(RUN_TIMEOUT_S) == 0, f"the {name} run failed:\n{run.output()}"


def _completed_apps(cluster: StandaloneCluster, timeout_s: float = 15) -> list[dict]:
    """The master moves an application to completedapps when its driver has unregistered: it may lag the
    driver's exit by a moment."""
    deadline = time.monotonic() + timeout_s
    while not (apps := cluster.state()["completedapps"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    return apps


def _assert_ran_on(cluster: StandaloneCluster, evidence: dict, app_name: str) -> None:
    """The driver talked to our master and had both workers' executors, the master recorded the application,
    and each worker's executor ran tasks: a run that fell back to local[2] fails every one of these."""
    assert evidence["master"] == cluster.master_url
    assert evidence["app_name"] == app_name
    assert len(evidence["executors"]) == 2, evidence
    apps = _completed_apps(cluster)
    assert [(a["id"], a["name"]) for a in apps] == [(evidence["app_id"], app_name)]
    for work_dir in cluster.work_dirs:
        executor_logs = list((work_dir / evidence["app_id"]).glob("*/stderr"))
        assert len(executor_logs) == 1, f"{work_dir}: {executor_logs}"
        assert "Finished task" in executor_logs[0].read_text(errors="replace"), executor_logs[0]


def test_the_gold_features_built_on_a_standalone_cluster_equal_the_local_ones(local_reference, cluster, tmp_path):
    app_name = f"candlelake-cluster-test-{uuid.uuid4().hex[:8]}"
    on_cluster = start_pipeline(
        tmp_path / "lake-cluster",
        tmp_path / "out-cluster",
        master=cluster.master_url,
        app_name=app_name,
        symbols=SYMBOLS,
        bars=BARS,
    )
    try:
        _finished(local_reference, "local[2]")
        _finished(on_cluster, "cluster")
    finally:
        on_cluster.stop()

    _assert_ran_on(cluster, on_cluster.evidence(), app_name)
    reference = local_reference.evidence()
    assert (reference["master"], reference["executors"]) == ("local[2]", [])  # the check above is not vacuous

    expected = pd.read_parquet(local_reference.features)
    actual = pd.read_parquet(on_cluster.features)
    gold = gold_features(INTERVAL)
    # Not a trivially equal pair: every column of the table but the run time, every bar of every symbol,
    # and the features computed (warm rows exist).
    assert list(expected.columns) == [c for c in gold.schema.fieldNames() if c not in RUN_TIME_COLUMNS]
    assert len(expected) == SYMBOLS * BARS and expected["symbol"].nunique() == SYMBOLS
    assert expected["is_warm"].any()
    # Exact, NaN equal to NaN: each symbol's features are computed in one Python call over its bars in time
    # order, wherever that call runs, so a cluster changes where the arithmetic happens, not its order. A
    # difference in the last bit would mean partition-dependent arithmetic and deserves a look, not a tolerance.
    pd.testing.assert_frame_equal(actual, expected, check_exact=True)
