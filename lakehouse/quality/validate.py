"""Run a table's rules with Great Expectations, and act on the tiers.

One call of `validate` is one GX validation: every rule of the table goes into one suite, so GX
can bundle the column checks into shared Spark aggregations (measured on the 18 k-row silver
table, cached, 2 cores: ~4 s per validation once warm, ~10 s the first time in a process; the
`import great_expectations` itself takes another ~10 s, paid once, on first use).

The GX objects follow the pattern that works offline (DESIGN.md "Data quality"): an ephemeral
context → a Spark data source → a dataframe asset → a whole-dataframe batch definition →
ExpectationSuite → ValidationDefinition → run with the frame as batch parameter. The context,
data source, asset and batch definition are built once per process and reused; each call adds
its suite and validation definition under a unique name and deletes them afterwards.

`split_quarantine` does not use GX: GX on Spark returns counts, not the failing rows, so rows
are split off with each quarantine rule's own Spark condition.
"""

from __future__ import annotations

import functools
import json
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.job_summary import JobFailed
from lakehouse.quality.rules import Rule, Tier

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

# Partial unexpected lists cost one extra Spark job per column check (10 of 36 jobs on the
# silver suite) and we record counts only; BASIC keeps unexpected_count and _percent.
RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}

_TAG = "__dq_failed_rules"
_DATA_SOURCE = "candlelake_spark"
_ASSET = "frame"
_BATCH_DEFINITION = "whole_frame"


@dataclass
class ExpectationOutcome:
    """The result of one rule in one validation, flattened to what gold/dq_results stores."""

    rule: str
    expectation_type: str
    tier: Tier
    success: bool
    observed_value: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    element_count: int | None

    def describe(self) -> str:
        """`rule (type): what was observed`, for logs and the halt message."""
        if self.observed_value is not None:
            seen = f"observed {self.observed_value}"
        elif self.unexpected_count is not None:
            seen = f"{self.unexpected_count} unexpected"
            if self.element_count is not None:
                seen += f" of {self.element_count} rows"
            if self.unexpected_percent is not None:
                seen += f" ({self.unexpected_percent:.4g}%)"
        else:
            seen = "no observed value"
        return f"{self.rule} ({self.expectation_type}): {seen}"


@dataclass
class ValidationRun:
    """One validation of one table: all its rules, when it ran, and under which pipeline run."""

    run_id: str
    layer: str
    table_name: str
    suite: str
    started_at: datetime
    ended_at: datetime
    outcomes: list[ExpectationOutcome] = field(default_factory=list)

    @property
    def failed_halts(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.tier == "halt" and not o.success]

    @property
    def success(self) -> bool:
        """No halt failed; warn and quarantine failures are handled, not fatal."""
        return not self.failed_halts

    def failed(self, tier: Tier) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if o.tier == tier and not o.success]

    def summary(self) -> str:
        """One line for the job log: `silver/candles: 9 rules, failed halt 0, quarantine 1, warn 0`."""
        counts = ", ".join(f"{tier} {len(self.failed(tier))}" for tier in ("halt", "quarantine", "warn"))
        return f"{self.table_name} [{self.suite}]: {len(self.outcomes)} rules, failed {counts}"


class QualityHalt(JobFailed):
    """A halt rule failed: the job must stop before writing its output table.

    A `JobFailed`, so the Glue entry scripts print the message and exit 1.
    """

    def __init__(self, run: ValidationRun) -> None:
        self.run = run
        failures = "; ".join(o.describe() for o in run.failed_halts)
        super().__init__(f"data quality halt on {run.table_name} (suite {run.suite}, run {run.run_id}): {failures}")


# --- GX plumbing ----------------------------------------------------------------------------------


@functools.cache
def _gx() -> tuple[AbstractDataContext, BatchDefinition]:
    """The process's GX context and whole-dataframe batch definition, built on first use."""
    # Before the import: GX reads it when the module loads. Offline, analytics would only retry.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    # tqdm bars per metric batch are noise in job logs (and Glue's CloudWatch streams).
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_spark(_DATA_SOURCE).add_dataframe_asset(_ASSET)
    return context, asset.add_batch_definition_whole_dataframe(_BATCH_DEFINITION)


def _observed(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, sort_keys=True)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _exception_message(info: Any) -> str | None:
    """The first exception message in GX's exception_info: flat ({raised_exception, …}) when the
    expectation raised, keyed by metric id when a metric did (a missing column)."""
    items: Iterable[Any]
    if isinstance(info, dict):
        if info.get("raised_exception") and info.get("exception_message"):
            return str(info["exception_message"]).strip().splitlines()[0]
        items = info.values()
    elif isinstance(info, list | set | tuple):
        items = info
    else:
        return None
    for item in items:
        message = _exception_message(item)
        if message is not None:
            return message
    return None


def _outcome(rule: Rule, result: Any) -> ExpectationOutcome:
    """Flatten one GX ExpectationValidationResult; an expectation that raised is a failure."""
    details: dict[str, Any] = dict(result.result or {})
    observed = _observed(details.get("observed_value"))
    unexpected_count = _int_or_none(details.get("unexpected_count"))
    error = _exception_message(getattr(result, "exception_info", None))
    if error is not None:
        observed = f"error: {error}"
    expectation_type = result.expectation_config.type
    if expectation_type == "unexpected_rows_expectation" and unexpected_count is None and details:
        # Its observed value is the number of rows the query returned.
        unexpected_count = _int_or_none(details.get("observed_value"))
    return ExpectationOutcome(
        rule=rule.name,
        expectation_type=expectation_type,
        tier=rule.tier,
        success=bool(result.success),
        observed_value=observed,
        unexpected_count=unexpected_count,
        unexpected_percent=_float_or_none(details.get("unexpected_percent")),
        element_count=_int_or_none(details.get("element_count")),
    )


def validate(
    df: DataFrame, rules: Sequence[Rule], *, layer: str, table_name: str, suite: str, run_id: str
) -> ValidationRun:
    """Check `df` against `rules` in one GX validation and return every rule's outcome.

    Raises nothing on failed rules: the caller decides (`raise_if_halted`, `split_quarantine`).
    An expectation that errors (a missing column) comes back as a failed outcome whose observed
    value is the error, so a broken halt rule still halts.

    GX's Spark engine persists `df` (its data source default) so that its ~20 Spark jobs read
    it once; the caller's split and write then reuse that cache. Unpersist it when done.
    """
    context, batch_definition = _gx()
    import great_expectations as gx

    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"suite {suite}: rule names must be unique, repeated: {duplicates}")
    by_name = {r.name: r for r in rules}

    expectations = []
    for rule in rules:
        expectation = rule.expectation()
        # GX does not keep the suite's order in its results: the rule name travels in `meta`.
        expectation.meta = {**(expectation.meta or {}), "rule": rule.name, "tier": rule.tier}
        expectations.append(expectation)
    unique = f"{suite}-{uuid.uuid4().hex[:12]}"
    gx_suite = context.suites.add(gx.ExpectationSuite(name=unique, expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=unique, data=batch_definition, suite=gx_suite)
    )
    started_at = datetime.now(UTC)
    try:
        result = definition.run(batch_parameters={"dataframe": df}, result_format=RESULT_FORMAT)
    finally:
        ended_at = datetime.now(UTC)
        context.validation_definitions.delete(unique)
        context.suites.delete(unique)

    outcomes = {}
    for item in result.results:
        # Every result answers one expectation of the suite built above, each tagged with its rule.
        assert item.expectation_config is not None
        rule = by_name[item.expectation_config.meta["rule"]]
        outcomes[rule.name] = _outcome(rule, item)
    return ValidationRun(
        run_id=run_id,
        layer=layer,
        table_name=table_name,
        suite=suite,
        started_at=started_at,
        ended_at=ended_at,
        outcomes=[outcomes[r.name] for r in rules],
    )


def _failed_rules(rules: Sequence[Rule]) -> Column:
    """array<string> of the quarantine rules a row breaks, in rule order."""
    quarantine = [r for r in rules if r.tier == "quarantine" and r.fails is not None]
    if not quarantine:
        return F.array().cast("array<string>")
    flagged = F.array(*[F.when(r.fails(), F.lit(r.name)) for r in quarantine if r.fails is not None])
    return F.filter(flagged, lambda name: name.isNotNull())


def split_quarantine(df: DataFrame, rules: Sequence[Rule]) -> tuple[DataFrame, DataFrame]:
    """(kept rows, failing rows) by the quarantine rules' Spark conditions; no Spark action.

    The failing rows gain `rule` (the first quarantine rule broken, in rule order) and
    `failed_rules` (all of them), the quarantine tables' convention. Kept rows keep the input's
    columns. Warn and halt rules do not move rows. Cache `df` first if it is expensive: both
    frames read it.
    """
    tagged_df = df.withColumn(_TAG, _failed_rules(rules))
    kept_df = tagged_df.where(F.size(_TAG) == 0).select(*[F.col(f"`{c}`") for c in df.columns])
    failing_df = tagged_df.where(F.size(_TAG) > 0).select(
        *[F.col(f"`{c}`") for c in df.columns],
        F.col(_TAG)[0].alias("rule"),
        F.col(_TAG).alias("failed_rules"),
    )
    return kept_df, failing_df


def raise_if_halted(run: ValidationRun) -> None:
    """Raise `QualityHalt` naming each failed halt rule; call it before writing the output."""
    if not run.success:
        raise QualityHalt(run)
