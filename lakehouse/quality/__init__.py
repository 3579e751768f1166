"""Data quality with Great Expectations 1.x: rules in three tiers, validation, results, reports.

    rules = silver_candle_rules()
    run = validate(df, rules, layer="silver", table_name="silver/candles", suite="silver_candles", run_id=run_id)
    raise_if_halted(run)                        # halt: the job fails before writing anything
    kept_df, quarantined_df = split_quarantine(df, rules)   # quarantine: rows move out
    record(spark, [run], root)                   # every outcome, warn included, to gold/dq_results
    write_report([run], root)                   # <root>/reports/dq/<run_id>.html + index.html

`great_expectations` is imported on the first `validate` only (the import takes ~10 s).
"""

from lakehouse.quality.results import record, results_frame
from lakehouse.quality.rules import Rule, Tier, gold_feature_rules, silver_candle_rules
from lakehouse.quality.validate import (
    ExpectationOutcome,
    QualityHalt,
    ValidationRun,
    raise_if_halted,
    split_quarantine,
    validate,
)

_REPORT_NAMES = ("latest_report", "write_report")


def __getattr__(name: str) -> object:
    """`write_report` and `latest_report` load `report` on first use: importing it here would make
    `python -m lakehouse.quality.report` run a module that is already imported (runpy warns)."""
    if name in _REPORT_NAMES:
        from lakehouse.quality import report

        return getattr(report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ExpectationOutcome",
    "QualityHalt",
    "Rule",
    "Tier",
    "ValidationRun",
    "gold_feature_rules",
    "latest_report",
    "raise_if_halted",
    "record",
    "results_frame",
    "silver_candle_rules",
    "split_quarantine",
    "validate",
    "write_report",
]
