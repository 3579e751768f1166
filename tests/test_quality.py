"""Data quality: GX validations per tier, the quarantine split, gold/dq_results and the HTML report.

The module validates three small frames once (GX costs ~10 s to import and a few seconds per
validation on 2 cores) and the tests read those runs.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T

from lakehouse import delta_io
from lakehouse.job_summary import JobFailed
from lakehouse.quality import (
    ExpectationOutcome,
    QualityHalt,
    Rule,
    ValidationRun,
    gold_feature_rules,
    latest_report,
    raise_if_halted,
    record,
    silver_candle_rules,
    split_quarantine,
    validate,
    write_report,
)
from lakehouse.quality import report as report_module
from lakehouse.quality.report import run_report
from lakehouse.tables import GOLD_DQ_RESULTS

pytestmark = pytest.mark.spark

SILVER_TEST_SCHEMA = T.StructType(
    [
        T.StructField("symbol", T.StringType()),
        T.StructField("interval", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        *(T.StructField(c, T.DoubleType()) for c in ("open", "high", "low", "close", "volume")),
        T.StructField("close_unadjusted", T.DoubleType()),
        T.StructField("adj_factor", T.DoubleType()),
    ]
)
GOLD_TEST_SCHEMA = T.StructType(
    [
        T.StructField("symbol", T.StringType()),
        T.StructField("ts", T.TimestampType()),
        T.StructField("close", T.DoubleType()),
        T.StructField("label_up", T.IntegerType()),
        T.StructField("label_ret_1", T.DoubleType()),
        T.StructField("is_warm", T.BooleanType()),
        T.StructField("sma_3", T.DoubleType()),
        T.StructField("rsi_3", T.DoubleType()),
    ]
)
DAY0 = datetime(2024, 1, 1, tzinfo=UTC)


def bar(symbol: str, day: int, close: float, *, high: float | None = None, volume: float = 1_000.0) -> tuple:
    """A consistent daily bar around `close` (open a little lower), unless `high` says otherwise."""
    open_ = close * 0.99
    return (
        symbol,
        "1d",
        DAY0 + timedelta(days=day),
        open_,
        close * 1.01 if high is None else high,
        close * 0.98,
        close,
        volume,
        close,
        1.0,
    )


CLEAN_BARS = [bar(s, d, 100.0 + d) for s in ("AAA", "BBB") for d in range(4)]
# Dirty: one key twice (a halt), one bar with high below close, one with a negative volume.
DIRTY_BARS = [
    *CLEAN_BARS,
    bar("AAA", 1, 101.0),
    bar("CCC", 0, 50.0, high=49.0),
    bar("CCC", 1, 50.5, volume=-5.0),
]


@pytest.fixture(scope="module")
def runs(spark) -> dict[str, ValidationRun]:
    """One validation each of a clean silver frame, a dirty one and a gold feature frame."""
    rules = silver_candle_rules()
    clean_df = spark.createDataFrame(CLEAN_BARS, SILVER_TEST_SCHEMA)
    dirty_df = spark.createDataFrame(DIRTY_BARS, SILVER_TEST_SCHEMA)
    gold_df = spark.createDataFrame(
        [
            # sma_3 is null on a cold row only (allowed), rsi_3 on a warm row (a warn).
            ("AAA", DAY0, 100.0, 1, 0.01, False, None, None),
            ("AAA", DAY0 + timedelta(days=1), 101.0, 1, 0.01, True, 100.5, None),
            ("AAA", DAY0 + timedelta(days=2), 102.0, 2, 0.01, True, 101.0, 55.0),
            ("AAA", DAY0 + timedelta(days=3), 103.0, None, None, True, 102.0, 60.0),
        ],
        GOLD_TEST_SCHEMA,
    )
    common = {"layer": "silver", "table_name": "silver/candles", "suite": "silver_candles"}
    return {
        "clean": validate(clean_df, rules, run_id="run-clean", **common),
        "dirty": validate(dirty_df, rules, run_id="run-dirty", **common),
        "gold": validate(
            gold_df,
            gold_feature_rules(["sma_3", "rsi_3"]),
            layer="gold",
            table_name="gold/features_1d",
            suite="gold_features",
            run_id="run-gold",
        ),
    }


def outcome(run: ValidationRun, rule: str) -> ExpectationOutcome:
    return next(o for o in run.outcomes if o.rule == rule)


def test_rules_are_well_formed():
    for rules in (silver_candle_rules(), gold_feature_rules(["sma_3"])):
        names = [r.name for r in rules]
        assert len(names) == len(set(names))
        assert all(re.fullmatch(r"[a-z0-9_]+", n) for n in names)
        assert all(r.fails is not None for r in rules if r.tier == "quarantine")
    assert "warm_features_complete" in [r.name for r in gold_feature_rules(["sma_3"])]
    with pytest.raises(ValueError, match="quarantine rule needs `fails`"):
        Rule("no_condition", "quarantine", lambda: None)  # type: ignore[arg-type, return-value]


def test_a_clean_silver_frame_passes_every_rule(runs):
    run = runs["clean"]
    assert run.success
    assert [o.rule for o in run.outcomes] == [r.name for r in silver_candle_rules()]
    assert [o.rule for o in run.outcomes if not o.success] == []
    assert outcome(run, "key_unique").element_count == len(CLEAN_BARS)
    assert outcome(run, "table_not_empty").observed_value == str(len(CLEAN_BARS))
    raise_if_halted(run)


def test_a_duplicate_key_halts_and_the_message_names_the_expectation(runs):
    run = runs["dirty"]
    assert not run.success
    assert [o.rule for o in run.failed_halts] == ["key_unique"]
    assert outcome(run, "key_unique").unexpected_count == 2  # both rows of the key
    with pytest.raises(QualityHalt) as caught:
        raise_if_halted(run)
    assert isinstance(caught.value, JobFailed)
    assert "key_unique (expect_compound_columns_to_be_unique): 2 unexpected" in str(caught.value)


def test_quarantine_and_warn_failures_do_not_fail_the_run(runs):
    run = runs["dirty"]
    assert outcome(run, "ohlc_consistent").tier == "quarantine"
    assert not outcome(run, "ohlc_consistent").success
    assert outcome(run, "ohlc_consistent").unexpected_count == 1
    assert outcome(run, "volume_non_negative").unexpected_count == 1
    # The CCC bars start a series: no 1-bar return, so no warn.
    assert outcome(run, "return_1bar_below_50pct").success
    assert {o.rule for o in run.outcomes if not o.success} == {"key_unique", "ohlc_consistent", "volume_non_negative"}
    assert ValidationRun(**{**run.__dict__, "outcomes": [o for o in run.outcomes if o.tier != "halt"]}).success


def test_split_quarantine_moves_exactly_the_rows_that_break_a_rule(spark, runs):
    both = bar("DDD", 0, 10.0, high=9.0, volume=-1.0)
    df = spark.createDataFrame([*DIRTY_BARS, both], SILVER_TEST_SCHEMA)
    kept_df, failing_df = split_quarantine(df, silver_candle_rules())

    assert kept_df.columns == df.columns
    assert failing_df.columns == [*df.columns, "rule", "failed_rules"]
    failing = {(r.symbol, r.ts.day): (r.rule, list(r.failed_rules)) for r in failing_df.collect()}
    assert failing == {
        ("CCC", 1): ("ohlc_consistent", ["ohlc_consistent"]),
        ("CCC", 2): ("volume_non_negative", ["volume_non_negative"]),
        ("DDD", 1): ("ohlc_consistent", ["ohlc_consistent", "volume_non_negative"]),
    }
    assert kept_df.count() == len(DIRTY_BARS) + 1 - 3
    # The Spark conditions and the GX expectations agree on the dirty frame.
    dirty_failing_df = split_quarantine(spark.createDataFrame(DIRTY_BARS, SILVER_TEST_SCHEMA), silver_candle_rules())[1]
    by_rule = {r["rule"]: r["n"] for r in dirty_failing_df.groupBy("rule").agg(F.count("*").alias("n")).collect()}
    for rule in ("ohlc_consistent", "volume_non_negative"):
        assert by_rule[rule] == outcome(runs["dirty"], rule).unexpected_count


def test_gold_rules_count_feature_nulls_on_warm_rows_only(runs):
    run = runs["gold"]
    assert run.success  # only warn rules fail
    warm = outcome(run, "warm_features_complete")
    # sma_3 is null on the cold first row only (allowed); rsi_3 is null on one warm row.
    assert (warm.success, warm.unexpected_count) == (False, 1)
    assert outcome(run, "label_up_binary").unexpected_count == 1  # the 2; the last bar's null is fine
    assert {o.rule for o in run.outcomes if not o.success} == {"warm_features_complete", "label_up_binary"}


def test_record_appends_one_row_per_outcome_to_gold_dq_results(spark, lake, runs):
    recorded = [runs["clean"], runs["dirty"]]
    record(spark, recorded, lake)
    results_df = delta_io.read(spark, GOLD_DQ_RESULTS, lake)
    rows = results_df.collect()
    assert len(rows) == sum(len(r.outcomes) for r in recorded)
    failed = {(r.run_id, r.expectation, r.tier) for r in rows if not r.success}
    assert failed == {
        ("run-dirty", "key_unique", "halt"),
        ("run-dirty", "ohlc_consistent", "quarantine"),
        ("run-dirty", "volume_non_negative", "quarantine"),
    }
    key_row = next(r for r in rows if r.run_id == "run-dirty" and r.expectation == "key_unique")
    assert (key_row.unexpected_count, key_row.element_count) == (2, len(DIRTY_BARS))
    assert key_row.expectation_type == "expect_compound_columns_to_be_unique"
    assert key_row.started_at <= key_row.ended_at


# --- the HTML report (no Spark needed: runs built by hand) ---------------------------------------


def hand_run(run_id: str, started_at: datetime, *, observed: str = "3") -> ValidationRun:
    return ValidationRun(
        run_id=run_id,
        layer="silver",
        table_name="silver/candles",
        suite="silver_candles",
        started_at=started_at,
        ended_at=started_at + timedelta(seconds=4),
        outcomes=[
            ExpectationOutcome("key_unique", "expect_compound_columns_to_be_unique", "halt", True, None, 0, 0.0, 10),
            ExpectationOutcome(
                "ohlc_consistent", "unexpected_rows_expectation", "quarantine", False, observed, 3, None, None
            ),
            ExpectationOutcome("ts_not_in_future", "unexpected_rows_expectation", "warn", True, "0", 0, None, None),
        ],
    )


def test_the_report_is_self_contained_escaped_and_indexed(lake):
    hostile = '<script>alert("x")</script> & <img src="https://example.com/x.png">'
    path = write_report([hand_run("2024-01-02T03:04:05Z", DAY0, observed=hostile)], lake)

    assert path.endswith("/reports/dq/2024-01-02T03_04_05Z.html")
    page = Path(path).read_text(encoding="utf-8")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert "&lt;script&gt;" in page and "https:&#47;&#47;example.com" in page
    for rule in ("key_unique", "ohlc_consistent", "ts_not_in_future"):
        assert rule in page
    index = Path(lake, "reports/dq/index.html").read_text(encoding="utf-8")
    assert 'href="2024-01-02T03_04_05Z.html"' in index
    assert "http://" not in index and "https://" not in index and "<script" not in index


def test_latest_report_is_the_newest_run_and_the_index_lists_newest_first(lake, capsys):
    assert latest_report(lake) is None
    assert report_module.main(["--lake-root", lake]) == 1
    assert "no data-quality report" in capsys.readouterr().err

    older = write_report([hand_run("run-a", DAY0)], lake)
    newer = write_report([hand_run("run-b", DAY0 + timedelta(days=1))], lake)
    write_report([hand_run("run-a", DAY0)], lake)  # re-reporting an old run does not make it newest
    assert latest_report(lake) == newer != older
    index = Path(lake, "reports/dq/index.html").read_text(encoding="utf-8")
    assert index.index("run-b.html") < index.index("run-a.html")
    assert index.count("run-a.html") == 1

    assert report_module.main(["--lake-root", lake]) == 0
    assert capsys.readouterr().out.strip() == newer


def test_run_report_is_the_run_s_own_or_else_the_newest_that_validated(lake):
    """What export publishes with a version: its run's report; for a run that found no new rows (and
    so validated nothing), the newest report there is, naming its own run."""
    assert run_report(lake, "run-a") is None  # nothing validated yet
    write_report([hand_run("run-a", DAY0)], lake)
    write_report([hand_run("run-b", DAY0 + timedelta(days=1))], lake)
    own, document, page = run_report(lake, "run-a")
    assert own == "run-a" and json.loads(document)["run_id"] == "run-a"
    assert page == Path(lake, "reports/dq/run-a.html").read_bytes()
    newest, document, _ = run_report(lake, "run-c")  # validated nothing
    assert newest == "run-b" and json.loads(document)["run_id"] == "run-b"


def test_the_report_goes_to_s3_with_boto3(monkeypatch):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    monkeypatch.delenv("CANDLELAKE_S3_ENDPOINT", raising=False)
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket="dq-bucket")
        uri = write_report([hand_run("run-s3", DAY0)], "s3a://dq-bucket/lake/")
        assert uri == "s3a://dq-bucket/lake/reports/dq/run-s3.html"
        body = client.get_object(Bucket="dq-bucket", Key="lake/reports/dq/run-s3.html")["Body"].read().decode()
        assert "ohlc_consistent" in body
        assert latest_report("s3a://dq-bucket/lake") == uri
