"""The silver rules on small frames, and the accounting invariant as a property."""

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from lakehouse import silver
from lakehouse.tables import BRONZE_SCHEMA

pytestmark = pytest.mark.spark

NOW = datetime(2024, 6, 1, tzinfo=UTC)
T0 = datetime(2024, 1, 2, tzinfo=UTC)


def bronze_row(ts=T0, o=10.0, h=11.0, lo=9.0, c=10.5, adj=None, v=100.0, symbol="A", interval="1d", batch="b1", rid=0):
    return (symbol, interval, ts, o, h, lo, c, c if adj is None else adj, v, "test", batch, rid, NOW)


def classify_rows(spark, rows):
    df = spark.createDataFrame(rows, BRONZE_SCHEMA)
    return {r["record_id"]: (r["rule"], list(r["failed_rules"])) for r in silver.classify(df, NOW).collect()}


def test_each_row_rule_names_what_it_rejects(spark):
    nan, inf = float("nan"), float("inf")
    rows = [
        bronze_row(rid=1),
        bronze_row(rid=2, lo=10.2),  # low above the open
        bronze_row(rid=3, h=10.4),  # high below the close
        bronze_row(rid=4, c=0.0, lo=0.0),  # zero close
        bronze_row(rid=5, o=None),
        bronze_row(rid=6, h=nan),
        bronze_row(rid=7, h=inf),
        bronze_row(rid=8, v=-1.0),
        bronze_row(rid=9, ts=datetime(2030, 1, 1, tzinfo=UTC)),
        bronze_row(rid=10, interval="1w"),
        bronze_row(rid=11, ts=None),
        bronze_row(rid=12, adj=-1.0),
    ]
    got = classify_rows(spark, rows)
    assert got[1] == (None, [])
    assert got[2][0] == "ohlc_inconsistent"
    assert got[3][0] == "ohlc_inconsistent"
    assert got[4] == ("non_positive_price", ["non_positive_price"])
    assert got[5] == ("missing_value", ["missing_value"])
    assert got[6] == ("missing_value", ["missing_value"])
    assert got[7] == ("missing_value", ["missing_value"])
    assert got[8] == ("negative_volume", ["negative_volume"])
    assert got[9] == ("future_timestamp", ["future_timestamp"])
    assert got[10] == ("unknown_interval", ["unknown_interval"])
    assert got[11] == ("missing_value", ["missing_value"])
    assert got[12][0] == "non_positive_price"


def test_several_failed_rules_are_all_recorded_first_one_reported(spark):
    got = classify_rows(spark, [bronze_row(rid=1, lo=12.0, v=-3.0, ts=datetime(2031, 1, 1, tzinfo=UTC))])
    assert got[1] == ("ohlc_inconsistent", ["ohlc_inconsistent", "negative_volume", "future_timestamp"])


def test_same_key_in_one_batch_conflicts_or_repeats(spark):
    rows = [
        bronze_row(rid=1, c=10.5),
        bronze_row(rid=2, c=10.6),  # conflict: both out
        bronze_row(rid=3, ts=datetime(2024, 1, 3, tzinfo=UTC)),
        bronze_row(rid=4, ts=datetime(2024, 1, 3, tzinfo=UTC)),  # identical: first kept
        bronze_row(rid=5, ts=datetime(2024, 1, 4, tzinfo=UTC), batch="b1"),
        bronze_row(rid=6, ts=datetime(2024, 1, 4, tzinfo=UTC), batch="b2", c=10.7),  # other batch: not a conflict
    ]
    got = classify_rows(spark, rows)
    assert got[1][0] == got[2][0] == "conflicting_duplicate"
    assert got[3] == (None, []) and got[4] == ("duplicate_row", ["duplicate_row"])
    assert got[5] == got[6] == (None, [])


def test_newest_batch_wins_and_prices_are_adjusted(spark):
    rows = [
        bronze_row(rid=1, batch="b1", c=10.5, adj=5.25),
        (*bronze_row(rid=2, batch="b2", c=10.6, adj=5.3)[:-1], datetime(2024, 6, 2, tzinfo=UTC)),
    ]
    df = spark.createDataFrame(rows, BRONZE_SCHEMA)
    out = silver.to_silver_candles(silver.latest_per_key(silver.accepted(silver.classify(df, NOW))), NOW).collect()
    assert len(out) == 1
    row = out[0]
    assert row.batch_id == "b2" and row.close_unadjusted == 10.6
    assert row.adj_factor == pytest.approx(0.5)
    assert (row.open, row.high, row.low, row.close) == pytest.approx((5.0, 5.5, 4.5, 5.3))


prices = st.one_of(st.floats(-5, 200, allow_nan=False), st.just(float("nan")), st.none())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(prices, prices, prices, prices, st.floats(-10, 1e6), st.integers(0, 5)),
        min_size=1,
        max_size=40,
    )
)
def test_every_row_is_accepted_or_quarantined_and_accepted_rows_are_consistent(spark, raw):
    rows = [
        bronze_row(ts=datetime(2024, 1, 2 + day, tzinfo=UTC), o=o, h=h, lo=lo, c=c, v=v, rid=i)
        for i, (o, h, lo, c, v, day) in enumerate(raw)
    ]
    classified = silver.classify(spark.createDataFrame(rows, BRONZE_SCHEMA), NOW).cache()
    accepted = silver.accepted(classified)
    assert accepted.count() + classified.where(F.col("rule").isNotNull()).count() == len(rows)
    assert classified.select("record_id").distinct().count() == len(rows)
    bad = accepted.where(
        ~((F.col("low") <= F.least("open", "close")) & (F.greatest("open", "close") <= F.col("high")))
        | (F.col("low") <= 0)
        | (F.col("volume") < 0)
    )
    assert bad.count() == 0
    assert accepted.groupBy("symbol", "interval", "ts").count().where("count > 1").count() == 0
