"""The silver rules as the API applies them (lakecontract/candle_rules.py), Spark-free: against the
hand-worked verdicts silver's Spark classification is held to, and, as a property, against the same
plain-Python oracle (tests/silver_reference.py) on random series. Silver and the API therefore
reject the same bars for the same rules."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import HealthCheck, given, settings

from lakecontract.candle_rules import GRID_MICROS, RULE_TEXT, RULES, series_failures
from lakecontract.constants import BAR_SECONDS, INTERVALS
from lakehouse.tables import BRONZE_SCHEMA
from tests import silver_reference
from tests.test_silver_rules import HAND_CASES, NOW, bronze_batch

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
VALUES = ("open", "high", "low", "close", "adj_close", "volume")


def micros(ts: datetime | None) -> int | None:
    return None if ts is None else (ts - EPOCH) // timedelta(microseconds=1)


def failures_of(rows: list[dict], interval: str) -> list[list[str]]:
    values = {c: np.array([np.nan if r[c] is None else r[c] for r in rows], dtype=float) for c in VALUES}
    return series_failures(interval, [micros(r["ts"]) for r in rows], values, micros(NOW))


def test_every_rule_is_described():
    assert set(RULE_TEXT) == set(RULES)


def test_every_interval_has_a_length_and_a_grid():
    assert set(BAR_SECONDS) == set(GRID_MICROS) == set(INTERVALS) == set(silver_reference.INTERVALS)
    for interval, seconds in BAR_SECONDS.items():  # a bar is a whole number of grid steps
        assert seconds * 1_000_000 % GRID_MICROS[interval] == 0, interval


def test_each_hand_worked_bar_breaks_the_rules_silver_names():
    checked = 0
    for row, (_, failed) in HAND_CASES:
        bar = dict(zip(BRONZE_SCHEMA.names, row, strict=True))
        if bar["symbol"] is None or bar["interval"] is None:  # the API's request schema requires both
            continue
        assert failures_of([bar], bar["interval"]) == [failed], bar
        checked += 1
    assert checked >= 30


def test_same_ts_bars_conflict_or_repeat_as_in_one_silver_batch():
    bar = {"ts": NOW - timedelta(days=1), "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 5.0}
    bar["ts"] = bar["ts"].replace(hour=0, minute=0, second=0, microsecond=0)
    bar["adj_close"] = bar["close"]
    other = {**bar, "volume": 6.0}
    assert failures_of([bar, bar, bar], "1d") == [[], ["duplicate_row"], ["duplicate_row"]]
    assert failures_of([bar, other], "1d") == [["conflicting_duplicate"], ["conflicting_duplicate"]]
    broken = {**bar, "low": 12.0}  # fails a row rule, so takes no part in the duplicate rules
    assert failures_of([bar, broken], "1d") == [[], ["ohlc_inconsistent"]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bronze_batch())
def test_series_failures_equal_the_silver_reference_bar_by_bar(rows):
    series = defaultdict(list)
    for row in rows:
        if row["symbol"] is not None and row["interval"] is not None:
            series[(row["symbol"], row["interval"], row["batch_id"])].append(row)
    for (_, interval, _), bars in series.items():
        bars.sort(key=lambda r: r["record_id"])
        expected = silver_reference.classify(bars, NOW)
        got = failures_of(bars, interval)
        assert got == [expected[r["record_id"]][1] for r in bars], bars
