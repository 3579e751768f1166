"""Data-quality rules of the lake: what each table must satisfy, and what happens when it does not.

Each `Rule` has a tier, because not every broken expectation deserves the same response:

| tier       | when it fails                                                                  |
|------------|--------------------------------------------------------------------------------|
| warn       | the result is recorded (gold/dq_results, HTML report); the job goes on         |
| quarantine | the failing rows are moved out by the caller (`validate.split_quarantine`)     |
| halt       | the job fails and writes nothing to its output table (`validate.raise_if_halted`) |

A rule's `expectation` builds a Great Expectations expectation, whose result is what we record.
GX does not hand back the failing rows of a Spark frame efficiently, so a quarantine rule also
carries `fails`: the same condition as a Spark `Column`, true when a row breaks the rule, that
splits rows off with native Spark. The two must agree; tests/test_quality.py checks they do.

Expectations are built by factories, not held as instances, because a GX expectation belongs to
the suite it is added to: every validation gets fresh ones. `great_expectations` is imported
inside the factories because importing it costs ~10 s; modules that only need rule names or
`fails` conditions do not pay that.

Silver rules (`silver/candles`):

| rule                  | tier       | GX expectation                                     |
|-----------------------|------------|----------------------------------------------------|
| table_not_empty       | halt       | expect_table_row_count_to_be_between (min 1)       |
| key_unique            | halt       | expect_compound_columns_to_be_unique (symbol, interval, ts) |
| symbol_not_null, interval_not_null, ts_not_null | halt | expect_column_values_to_not_be_null |
| ohlc_consistent       | quarantine | unexpected_rows_expectation (Spark SQL): low ≤ min(o, c) ≤ max(o, c) ≤ high |
| volume_non_negative   | quarantine | expect_column_values_to_be_between (min 0)         |
| return_1bar_below_50pct | warn     | unexpected_rows_expectation: abs(close / previous close - 1) < 0.5 per series |
| ts_not_in_future      | warn       | unexpected_rows_expectation: ts ≤ now              |

Gold feature rules (`gold/features_<interval>`):

| rule                      | tier | GX expectation                                         |
|---------------------------|------|--------------------------------------------------------|
| table_not_empty           | halt | expect_table_row_count_to_be_between (min 1)           |
| key_unique                | halt | expect_compound_columns_to_be_unique (symbol, ts)      |
| close_not_null            | halt | expect_column_values_to_not_be_null                    |
| close_positive            | halt | expect_column_values_to_be_between (min 0, strict)     |
| label_up_binary           | warn | expect_column_values_to_be_in_set {0, 1} (nulls: the last bar has no label) |
| warm_features_complete | warn | unexpected_rows_expectation: is_warm AND any feature IS NULL or NaN |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pyspark.sql import Column
from pyspark.sql import functions as F

if TYPE_CHECKING:
    import great_expectations as gx

Tier = Literal["warn", "quarantine", "halt"]
TIERS: tuple[Tier, ...] = ("halt", "quarantine", "warn")

SILVER_KEY = ("symbol", "interval", "ts")
GOLD_KEY = ("symbol", "ts")

MAX_ABS_RETURN_1BAR = 0.5
"""A 50 % move in one bar of adjusted prices is far more likely an unadjusted split than news."""


@dataclass(frozen=True)
class Rule:
    """One data-quality rule: a stable name, its tier, and how to check it."""

    name: str
    """Stable snake_case name; it is the `expectation` column of gold/dq_results, so keep it."""
    tier: Tier
    expectation: Callable[[], gx.expectations.Expectation]
    """Builds a fresh GX expectation (one belongs to one suite)."""
    fails: Callable[[], Column] | None = None
    """Spark condition true when a row breaks the rule; required for tier quarantine."""
    description: str = ""
    """What the rule protects against, for the report."""

    def __post_init__(self) -> None:
        if self.tier not in TIERS:
            raise ValueError(f"rule {self.name!r}: unknown tier {self.tier!r}; choose one of {', '.join(TIERS)}")
        if self.tier == "quarantine" and self.fails is None:
            raise ValueError(f"rule {self.name!r}: a quarantine rule needs `fails` to split its rows off")


# --- expectation factories (GX imported lazily: see the module docstring) -------------------------


def _table_not_empty() -> gx.expectations.Expectation:
    import great_expectations as gx

    return gx.expectations.ExpectTableRowCountToBeBetween(min_value=1)


def _unique(columns: Sequence[str]) -> Callable[[], gx.expectations.Expectation]:
    def build() -> gx.expectations.Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(columns))

    return build


def _not_null(column: str) -> Callable[[], gx.expectations.Expectation]:
    def build() -> gx.expectations.Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectColumnValuesToNotBeNull(column=column)

    return build


def _between(
    column: str, *, min_value: float | None = None, strict_min: bool = False
) -> Callable[[], gx.expectations.Expectation]:
    def build() -> gx.expectations.Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectColumnValuesToBeBetween(column=column, min_value=min_value, strict_min=strict_min)

    return build


def _in_set(column: str, values: Sequence[object]) -> Callable[[], gx.expectations.Expectation]:
    def build() -> gx.expectations.Expectation:
        import great_expectations as gx

        return gx.expectations.ExpectColumnValuesToBeInSet(column=column, value_set=list(values))

    return build


def _unexpected_rows(where: str, description: str) -> Callable[[], gx.expectations.Expectation]:
    """A Spark SQL condition over the batch. GX runs it as `SELECT ... FROM tmp_view WHERE ...`
    on a session temp view, which is how it checks multi-column and windowed rules on Spark."""

    def build() -> gx.expectations.Expectation:
        import great_expectations as gx

        return gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=f"SELECT * FROM {{batch}} WHERE {where}", description=description
        )

    return build


# --- Spark conditions (true when a row fails) ----------------------------------------------------
# A null compares to null, which `where` treats as false: like GX, which skips nulls in column
# checks, a null is not a quarantine failure here; the halt not-null rules catch nulls.


def ohlc_inconsistent() -> Column:
    """True unless low ≤ min(open, close) ≤ max(open, close) ≤ high."""
    consistent = (F.col("low") <= F.least("open", "close")) & (F.greatest("open", "close") <= F.col("high"))
    return F.coalesce(~consistent, F.lit(False))


def negative_volume() -> Column:
    return F.coalesce(F.col("volume") < 0, F.lit(False))


_OHLC_INCONSISTENT_SQL = "NOT (low <= least(open, close) AND greatest(open, close) <= high)"


def silver_candle_rules() -> list[Rule]:
    """The rules for silver/candles, checked before a build's rows are MERGEd."""
    return [
        Rule("table_not_empty", "halt", _table_not_empty, description="a build that produces nothing is broken"),
        Rule(
            "key_unique",
            "halt",
            _unique(SILVER_KEY),
            description="(symbol, interval, ts) is the MERGE key; a duplicate makes the MERGE ambiguous",
        ),
        *(
            Rule(f"{col}_not_null", "halt", _not_null(col), description=f"key column {col} is required")
            for col in SILVER_KEY
        ),
        Rule(
            "ohlc_consistent",
            "quarantine",
            _unexpected_rows(_OHLC_INCONSISTENT_SQL, "low <= min(open, close) <= max(open, close) <= high"),
            fails=ohlc_inconsistent,
            description="a bar whose body lies outside its range is corrupt",
        ),
        Rule(
            "volume_non_negative",
            "quarantine",
            _between("volume", min_value=0),
            fails=negative_volume,
            description="a negative volume is corrupt",
        ),
        Rule(
            "return_1bar_below_50pct",
            "warn",
            _return_1bar_expectation,
            description="adjusted prices rarely move 50 % in one bar: a split may not be adjusted",
        ),
        Rule(
            "ts_not_in_future",
            "warn",
            _unexpected_rows("ts > current_timestamp()", "no bar is stamped after the validation time"),
            description="a future bar would have been quarantined by the silver build",
        ),
    ]


def _return_1bar_expectation() -> gx.expectations.Expectation:
    """Windowed: GX cannot compute a lag itself, but its Spark SQL query can."""
    import great_expectations as gx

    query = (
        "SELECT * FROM (SELECT *, abs(close / lag(close) OVER (PARTITION BY symbol, `interval` ORDER BY ts) - 1)"
        f" AS abs_return_1bar FROM {{batch}}) WHERE abs_return_1bar >= {MAX_ABS_RETURN_1BAR}"
    )
    return gx.expectations.UnexpectedRowsExpectation(
        unexpected_rows_query=query,
        description=f"|1-bar return| < {MAX_ABS_RETURN_1BAR} within each (symbol, interval) series",
    )


def gold_feature_rules(feature_columns: Sequence[str]) -> list[Rule]:
    """The rules for gold/features_<interval>, checked before the features are written.

    A feature may be null during its warm-up (a 20-bar mean has no value on bar 3), so nulls
    are only counted on rows the feature job marks `is_warm`. All features are checked by one
    SQL expectation: one per column cost ~115 Spark jobs (≈ 1 min on 2 cores) per build.
    """
    return [
        Rule("table_not_empty", "halt", _table_not_empty, description="a feature build that produces nothing"),
        Rule("key_unique", "halt", _unique(GOLD_KEY), description="one feature row per (symbol, ts)"),
        Rule("close_not_null", "halt", _not_null("close"), description="every label derives from close"),
        Rule(
            "close_positive",
            "halt",
            _between("close", min_value=0, strict_min=True),
            description="a non-positive price poisons returns and log features",
        ),
        Rule(
            "label_up_binary",
            "warn",
            _in_set("label_up", (0, 1)),
            description="the classification label is 0 or 1 (null on a series' last bar)",
        ),
        Rule(
            "warm_features_complete",
            "warn",
            _unexpected_rows(
                "is_warm AND (" + " OR ".join(f"`{col}` IS NULL OR isnan(`{col}`)" for col in feature_columns) + ")",
                "every feature has a finite value on every warmed-up row",
            ),
            description="no feature is null or NaN once a symbol has warmed up (one check over all features)",
        ),
    ]
