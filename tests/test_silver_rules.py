"""The silver rules on small frames, and the Spark classification against a plain-Python reference."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse import silver
from lakehouse.tables import BRONZE_SCHEMA
from tests import silver_reference

pytestmark = pytest.mark.spark

NOW = datetime(2024, 6, 1, tzinfo=UTC)
T0 = datetime(2024, 1, 2, tzinfo=UTC)
NAN, INF = float("nan"), float("inf")
EST = timezone(timedelta(hours=-5))  # New York in January


def at(hours: int, minutes: int = 0, seconds: int = 0, microseconds: int = 0) -> datetime:
    """A time of day on T0's date (UTC)."""
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds, microseconds=microseconds)


def bronze_row(ts=T0, o=10.0, h=11.0, lo=9.0, c=10.5, adj=None, v=100.0, symbol="A", interval="1d", batch="b1", rid=0):
    return (symbol, interval, ts, o, h, lo, c, c if adj is None else adj, v, "test", batch, rid, NOW)


def classify_rows(spark, rows):
    df = spark.createDataFrame(rows, BRONZE_SCHEMA)
    return {r["record_id"]: (r["rule"], list(r["failed_rules"])) for r in silver.classify(df, NOW).collect()}


# (row, the verdict worked out by hand from the rule table): every rule once, each edge once.
HAND_CASES = [
    (bronze_row(rid=1), (None, [])),
    (bronze_row(rid=2, lo=10.2), ("ohlc_inconsistent", ["ohlc_inconsistent"])),  # low above the open
    (bronze_row(rid=3, h=10.4), ("ohlc_inconsistent", ["ohlc_inconsistent"])),  # high below the close
    (bronze_row(rid=4, c=0.0, lo=0.0), ("non_positive_price", ["non_positive_price"])),  # zero close
    (bronze_row(rid=5, o=None), ("missing_value", ["missing_value"])),
    (bronze_row(rid=6, h=NAN), ("missing_value", ["missing_value"])),
    (bronze_row(rid=7, h=INF), ("missing_value", ["missing_value"])),
    (bronze_row(rid=8, v=-1.0), ("negative_volume", ["negative_volume"])),
    (bronze_row(rid=9, ts=datetime(2030, 1, 1, tzinfo=UTC)), ("future_timestamp", ["future_timestamp"])),
    (bronze_row(rid=10, interval="1w"), ("unknown_interval", ["unknown_interval"])),
    (bronze_row(rid=11, ts=None), ("missing_value", ["missing_value"])),
    (bronze_row(rid=12, adj=-1.0), ("non_positive_price", ["non_positive_price"])),
    (bronze_row(rid=13, adj=NAN), ("missing_value", ["missing_value"])),
    (bronze_row(rid=14, v=-INF), ("missing_value", ["missing_value"])),
    (bronze_row(rid=15, symbol=None), ("missing_value", ["missing_value"])),
    (bronze_row(rid=16, interval=None, lo=12.0), ("missing_value", ["missing_value"])),
    (bronze_row(rid=17, ts=NOW, lo=10.0, h=10.5, v=0.0), (None, [])),  # every bound met exactly
    # 1 µs past the start is in the future, and a daily bar 1 µs past midnight is off its grid too
    (
        bronze_row(rid=18, ts=NOW + timedelta(microseconds=1)),
        ("future_timestamp", ["future_timestamp", "off_interval_grid"]),
    ),
    (
        bronze_row(rid=19, interval="1m", o=-1.0, lo=-2.0),
        ("unknown_interval", ["unknown_interval", "non_positive_price"]),
    ),
    # off_interval_grid: the grid is UTC; 1d at 00:00, 1h on a quarter hour, 5m on a 5-minute mark
    (bronze_row(rid=20, ts=at(19, 30)), ("off_interval_grid", ["off_interval_grid"])),  # issue 13's daily bar
    (bronze_row(rid=21, ts=at(0, 0, 0, 1)), ("off_interval_grid", ["off_interval_grid"])),
    (bronze_row(rid=22, ts=datetime(2024, 1, 2, tzinfo=EST)), ("off_interval_grid", ["off_interval_grid"])),  # 05:00Z
    (bronze_row(rid=23, interval="1h", ts=at(14, 30)), (None, [])),  # US equity hour bar: 09:30 ET
    (bronze_row(rid=24, interval="1h", ts=datetime(2024, 1, 2, 10, 30, tzinfo=EST)), (None, [])),  # 15:30Z
    (bronze_row(rid=25, interval="1h", ts=at(3, 45)), (None, [])),  # NSE hour bar: 09:15 IST
    (bronze_row(rid=26, interval="1h", ts=at(15)), (None, [])),  # crypto / FX: on the hour
    (bronze_row(rid=27, interval="1h", ts=at(14, 10)), ("off_interval_grid", ["off_interval_grid"])),
    (bronze_row(rid=28, interval="1h", ts=at(14, 30, 1)), ("off_interval_grid", ["off_interval_grid"])),
    (bronze_row(rid=29, interval="5m", ts=at(14, 35)), (None, [])),
    (bronze_row(rid=30, interval="5m", ts=at(14, 37)), ("off_interval_grid", ["off_interval_grid"])),
    (bronze_row(rid=31, interval="5m", ts=at(14, 35, 30)), ("off_interval_grid", ["off_interval_grid"])),
    (bronze_row(rid=32, interval="1w", ts=at(19, 30)), ("unknown_interval", ["unknown_interval"])),  # no grid
    (
        bronze_row(rid=33, interval="5m", ts=at(14, 37), v=-1.0),
        ("negative_volume", ["negative_volume", "off_interval_grid"]),
    ),
    # 15m and 30m: quarter hours, as 1h (a 30m bar of NSE opens at 03:45Z); 1wk: a Monday at 00:00 UTC
    (bronze_row(rid=34, interval="15m", ts=at(13, 45)), (None, [])),  # BTC-USD 14:45+01:00
    (bronze_row(rid=35, interval="15m", ts=at(13, 50, 2)), ("off_interval_grid", ["off_interval_grid"])),  # partial
    (bronze_row(rid=36, interval="15m", ts=at(13, 50)), ("off_interval_grid", ["off_interval_grid"])),
    (bronze_row(rid=37, interval="30m", ts=at(14, 30)), (None, [])),  # 09:30 ET
    (bronze_row(rid=38, interval="30m", ts=at(3, 45)), (None, [])),  # 09:15 IST
    (bronze_row(rid=39, interval="30m", ts=at(14, 35)), ("off_interval_grid", ["off_interval_grid"])),
    (bronze_row(rid=40, interval="1wk", ts=T0 - timedelta(days=1)), (None, [])),  # Monday 2024-01-01
    (bronze_row(rid=41, interval="1wk", ts=T0), ("off_interval_grid", ["off_interval_grid"])),  # a Tuesday
    (
        bronze_row(rid=42, interval="1wk", ts=T0 - timedelta(days=1, hours=-5)),  # Monday 05:00Z
        ("off_interval_grid", ["off_interval_grid"]),
    ),
    (bronze_row(rid=43, interval="1wk", ts=datetime(1970, 1, 5, tzinfo=UTC)), (None, [])),  # the grid's origin
    (bronze_row(rid=44, interval="1wk", ts=datetime(1969, 12, 29, tzinfo=UTC)), (None, [])),  # before the epoch
    (
        bronze_row(rid=45, interval="1wk", ts=datetime(1970, 1, 1, tzinfo=UTC)),
        ("off_interval_grid", ["off_interval_grid"]),
    ),
]


def test_each_row_rule_names_what_it_rejects(spark):
    got = classify_rows(spark, [row for row, _ in HAND_CASES])
    assert got == {row[11]: verdict for row, verdict in HAND_CASES}


def test_the_reference_classifier_agrees_with_the_hand_written_verdicts():
    """The oracle of the property test below is itself checked against hand-worked cases."""
    rows = [dict(zip(BRONZE_SCHEMA.names, row, strict=True)) for row, _ in HAND_CASES]
    assert silver_reference.classify(rows, NOW) == {row[11]: verdict for row, verdict in HAND_CASES}


def test_several_failed_rules_are_all_recorded_first_one_reported(spark):
    got = classify_rows(spark, [bronze_row(rid=1, lo=12.0, v=-3.0, ts=datetime(2031, 1, 1, tzinfo=UTC))])
    assert got[1] == ("ohlc_inconsistent", ["ohlc_inconsistent", "negative_volume", "future_timestamp"])


def test_a_daily_bar_off_midnight_is_quarantined_so_one_day_keeps_one_key(spark):
    """Issue 13: a 1d bar stamped 19:30 UTC beside the 00:00 bar of the same day is a second key for
    one trading day, which no duplicate rule sees; it must be quarantined, never silently kept."""
    df = spark.createDataFrame([bronze_row(rid=1), bronze_row(rid=2, ts=at(19, 30), c=10.6)], BRONZE_SCHEMA)
    classified = silver.classify(df, NOW)
    kept = silver.latest_per_key(silver.accepted(classified)).collect()
    assert [r.record_id for r in kept] == [1], "the 00:00 bar is the day's only candle"
    out = silver.quarantined(classified, NOW).collect()
    assert [(r.record_id, r.rule) for r in out] == [(2, "off_interval_grid")]


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


# --- property: Spark's classification equals the plain-Python reference, row by row ----------

ODD_VALUES = [None, NAN, INF, -INF, 0.0, -0.0, -1.0]


@st.composite
def bronze_batch(draw: st.DrawFn) -> list[dict]:
    """Bronze rows that reach every rule: mostly consistent bars on a few keys, some fields
    replaced by odd values, and copies of earlier rows (identical, in another batch, or with
    another volume or adjusted close) so that repeats and conflicts happen."""
    rows = []
    for _ in range(draw(st.integers(1, 16))):
        base = draw(st.sampled_from([10.0, 20.0]))
        o = base + draw(st.sampled_from([0.0, 0.5]))
        c = base + draw(st.sampled_from([0.0, 0.5]))
        values = {
            "open": o,
            "high": max(o, c) + draw(st.sampled_from([0.0, 1.0])),
            "low": min(o, c) - draw(st.sampled_from([0.0, 1.0])),
            "close": c,
            "adj_close": c * draw(st.sampled_from([1.0, 0.5])),
            "volume": draw(st.sampled_from([0.0, 100.0, 100.0, 100.0, 100.0, -5.0])),
        }
        if draw(st.booleans()):
            field = draw(st.sampled_from(silver_reference.VALUE_FIELDS))
            values[field] = draw(st.one_of(st.sampled_from(ODD_VALUES), st.floats(1, 25), st.floats(-30, 30)))
        rows.append(
            {
                "symbol": draw(st.sampled_from(["A", "A", "A", "B", "B", None])),
                "interval": draw(
                    st.sampled_from(["1d", "1d", "1d", "1d", "1h", "5m", "15m", "30m", "1wk", "1w", None])
                ),
                "ts": draw(
                    st.sampled_from(
                        [T0, T0, T0, at(1), at(19, 30), at(14, 30), at(14, 35), at(14, 37), at(14, 35, 30)]
                        + [NOW, NOW + timedelta(seconds=1), None]
                    )
                ),
                **values,
                "source": "test",
                "batch_id": draw(st.sampled_from(["b1", "b1", "b2"])),
                "ingested_at": NOW,
            }
        )
    for i in draw(st.lists(st.integers(0, len(rows) - 1), max_size=8)):
        copy = dict(rows[i])
        change = draw(st.sampled_from(["none", "batch", "volume", "adj_close"]))
        if change == "batch":
            copy["batch_id"] = "b2" if copy["batch_id"] == "b1" else "b1"
        elif change == "volume":
            copy["volume"] = draw(st.sampled_from([0.0, -0.0, 100.0, 250.0]))
        elif change == "adj_close":
            copy["adj_close"] = draw(st.sampled_from([10.0, 5.0, 2.5]))
        rows.append(copy)
    record_ids = draw(st.permutations(range(len(rows))))
    return [{**row, "record_id": rid} for row, rid in zip(rows, record_ids, strict=True)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bronze_batch())
def test_spark_classification_matches_the_python_reference_row_by_row(spark, rows):
    df = spark.createDataFrame([tuple(row[c] for c in BRONZE_SCHEMA.names) for row in rows], BRONZE_SCHEMA)
    collected = silver.classify(df, NOW).select("record_id", "rule", "failed_rules").collect()
    got = {r.record_id: (r.rule, list(r.failed_rules)) for r in collected}
    assert len(collected) == len(got) == len(rows), "every bronze row is classified exactly once"
    expected = silver_reference.classify(rows, NOW)
    diff = {rid: (got.get(rid), verdict) for rid, verdict in expected.items() if got.get(rid) != verdict}
    assert not diff, f"record_id: (spark, reference): {diff}\nrows: {rows}"
