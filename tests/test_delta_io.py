"""delta_io's change feed and commit metadata, on tiny tables: what the incremental jobs rely on."""

from datetime import datetime

import pytest

from lakehouse import delta_io
from lakehouse.tables import SILVER_CANDLES, Table

pytestmark = pytest.mark.spark
T = datetime(2024, 1, 1)


def _rows(spark, *closes: float):
    return spark.createDataFrame(
        [
            ("A", "1d", T.replace(day=i + 1), 1.0, 1.0, 1.0, c, 1.0, 1.0, 1.0, "s", "b", T, T)
            for i, c in enumerate(closes)
        ],
        SILVER_CANDLES.schema,
    )


def test_the_change_feed_gives_the_new_values_of_changed_rows_and_none_where_it_does_not_reach(spark, tmp_path):
    root = str(tmp_path)
    first = delta_io.merge_upsert(spark, _rows(spark, 1.0, 2.0, 3.0), SILVER_CANDLES, root)
    second = delta_io.merge_upsert(spark, _rows(spark, 1.0, 2.5, 3.0), SILVER_CANDLES, root, compare=("close",))
    changes = delta_io.read_changes(spark, SILVER_CANDLES, root, after=first.version, upto=second.version)
    assert changes is not None and [(r.ts.day, r.close) for r in changes.collect()] == [(2, 2.5)]

    plain = Table("silver/plain", SILVER_CANDLES.schema, SILVER_CANDLES.key)  # no change feed
    for _ in range(2):
        delta_io.append(spark, _rows(spark, 1.0), plain, root)
    assert delta_io.read_changes(spark, plain, root, after=0, upto=2) is None


def test_commit_metadata_is_found_by_key_and_condition(spark, tmp_path):
    root = str(tmp_path)
    delta_io.merge_upsert(spark, _rows(spark, 1.0), SILVER_CANDLES, root, metadata={"v": 1, "who": "all"})
    delta_io.merge_upsert(spark, _rows(spark, 2.0), SILVER_CANDLES, root, metadata={"v": 2, "who": "some"})
    delta_io.merge_upsert(spark, _rows(spark, 3.0), SILVER_CANDLES, root)
    assert delta_io.last_commit_metadata(spark, SILVER_CANDLES, root, "v") == {"v": 2, "who": "some"}
    found = delta_io.last_commit_metadata(spark, SILVER_CANDLES, root, "v", where=lambda m: m["who"] == "all")
    assert found == {"v": 1, "who": "all"}
    assert delta_io.last_commit_metadata(spark, SILVER_CANDLES, root, "missing") is None
