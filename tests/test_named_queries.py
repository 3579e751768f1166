"""The Athena named queries (lakecontract/athena_queries) run with Spark SQL against a published lake."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from lakecontract import athena_queries as queries
from lakehouse import named_queries as nq

EXPECTED_COLUMNS = {
    "latest_prediction_per_symbol": [
        "symbol",
        "interval",
        "ts",
        "close",
        "prob_up",
        "signal",
        "predicted_return",
        "predicted_close",
        "model_version",
        "direction_model",
        "direction_promoted",
        "return_model",
        "return_promoted",
        "baseline_prob_up",
        "scored_at",
    ],
    "dq_failures_last_7_days": [
        "table_name",
        "layer",
        "tier",
        "expectation",
        "expectation_type",
        "evaluations",
        "failed",
        "unexpected_total",
        "max_unexpected_count",
        "max_unexpected_percent",
        "last_run_at",
        "last_failed_at",
        "last_success",
    ],
    "feature_coverage_per_symbol": [
        "symbol",
        "row_count",
        "first_ts",
        "last_ts",
        "warm_rows",
        "label_up_share",
        "rsi_14_share",
        "macd_share",
        "atr_14_share",
        "volatility_20_share",
        "sma_50_share",
        "computed_at",
    ],
    "model_leaderboard_vs_baseline": [
        "model_version",
        "task",
        "algorithm",
        "key_metric",
        "key_value",
        "baseline_value",
        "improvement",
        "improvement_ratio",
        "beats_baseline",
        "promoted",
        "rank_in_task",
        "trained_at",
    ],
}

# Outside the subset Athena (Trino) and Spark SQL share; see lakecontract/athena_queries.
NOT_PORTABLE = {
    "`": "backtick quoting (Spark only)",
    "::": "`::` casts",
    r"\bdate_sub\s*\(": "date_sub (Spark only)",
    r"\bdate_add\s*\(": "date_add (different signatures)",
    r"\bdateadd\s*\(": "dateadd",
    r"\bnvl2?\s*\(": "nvl (Spark only)",
    r"\bifnull\s*\(": "ifnull (Spark only)",
    r"\btry_cast\s*\(": "try_cast (Trino only)",
    r"\bdate_diff\s*\(": "date_diff (Trino only)",
    r"\bdatediff\s*\(": "datediff (Spark only)",
    r"\bgetdate\s*\(": "getdate",
    r"\bnow\s*\(": "now() (Spark only)",
}


def _code(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def test_there_are_queries_and_every_table_is_a_gold_table():
    assert set(queries.names()) == set(EXPECTED_COLUMNS)
    assert set(nq.TABLES) == {"gold_predictions", "gold_dq_results", "gold_features_1d", "gold_model_registry"}
    for view, tbl in nq.TABLES.items():
        assert tbl.zone == "gold" and nq.view_name(tbl) == view


@pytest.mark.parametrize("name", queries.names())
def test_query_file_is_one_documented_portable_statement(name):
    text = queries.path(name).read_text(encoding="utf-8")
    assert text.startswith("-- "), "each query starts with a comment saying what it answers"
    assert queries.description(name)
    sql = queries.read(name)
    assert not sql.endswith(";")
    assert ";" not in _code(sql), "one statement per file"
    code = _code(sql)
    for pattern, why in NOT_PORTABLE.items():
        assert not re.search(pattern, code, flags=re.IGNORECASE), f"{name}: {why}"
    assert len(nq.tables_used(sql)) == 1


def test_read_strips_trailing_semicolons(tmp_path, monkeypatch):
    (tmp_path / "q.sql").write_text("-- q\nSELECT 1;  \n;\n", encoding="utf-8")
    monkeypatch.setattr(queries, "QUERY_DIR", tmp_path)
    assert queries.read("q") == "-- q\nSELECT 1"


@pytest.mark.parametrize("name", queries.names())
@pytest.mark.parametrize("dialect", ["trino", "spark"])
def test_query_parses_in_both_dialects(name, dialect):
    import sqlglot
    from sqlglot.errors import ErrorLevel

    statements = sqlglot.parse(queries.read(name), read=dialect, error_level=ErrorLevel.RAISE)
    assert len([s for s in statements if s is not None]) == 1


def test_leaderboard_improvement_assumes_lower_is_better_key_metrics():
    from lakehouse.ml.evaluate import KEY_METRIC

    # model_leaderboard_vs_baseline.sql computes improvement = baseline_value - key_value.
    assert {better for _, better in KEY_METRIC.values()} == {"lower"}


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(queries.UnknownQuery) as info:
        queries.read("no_such_query")
    message = str(info.value)
    assert "no_such_query" in message
    for name in queries.names():
        assert name in message


def test_cli_unknown_name_exits_2_with_the_list(capsys):
    assert nq.main(["no_such_query"]) == 2
    err = capsys.readouterr().err
    assert "no_such_query" in err and all(n in err for n in queries.names())


def test_cli_list_prints_names_with_descriptions(capsys):
    assert nq.main(["--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == queries.names()
    assert all(len(line.split()) > 1 for line in out)


def _table(spark, root, view):
    from lakehouse import delta_io

    return delta_io.read(spark, nq.TABLES[view], root).toPandas()


def _check_latest_prediction(spark, published, result):
    # Independent oracle: the version's predictions as the batch export wrote them, newest bar per series.
    preds = published.predictions
    expected = (
        preds.sort_values("ts")
        .groupby(["symbol", "interval"])
        .tail(1)
        .sort_values(["symbol", "interval"])[EXPECTED_COLUMNS["latest_prediction_per_symbol"]]
        .reset_index(drop=True)
    )
    assert len(expected) == 3  # the fixture lake has three symbols, one interval
    assert set(result["model_version"]) == {published.version}
    pd.testing.assert_frame_equal(result.reset_index(drop=True), expected)


def _check_dq(spark, published, result):
    # The fixture lake was validated just now and passed: every row of gold/dq_results is in the window.
    dq = _table(spark, published.cfg.resolved_root, "gold_dq_results")
    assert result["evaluations"].sum() == len(dq)
    assert (result["failed"] == 0).all() and result["last_failed_at"].isna().all()
    assert not result.duplicated(["table_name", "layer", "tier", "expectation"]).any()


# Bars before each feature's first value (lakecontract/feature_spec.py: window - 1 or the recursive warm-up);
# label_up is null on each symbol's last bar only.
NULL_BARS = {"label_up": 1, "rsi_14": 14, "macd": 25, "atr_14": 14, "volatility_20": 20, "sma_50": 49}


def _check_coverage(spark, published, result):
    features = _table(spark, published.cfg.resolved_root, "gold_features_1d")
    rows = []
    for symbol, g in features.groupby("symbol"):  # sorted by symbol, as the query orders
        n = len(g)
        shares = {f"{c}_share": g[c].notna().sum() / n for c in NULL_BARS}
        for column, null_bars in NULL_BARS.items():  # and from how the features are built
            assert shares[f"{column}_share"] == (n - null_bars) / n, (symbol, column)
        rows.append(
            {
                "symbol": symbol,
                "row_count": n,
                "first_ts": g["ts"].min(),
                "last_ts": g["ts"].max(),
                "warm_rows": int(g["is_warm"].sum()),
                **shares,
                "computed_at": g["computed_at"].max(),
            }
        )
    expected = pd.DataFrame(rows)
    assert len(expected) == 3
    pd.testing.assert_frame_equal(result, expected, check_dtype=False)


def _check_leaderboard(spark, published, result):
    registry = _table(spark, published.cfg.resolved_root, "gold_model_registry").set_index("model_id")
    assert len(result) == len(registry)
    assert set(result["key_metric"]) <= {"brier", "mase"}
    # train wrote its own verdict into the registry (evaluate.ModelResult.key): the query must agree.
    by_model = result.set_index(["model_version", "task", "algorithm"])["beats_baseline"]
    flags = registry.set_index(["model_version", "task", "algorithm"])["beats_baseline"]
    assert by_model.sort_index().tolist() == flags.sort_index().tolist()
    versions = result["model_version"].tolist()
    assert versions == sorted(versions, reverse=True)
    for _, group in result.groupby(["model_version", "task"]):
        ordered = group.sort_values(["key_value", "algorithm"])
        assert ordered["rank_in_task"].tolist() == list(range(1, len(group) + 1))


CHECKS = {
    "latest_prediction_per_symbol": _check_latest_prediction,
    "dq_failures_last_7_days": _check_dq,
    "feature_coverage_per_symbol": _check_coverage,
    "model_leaderboard_vs_baseline": _check_leaderboard,
}


@pytest.mark.spark
@pytest.mark.parametrize("name", queries.names())
def test_query_runs_on_the_published_lake(spark, published_lake, name):
    root = published_lake.cfg.resolved_root
    result = nq.run(spark, root, name).toPandas()
    assert len(result) >= 1
    assert list(result.columns) == EXPECTED_COLUMNS[name]
    CHECKS[name](spark, published_lake, result)


# --- queries on small lakes built row by row -----------------------------------------------------


def _filler(field):
    """A value for a column the test does not care about: null where allowed, else a constant."""
    from pyspark.sql import types as T

    if field.nullable:
        return None
    constants = {
        T.StringType: "x",
        T.IntegerType: 0,
        T.LongType: 0,
        T.DoubleType: 0.0,
        T.BooleanType: False,
        T.TimestampType: datetime(2025, 1, 1, tzinfo=UTC),
    }
    return constants[type(field.dataType)]


def _write(spark, root: str, view: str, rows: list[dict]) -> None:
    """Append `rows` (the columns that matter; the rest filled) to the lake table behind `view`."""
    from lakehouse import delta_io

    tbl = nq.TABLES[view]
    unknown = {k for r in rows for k in r} - set(tbl.schema.fieldNames())
    assert not unknown, unknown
    data = [tuple(r.get(f.name, _filler(f)) for f in tbl.schema.fields) for r in rows]
    delta_io.append(spark, spark.createDataFrame(data, tbl.schema), tbl, root)


def _plain(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts of plain Python values, null/NaN/NaT as None, so they compare with ==."""
    out = []
    for record in frame.astype(object).to_dict("records"):
        row = {}
        for key, value in record.items():
            if value is None or (not isinstance(value, str) and pd.isna(value)):
                value = None
            elif isinstance(value, pd.Timestamp):
                value = value.to_pydatetime()
            elif hasattr(value, "item"):  # numpy scalar
                value = value.item()
            row[key] = value
        out.append(row)
    return out


DQ_COLUMNS = ["table_name", "layer", "tier", "expectation", "expectation_type"]


@pytest.mark.spark
def test_dq_query_counts_the_failures_of_the_last_7_days_failures_first(spark, lake):
    # started_at relative to now (the query compares with current_timestamp): the edge rows are an hour inside
    # and an hour outside the 7-day window, far from anything the seconds of a test run could move.
    now = datetime.now(UTC).replace(microsecond=0)
    ago = {
        "1h": timedelta(hours=1),
        "2h": timedelta(hours=2),
        "1d": timedelta(days=1),
        "2d": timedelta(days=2),
        "3d": timedelta(days=3),
        "4d": timedelta(days=4),
        "5d": timedelta(days=5),
        "6d": timedelta(days=6),
        "7d-1h": timedelta(days=7) - timedelta(hours=1),
        "7d+1h": timedelta(days=7) + timedelta(hours=1),
        "8d": timedelta(days=8),
        "30d": timedelta(days=30),
    }
    close = ("silver/candles", "silver", "critical", "close_not_null", "expect_column_values_to_not_be_null")
    volume = ("bronze/candles", "bronze", "critical", "volume_non_negative", "expect_column_values_to_be_between")
    rsi = ("gold/features_1d", "gold", "warning", "rsi_in_range", "expect_column_values_to_be_between")
    schema = ("silver/candles", "silver", "critical", "a_columns_match", "expect_table_columns_to_match_set")
    count = ("silver/candles", "silver", "critical", "row_count_between", "expect_table_row_count_to_be_between")
    old = ("gold/predictions", "gold", "critical", "prob_in_range", "expect_column_values_to_be_between")
    runs = [  # expectation, when, success, unexpected_count, unexpected_percent
        (close, "1h", False, 3, 0.3),
        (close, "2d", False, 5, 0.5),
        (close, "3d", True, 0, 0.0),
        (close, "7d-1h", False, 7, 0.7),  # inside the window, by an hour
        (close, "7d+1h", False, 100, 10.0),  # outside, by an hour
        (volume, "5d", False, 1, 0.1),
        (rsi, "6d", False, 2, 0.2),
        (rsi, "1d", True, None, None),
        (rsi, "2h", True, 0, 0.0),
        (schema, "1h", True, None, None),
        (count, "1d", True, None, None),
        (count, "4d", True, None, None),
        (old, "8d", False, 9, 0.9),  # only outside the window: no row at all
        (old, "30d", False, 9, 0.9),
    ]
    _write(
        spark,
        lake,
        "gold_dq_results",
        [
            {
                **dict(zip(DQ_COLUMNS, expectation, strict=True)),
                "run_id": f"r{i}",
                "suite": "s",
                "success": success,
                "unexpected_count": unexpected,
                "unexpected_percent": percent,
                "started_at": now - ago[when],
                "ended_at": now - ago[when] + timedelta(minutes=1),
            }
            for i, (expectation, when, success, unexpected, percent) in enumerate(runs)
        ],
    )

    result = _plain(nq.run(spark, lake, "dq_failures_last_7_days").toPandas())

    def at(when: str) -> datetime:
        return (now - ago[when]).replace(tzinfo=None)  # the session time zone is UTC

    # evaluations, failed, unexpected_total, max_unexpected_count, max_unexpected_percent,
    # last_run_at, last_failed_at, last_success
    expected = [
        (close, 4, 3, 15, 7, 0.7, at("1h"), at("1h"), False),
        (volume, 1, 1, 1, 1, 0.1, at("5d"), at("5d"), False),  # ties on failed: table_name decides
        (rsi, 3, 1, 2, 2, 0.2, at("2h"), at("6d"), True),
        (schema, 1, 0, 0, None, None, at("1h"), None, True),  # never failed: listed, last
        (count, 2, 0, 0, None, None, at("1d"), None, True),
    ]
    assert result == [
        dict(zip(EXPECTED_COLUMNS["dq_failures_last_7_days"], (*expectation, *numbers), strict=True))
        for expectation, *numbers in expected
    ]


@pytest.mark.spark
def test_leaderboard_beats_baseline_only_when_both_values_are_finite_and_key_is_lower(spark, lake):
    nan, inf = math.nan, math.inf
    new, old = "20250201T000000Z", "20250101T000000Z"
    rows = [  # model_version, task, algorithm, key_value, baseline_value, promoted
        (new, "direction", "a_beats", 0.125, 0.25, True),
        (new, "direction", "b_tie", 0.25, 0.25, False),
        (new, "direction", "c_worse", 0.375, 0.25, False),
        (new, "direction", "d_nan_key", nan, 0.25, False),
        (new, "direction", "e_null_key", None, 0.25, False),
        (new, "return", "a_zero_baseline", 0.0625, 0.0, False),
        (new, "return", "b_beats", 0.5, 1.0, True),
        (new, "return", "c_nan_baseline", 0.75, nan, False),
        (new, "return", "d_inf_baseline", 0.875, inf, False),
        (new, "return", "e_null_baseline", 0.9375, None, False),
        (old, "direction", "b_same", 0.125, 0.25, False),  # same key value: the algorithm name breaks the tie
        (old, "direction", "a_same", 0.125, 0.25, True),
    ]
    metric = {"direction": "brier", "return": "mase"}
    _write(
        spark,
        lake,
        "gold_model_registry",
        [
            {
                "model_id": f"{version}-{task}-{algorithm}",
                "model_version": version,
                "task": task,
                "algorithm": algorithm,
                "key_metric": metric[task],
                "key_value": key,
                "baseline_value": base,
                "beats_baseline": True,  # the registry's flag says yes everywhere; the query must not read it
                "promoted": promoted,
            }
            for version, task, algorithm, key, base, promoted in rows
        ],
    )

    result = nq.run(spark, lake, "model_leaderboard_vs_baseline").collect()
    got = [
        (
            r.model_version,
            r.task,
            r.algorithm,
            r.key_metric,
            _nan_marked(r.improvement),
            _nan_marked(r.improvement_ratio),
            r.beats_baseline,
            r.promoted,
            r.rank_in_task,
        )
        for r in result
    ]
    # improvement = baseline - key; ratio = improvement / baseline (null when the baseline is 0);
    # rank: ascending key value (Spark orders NaN above every number), nulls last, ties by algorithm.
    assert got == [
        (new, "direction", "a_beats", "brier", 0.125, 0.5, True, True, 1),
        (new, "direction", "b_tie", "brier", 0.0, 0.0, False, False, 2),
        (new, "direction", "c_worse", "brier", -0.125, -0.5, False, False, 3),
        (new, "direction", "d_nan_key", "brier", "NaN", "NaN", False, False, 4),
        (new, "direction", "e_null_key", "brier", None, None, False, False, 5),
        (new, "return", "a_zero_baseline", "mase", -0.0625, None, False, False, 1),
        (new, "return", "b_beats", "mase", 0.5, 0.5, True, True, 2),
        (new, "return", "c_nan_baseline", "mase", "NaN", "NaN", False, False, 3),
        (new, "return", "d_inf_baseline", "mase", inf, "NaN", False, False, 4),
        (new, "return", "e_null_baseline", "mase", None, None, False, False, 5),
        (old, "direction", "a_same", "brier", 0.125, 0.5, True, True, 1),
        (old, "direction", "b_same", "brier", 0.125, 0.5, True, False, 2),
    ]


def _nan_marked(value: float | None) -> float | str | None:
    """NaN as a marker string, so rows holding NaN compare with == (nan != nan)."""
    return "NaN" if value is not None and math.isnan(value) else value


@pytest.mark.spark
def test_latest_prediction_is_of_the_newest_version_even_where_an_older_one_has_newer_bars(spark, lake):
    new, old = "20250201T000000Z", "20250101T000000Z"

    def day(d: int) -> datetime:
        return datetime(2025, 1, d, tzinfo=UTC)

    rows = [  # model_version, symbol, interval, ts, prob_up, close, signal
        (old, "AAA", "1d", day(20), 0.11, 11.0, "long"),  # newer bars of the older version: ignored
        (old, "BBB", "1d", day(20), 0.12, 12.0, "long"),
        (old, "CCC", "1d", day(20), 0.13, 13.0, "long"),  # a symbol the newest version did not score: absent
        (new, "AAA", "1d", day(3), 0.21, 21.0, "flat"),
        (new, "AAA", "1d", day(5), 0.22, 22.0, "long"),
        (new, "AAA", "1h", day(6), 0.23, 23.0, "flat"),  # each interval is its own series
        (new, "BBB", "1d", day(4), 0.24, 24.0, "long"),
        (new, "BBB", "1d", day(2), 0.25, 25.0, "flat"),
    ]
    _write(
        spark,
        lake,
        "gold_predictions",
        [
            {
                "model_version": version,
                "symbol": symbol,
                "interval": interval,
                "ts": ts,
                "prob_up": prob,
                "close": close,
                "signal": signal,
                "scored_at": ts + timedelta(hours=1),
            }
            for version, symbol, interval, ts, prob, close, signal in rows
        ],
    )

    result = _plain(nq.run(spark, lake, "latest_prediction_per_symbol").toPandas())

    got = [
        (r["model_version"], r["symbol"], r["interval"], r["ts"], r["prob_up"], r["close"], r["signal"]) for r in result
    ]
    naive = {d: day(d).replace(tzinfo=None) for d in (4, 5, 6)}  # the session time zone is UTC
    assert got == [
        (new, "AAA", "1d", naive[5], 0.22, 22.0, "long"),
        (new, "AAA", "1h", naive[6], 0.23, 23.0, "flat"),
        (new, "BBB", "1d", naive[4], 0.24, 24.0, "long"),
    ]


@pytest.mark.spark
def test_query_on_a_lake_without_the_table_says_what_to_do(spark, lake):
    with pytest.raises(nq.MissingTable) as info:
        nq.run(spark, lake, "latest_prediction_per_symbol")
    message = str(info.value)
    assert "gold/predictions" in message and "gold_predictions" in message
    assert "run `make run` first" in message


@pytest.mark.spark
def test_cli_prints_rows_and_count(spark, published_lake, capsys):
    root = published_lake.cfg.resolved_root
    assert nq.main(["feature_coverage_per_symbol", "--lake-root", root, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "row_count" in out and "3 row(s) (2 shown" in out
