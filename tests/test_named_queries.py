"""The Athena named queries (infra/athena/queries) run with Spark SQL against a published lake."""

from __future__ import annotations

import re

import pytest

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

# Outside the subset Athena (Trino) and Spark SQL share; see infra/athena/queries.
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
    assert set(nq.names()) == set(EXPECTED_COLUMNS)
    assert set(nq.TABLES) == {"gold_predictions", "gold_dq_results", "gold_features_1d", "gold_model_registry"}
    for view, tbl in nq.TABLES.items():
        assert tbl.zone == "gold" and nq.view_name(tbl) == view


@pytest.mark.parametrize("name", nq.names())
def test_query_file_is_one_documented_portable_statement(name):
    text = nq.path(name).read_text(encoding="utf-8")
    assert text.startswith("-- "), "each query starts with a comment saying what it answers"
    assert nq.description(name)
    sql = nq.read(name)
    assert not sql.endswith(";")
    assert ";" not in _code(sql), "one statement per file"
    code = _code(sql)
    for pattern, why in NOT_PORTABLE.items():
        assert not re.search(pattern, code, flags=re.IGNORECASE), f"{name}: {why}"
    assert len(nq.tables_used(sql)) == 1


def test_read_strips_trailing_semicolons(tmp_path, monkeypatch):
    (tmp_path / "q.sql").write_text("-- q\nSELECT 1;  \n;\n", encoding="utf-8")
    monkeypatch.setattr(nq, "QUERY_DIR", tmp_path)
    assert nq.read("q") == "-- q\nSELECT 1"


@pytest.mark.parametrize("name", nq.names())
@pytest.mark.parametrize("dialect", ["trino", "spark"])
def test_query_parses_in_both_dialects(name, dialect):
    import sqlglot
    from sqlglot.errors import ErrorLevel

    statements = sqlglot.parse(nq.read(name), read=dialect, error_level=ErrorLevel.RAISE)
    assert len([s for s in statements if s is not None]) == 1


def test_leaderboard_improvement_assumes_lower_is_better_key_metrics():
    from lakehouse.ml.evaluate import KEY_METRIC

    # model_leaderboard_vs_baseline.sql computes improvement = baseline_value - key_value.
    assert {better for _, better in KEY_METRIC.values()} == {"lower"}


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(nq.UnknownQuery) as info:
        nq.read("no_such_query")
    message = str(info.value)
    assert "no_such_query" in message
    for name in nq.names():
        assert name in message


def test_cli_unknown_name_exits_2_with_the_list(capsys):
    assert nq.main(["no_such_query"]) == 2
    err = capsys.readouterr().err
    assert "no_such_query" in err and all(n in err for n in nq.names())


def test_cli_list_prints_names_with_descriptions(capsys):
    assert nq.main(["--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == nq.names()
    assert all(len(line.split()) > 1 for line in out)


def _table(spark, root, view):
    from lakehouse import delta_io

    return delta_io.read(spark, nq.TABLES[view], root).toPandas()


def _check_latest_prediction(spark, root, result):
    preds = _table(spark, root, "gold_predictions")
    newest = preds["model_version"].max()
    assert set(result["model_version"]) == {newest}
    assert result["symbol"].is_unique
    of_newest = preds[preds["model_version"] == newest]
    assert set(result["symbol"]) == set(of_newest["symbol"])
    assert result.set_index("symbol")["ts"].to_dict() == of_newest.groupby("symbol")["ts"].max().to_dict()


def _check_dq(spark, root, result):
    assert (result["evaluations"] >= result["failed"]).all() and (result["failed"] >= 0).all()
    assert result["failed"].is_monotonic_decreasing, "failures first"
    dq = _table(spark, root, "gold_dq_results")
    assert result["evaluations"].sum() == len(dq)  # the fixture lake was validated just now
    assert result["failed"].sum() == (~dq["success"]).sum()
    assert not result.duplicated(["table_name", "layer", "tier", "expectation"]).any()


def _check_coverage(spark, root, result):
    features = _table(spark, root, "gold_features_1d")
    assert result.set_index("symbol")["row_count"].to_dict() == features.groupby("symbol").size().to_dict()
    shares = result[[c for c in result.columns if c.endswith("_share")]]
    assert ((shares >= 0) & (shares <= 1)).all().all()
    # label_up is null on each symbol's last bar only; the features are null during warm-up only.
    assert ((result["label_up_share"] - (result["row_count"] - 1) / result["row_count"]).abs() < 1e-12).all()
    assert ((shares > 0.5) & (shares < 1)).all().all()


def _check_leaderboard(spark, root, result):
    registry = _table(spark, root, "gold_model_registry")
    assert len(result) == len(registry)
    assert (result["beats_baseline"] == (result["key_value"] < result["baseline_value"])).all()
    assert ((result["improvement"] - (result["baseline_value"] - result["key_value"])).abs() < 1e-12).all()
    assert set(result["key_metric"]) <= {"brier", "mase"}
    versions = result["model_version"].tolist()
    assert versions == sorted(versions, reverse=True)
    best = result[result["rank_in_task"] == 1]
    assert not best.duplicated(["model_version", "task"]).any()
    for _, row in best.iterrows():
        same = result[(result["model_version"] == row["model_version"]) & (result["task"] == row["task"])]
        assert row["key_value"] == same["key_value"].min()


CHECKS = {
    "latest_prediction_per_symbol": _check_latest_prediction,
    "dq_failures_last_7_days": _check_dq,
    "feature_coverage_per_symbol": _check_coverage,
    "model_leaderboard_vs_baseline": _check_leaderboard,
}


@pytest.mark.spark
@pytest.mark.parametrize("name", nq.names())
def test_query_runs_on_the_published_lake(spark, published_lake, name):
    root = published_lake.cfg.resolved_root
    result = nq.run(spark, root, name).toPandas()
    assert len(result) >= 1
    assert list(result.columns) == EXPECTED_COLUMNS[name]
    CHECKS[name](spark, root, result)


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
