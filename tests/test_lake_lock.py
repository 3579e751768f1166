"""The lake's run lock: one holder at a time, the refusal names the holder, a dead holder's lock is
taken over, and S3's conditional PUT gives the same guarantee as O_EXCL (moto). The two-executions
case, through the runner, is in tests/test_step_functions.py (the intraday machine's test)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import boto3
import pytest
from moto import mock_aws

from lakecontract import lake_lock

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_second_holder_is_refused_with_the_first_ones_name_and_the_lock_is_freed_after(tmp_path):
    root = str(tmp_path / "lake")
    with lake_lock.holding(root, "run-a", now=T0):
        assert lake_lock.holder_of(root)["run"] == "run-a"
        with pytest.raises(lake_lock.LakeBusy) as refused, lake_lock.holding(root, "run-b"):
            pytest.fail("run-b must not get the lake")
        message = str(refused.value)
        assert "held by run 'run-a'" in message and "started 2026-12-01T09:00:00+00:00" in message
        assert f"{tmp_path}/lake/_locks/pipeline.json" in message
        assert lake_lock.holder_of(root)["run"] == "run-a", "a refused run does not touch the holder's lock"
    assert lake_lock.holder_of(root) is None
    with lake_lock.holding(root, "run-b"):
        assert lake_lock.holder_of(root)["run"] == "run-b"


def test_a_lock_left_by_a_dead_process_of_this_host_is_taken_over(tmp_path):
    root = tmp_path / "lake"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (root / "_locks").mkdir(parents=True)
    left = {"run": "killed", "host": socket.gethostname(), "pid": int(dead.stdout), "started_at": T0.isoformat()}
    (root / "_locks" / "pipeline.json").write_text(json.dumps(left))
    with lake_lock.holding(str(root), "after-the-crash"):
        assert lake_lock.holder_of(str(root))["run"] == "after-the-crash"
    # Another host's lock cannot be proven dead: refused, with what to delete.
    (root / "_locks" / "pipeline.json").write_text(json.dumps({**left, "host": "elsewhere"}))
    with (
        pytest.raises(lake_lock.LakeBusy, match="held by run 'killed' \\(host elsewhere"),
        lake_lock.holding(str(root), "later"),
    ):
        pass


def test_on_s3_the_lock_is_a_conditional_put(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("CANDLELAKE_S3_ENDPOINT", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="lake-bucket")
        root = "s3://lake-bucket/lake"
        with (
            lake_lock.holding(root, "run-a"),
            pytest.raises(lake_lock.LakeBusy, match="held by run 'run-a'.*s3://lake-bucket/lake/_locks"),
            lake_lock.holding(root, "run-b"),
        ):
            pass
        assert lake_lock.holder_of(root) is None
