"""Shared fixtures: one SparkSession for the whole run (Delta configured, local[2]), fresh lakes.

Every test that asks for the `spark` fixture, directly or through another fixture, is marked
`spark` here, so `make test-fast` (`-m "not spark"`) runs exactly the tests that start no JVM from
this process; tests that start one in a subprocess carry the mark themselves.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from lakehouse.config import LakeConfig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def spark():
    from lakehouse.spark import get_spark

    session = get_spark("candlelake-tests", shuffle_partitions=2)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def published_lake(spark, tmp_path_factory):
    """A synthetic lake with one trained, exported model version (see tests/ml_lake.py)."""
    from tests.ml_lake import build

    return build(spark, tmp_path_factory.mktemp("published"))


@pytest.fixture
def lake(tmp_path: Path) -> str:
    """A fresh, empty local lake root for one test."""
    return str(tmp_path / "lake")


@pytest.fixture
def make_config(lake: str):
    def _make(**overrides: object) -> LakeConfig:
        return LakeConfig(**{"lake_root": lake, **overrides})  # type: ignore[arg-type]

    return _make


@pytest.fixture(scope="session")
def unbuilt_batch_lake(spark, tmp_path_factory):
    """2 synthetic symbols: 40 daily bars ingested and built into silver, then 5 more ingested and not yet
    built: the state in which a silver build MERGEs. Read-only: a test copies it (`copy_unbuilt_batch_lake`)."""
    from datetime import UTC, datetime

    from lakehouse.jobs import build_silver, ingest_candles

    quiet, t0 = {"log": lambda *_: None}, datetime(2025, 1, 1, tzinfo=UTC)
    root = str(tmp_path_factory.mktemp("unbuilt-batch") / "lake")
    first = LakeConfig(lake_root=root, source="synthetic", symbols=(), synthetic_symbols=2, synthetic_bars=40)
    ingest_candles.run(spark, replace(first, end="2015-03-01"), run_id=None, now=t0, **quiet)
    build_silver.run(spark, first, run_id="r1", now=t0, **quiet)
    later = replace(first, synthetic_bars=45, end="2015-03-08")
    ingest_candles.run(spark, later, run_id=None, now=t0, **quiet)
    return later


@pytest.fixture
def copy_unbuilt_batch_lake(unbuilt_batch_lake, tmp_path):
    """A private copy of `unbuilt_batch_lake` (Delta logs hold relative paths: a copied table is a table)."""
    import shutil

    def _copy(name: str = "lake") -> LakeConfig:
        root = tmp_path / name
        shutil.copytree(unbuilt_batch_lake.resolved_root, root)
        return replace(unbuilt_batch_lake, lake_root=str(root))

    return _copy
