"""Names both sides of the lake use; one definition each, so they cannot drift apart."""

from __future__ import annotations

# Bar sizes the lake builds: silver's interval grid, gold's features_<interval> tables and the API's
# `interval` parameters all take these.
INTERVALS: tuple[str, ...] = ("1d", "1h", "5m", "15m", "30m", "1wk")
BAR_SECONDS: dict[str, int] = {
    "5m": 300,
    "15m": 900,
    "30m": 1_800,
    "1h": 3_600,
    "1d": 86_400,
    "1wk": 604_800,
}
"""Each interval's length: a bar's span, the step of a synthetic series, how much calendar time
holds N bars. Its keys are INTERVALS (tests/test_candle_rules.py checks)."""
INTERVAL_PATTERN = "^(" + "|".join(INTERVALS) + ")$"
INTERVAL_LIST_PATTERN = "^(" + "|".join(INTERVALS) + ")(,(" + "|".join(INTERVALS) + "))*$"

# The two prediction tasks every published version answers: P(next bar closes higher) and the
# next bar's log return.
DIRECTION, RETURN = "direction", "return"
TASKS: tuple[str, ...] = (DIRECTION, RETURN)

# Under the lake root: `<run id>.json` (status and states, written by the runner) and `<run id>.log`.
RUNS_DIR = "runs"
