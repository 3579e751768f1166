"""Predictions for bars a caller sends: silver's rules, gold's feature code, the published models.

`POST /predict/candles` lets a client ask about the bar that just closed, hours before the next
pipeline run. Features computed twice — in Spark for training, again in the API — is where
training/serving skew comes from, so nothing here is a second implementation:

- the bars are checked with silver's rules (`lakecontract.candle_rules`, the names and order silver
  quarantines by); a bar that silver would quarantine is a 422 naming the rule and the bar;
- the features come from `lakecontract.feature_math.compute`, the function gold's Spark job runs
  per symbol, called here on the caller's series; the version's manifest must carry this code's
  feature-spec hash, or the answer is refused (503) rather than computed with other features;
- the model inputs are built by `lakecontract.artifacts.snapshot_inputs`, which builds `/predict`'s
  and export's inputs, and run through the version's ONNX sessions loaded with it.

A series shorter than `MIN_BARS` is refused: the recursive features (EMA, MACD, RSI, ATR) depend
on where a series starts, and only from that length on do they equal gold's, which start at the
symbol's first bar in the lake (`feature_math.bars_to_match_gold`). numpy only: no Spark, pandas or
scipy reaches the Lambda.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from lakecontract import candle_rules
from lakecontract.artifacts import snapshot_inputs
from lakecontract.constants import TASKS
from lakecontract.feature_math import CONTEXT_BARS, RESUME_COLUMNS, RESUME_FROM_BAR, bars_to_match_gold, compute
from lakecontract.feature_spec import FEATURE_NAMES, spec_hash
from serving.api_error import ApiError
from serving.artifacts import Bundle, Prediction, finite_or_none, prediction, run_task

MIN_BARS = bars_to_match_gold()
OHLCV = ("open", "high", "low", "close", "volume")
SHOWN_FAILURES = 20  # bars listed in a bar_rejected 422; the message says how many failed in all
_SPEC_HASH = spec_hash()


class Series:
    """One symbol's bars, ordered by ts, as float arrays (NaN where a value was null)."""

    def __init__(self, symbol: str, interval: str, candles: list[Any]) -> None:
        stamps = [_utc(c["ts"]) for c in candles]
        order = list(range(len(candles)))
        if any(a is None or b is None or b < a for a, b in zip(stamps, stamps[1:], strict=False)):
            order.sort(key=lambda i: (stamps[i] is None, stamps[i] or _EPOCH))
        self.symbol, self.interval = symbol, interval
        self.positions = order  # where each bar was in the request, for error messages
        self.ts: list[datetime | None] = [stamps[i] for i in order]
        # None becomes NaN in a float array: silver's missing_value then names it
        bars = [candles[i] for i in order]
        rows = [(b.get("open"), b.get("high"), b.get("low"), b.get("close"), b.get("volume")) for b in bars]
        matrix = np.array(rows, dtype=float).reshape(-1, 5)
        self.values = {c: np.ascontiguousarray(matrix[:, j]) for j, c in enumerate(OHLCV)}

    def __len__(self) -> int:
        return len(self.ts)


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(ts: datetime | None) -> int | None:
    if ts is None:
        return None
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def check(series: Series, now: datetime, max_candles: int) -> None:
    """Silver's rules and the length limits; raises the 422 a caller can act on."""
    n = len(series)
    if n > max_candles:
        raise ApiError(
            422,
            "too_many_bars",
            f"{n} bars sent; at most {max_candles} are accepted ({MIN_BARS} are enough for gold's features)",
            [{"sent": n, "max": max_candles}],
        )
    failures = candle_rules.series_failures(
        series.interval, [_micros(t) for t in series.ts], series.values, _micros(now) or 0
    )
    failed = [(i, rules) for i, rules in enumerate(failures) if rules]
    if failed:
        details = [
            {
                "bar": series.positions[i],
                "ts": None if series.ts[i] is None else series.ts[i].isoformat(),  # type: ignore[union-attr]
                "rule": rules[0],
                "failed_rules": rules,
                "meaning": candle_rules.RULE_TEXT[rules[0]],
            }
            for i, rules in failed[:SHOWN_FAILURES]
        ]
        first = details[0]
        raise ApiError(
            422,
            "bar_rejected",
            f"{len(failed)} of {n} bars break silver's rules; the first, candles[{first['bar']}] "
            f"(ts {first['ts']}): {first['rule']} ({first['meaning']})",
            details,
        )
    if n < MIN_BARS:
        raise ApiError(
            422,
            "too_few_bars",
            f"{n} bars sent; the features equal gold's only from {MIN_BARS} bars of the series on "
            f"(the slowest recursion, ema_50, must forget where the series starts); send the newest {MIN_BARS} or more",
            [{"sent": n, "needed": MIN_BARS}],
        )


def input_features(bundle: Bundle) -> list[str]:
    """The features the version's models read, in the spec's order."""
    wanted = {f for task in TASKS for f in bundle.manifest["models"][task]["input"]["features"]}
    return [f for f in FEATURE_NAMES if f in wanted]


def newest_features(ohlcv: list[np.ndarray], names: list[str], rows: int) -> dict[str, np.ndarray]:
    """`compute`'s features for the newest `rows` bars, as gold's incremental build gets them: the
    recursions run over every bar, then the features of the newest bars are computed from the
    stored state of the bar before them and the CONTEXT_BARS before that (`compute(context=,
    resume=)`, equal bit for bit to computing every bar: tests/test_feature_math.py). The rolling
    windows then cover ~60 bars instead of all that were sent: 3 ms less a request at 569 bars."""
    n = len(ohlcv[3])
    first = n - rows  # index of the first bar wanted; the bar before it carries the state
    if first < RESUME_FROM_BAR:
        return {k: v[first:] for k, v in compute(*ohlcv, only=names).items()}
    state = compute(*ohlcv, only=[c for c in RESUME_COLUMNS if c in FEATURE_NAMES])
    resume = {c: float(state[c][first - 1]) for c in RESUME_COLUMNS}
    context = min(CONTEXT_BARS, first)
    return compute(*(a[first - context :] for a in ohlcv), context=context, resume=resume, only=names)


def predict(
    bundle: Bundle, series: Series, include_features: bool
) -> tuple[Prediction, dict[str, float | None] | None]:
    """The served answer for the series' newest bar, and (on request) the features the models read."""
    if bundle.manifest.get("feature_spec_hash") != _SPEC_HASH:
        raise ApiError(
            503,
            "feature_spec_mismatch",
            f"model version {bundle.version} was trained on feature spec "
            f"{str(bundle.manifest.get('feature_spec_hash'))[:12]}, this API computes {_SPEC_HASH[:12]}; "
            "publish a version trained with this code's features (or deploy the API that matches it)",
        )
    names = input_features(bundle)
    rows = max([1] + [int(bundle.manifest["models"][t]["input"].get("window") or 1) for t in TASKS])
    cols = newest_features([series.values[c] for c in OHLCV], names, rows)
    matrix = np.column_stack([series.values[c][-rows:] for c in OHLCV] + [cols[f] for f in names])
    snap = {"columns": [*OHLCV, *names], "symbols": {series.symbol: {"values": matrix}}}
    outputs: dict[str, float | None] = {}
    for task, session in bundle.sessions.items():
        io_spec = bundle.manifest["models"][task]["input"]
        symbols, x = snapshot_inputs(snap, io_spec)
        outputs[task] = float(run_task(session, io_spec, x)[0]) if symbols else None
    newest = series.ts[-1]
    assert newest is not None  # checked: missing_value
    answer = prediction(bundle.manifest, series.symbol, newest.isoformat(), float(series.values["close"][-1]), outputs)
    features = {f: finite_or_none(float(cols[f][-1])) for f in names} if include_features else None
    return answer, features
