"""delta_io's change feed and commit metadata, on tiny tables: what the incremental jobs rely on."""

from datetime import datetime

import pytest
from pyspark.sql import types as st

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


def _encodings(path: str, column: str) -> set[str]:
    import glob

    import pyarrow.parquet as pq

    meta = pq.ParquetFile(glob.glob(f"{path}/*.parquet")[0]).metadata
    index = meta.schema.names.index(column)
    return set(meta.row_group(0).column(index).encodings)


def test_a_table_with_dictionary_columns_writes_only_those_dictionary_encoded(spark, tmp_path):
    schema = st.StructType([st.StructField("symbol", st.StringType()), st.StructField("x", st.DoubleType())])
    rows = spark.createDataFrame([("A", 1.0), ("B", 2.0)] * 50, schema).coalesce(1)
    plain = Table("gold/plain", schema, ("symbol",))
    narrow = Table("gold/narrow", schema, ("symbol",), dictionary_columns=("symbol",))
    spark.conf.set("parquet.enable.dictionary", "true")  # the session's own setting comes back after
    delta_io.append(spark, rows, plain, str(tmp_path))
    delta_io.overwrite(spark, rows, narrow, str(tmp_path))
    assert spark.conf.get("parquet.enable.dictionary") == "true"
    spark.conf.unset("parquet.enable.dictionary")
    assert spark.conf.get("parquet.enable.dictionary#symbol", None) is None

    dictionary = {"PLAIN_DICTIONARY", "RLE_DICTIONARY"}
    assert _encodings(plain.path(str(tmp_path)), "x") & dictionary  # Parquet's default: a dictionary
    assert _encodings(narrow.path(str(tmp_path)), "symbol") & dictionary
    assert not _encodings(narrow.path(str(tmp_path)), "x") & dictionary


def test_a_merge_into_a_table_not_yet_there_creates_it_with_every_row_and_the_commit_metadata(spark, tmp_path):
    """The first MERGE is an append (cheaper; an empty target inserts every row anyway): same rows, same
    counts, the metadata in the commit, the change feed on; the second is a real MERGE."""
    root = str(tmp_path)
    first = delta_io.merge_upsert(spark, _rows(spark, 1.0, 2.0), SILVER_CANDLES, root, metadata={"m": 1})
    assert (first.rows_inserted, first.rows_updated) == (2, 0)
    assert delta_io.last_commit_metadata(spark, SILVER_CANDLES, root, "m") == {"m": 1}
    second = delta_io.merge_upsert(spark, _rows(spark, 1.0, 2.5, 3.0), SILVER_CANDLES, root, compare=("close",))
    assert (second.rows_inserted, second.rows_updated) == (1, 1)
    table = delta_io.read(spark, SILVER_CANDLES, root)
    assert sorted((r.ts.day, r.close) for r in table.collect()) == [(1, 1.0), (2, 2.5), (3, 3.0)]
    changes = delta_io.read_changes(spark, SILVER_CANDLES, root, after=0, upto=first.version)
    assert changes is not None and changes.count() == 2  # the feed covers the first rows too


def test_finite_inputs_keeps_only_rows_whose_every_input_is_a_finite_number(spark):
    from lakehouse.ml.dataset import finite_inputs

    values = [(1.0, 2.0), (float("nan"), 1.0), (1.0, float("inf")), (float("-inf"), 0.0), (None, 1.0), (-3.0, 1e300)]
    frame = spark.createDataFrame([(i, *v) for i, v in enumerate(values)], "i int, a double, b double")
    assert [r.i for r in frame.where(finite_inputs(("a", "b"))).orderBy("i").collect()] == [0, 5]
