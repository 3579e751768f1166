"""Names both sides of the lake use; one definition each, so they cannot drift apart."""

from __future__ import annotations

# Bar sizes the lake builds: silver's interval grid, gold's features_<interval> tables and the API's
# `interval` parameters all take these.
INTERVALS: tuple[str, ...] = ("1d", "1h", "5m")
INTERVAL_PATTERN = "^(" + "|".join(INTERVALS) + ")$"
INTERVAL_LIST_PATTERN = "^(" + "|".join(INTERVALS) + ")(,(" + "|".join(INTERVALS) + "))*$"

# The two prediction tasks every published version answers: P(next bar closes higher) and the
# next bar's log return.
DIRECTION, RETURN = "direction", "return"
TASKS: tuple[str, ...] = (DIRECTION, RETURN)

# Under the lake root: `<run id>.json` (status and states, written by the runner) and `<run id>.log`.
RUNS_DIR = "runs"
