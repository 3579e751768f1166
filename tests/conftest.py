"""Shared fixtures: one SparkSession for the whole run (Delta configured, local[2]), fresh lakes.

Every test that asks for the `spark` fixture, directly or through another fixture, is marked
`spark` here, so `make test-fast` (`-m "not spark"`) runs exactly the tests that start no JVM from
this process; tests that start one in a subprocess carry the mark themselves.
"""

from __future__ import annotations

import os
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
