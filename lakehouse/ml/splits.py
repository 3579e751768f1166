"""Walk-forward (expanding) splits on time, with a gap, pooled across symbols.

Fold k tests on a block of `test_bars` consecutive timestamps and trains on every row at least
`gap` timestamps before that block. The label of a row at t is about t+1 (horizon 1), so a gap
≥ 1 is the least that keeps a training label from peeking into the test block; we default to
5 so that slowly-moving features shared across the boundary do not make the first test bars easy.
The last fold is the holdout: its test block is the most recent data, and it is the number a
model is promoted on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Fold:
    number: int
    train: np.ndarray  # row positions
    test: np.ndarray
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp

    def describe(self) -> str:
        return (
            f"fold {self.number}: train {len(self.train):,} rows ≤ {self.train_end:%Y-%m-%d}, "
            f"test {len(self.test):,} rows {self.test_start:%Y-%m-%d}…{self.test_end:%Y-%m-%d}"
        )


def walk_forward(ts: pd.Series, n_folds: int, test_bars: int, gap: int, horizon: int = 1) -> list[Fold]:
    """Expanding-window folds over the distinct timestamps in `ts` (rows sorted or not)."""
    if gap < horizon:
        raise ValueError(f"gap ({gap}) must be at least the label horizon ({horizon})")
    if n_folds < 1 or test_bars < 1:
        raise ValueError("need at least one fold of at least one bar")
    times = np.sort(ts.unique())
    needed = n_folds * test_bars + gap + 2 * test_bars
    if len(times) < needed:
        raise ValueError(
            f"{len(times)} distinct timestamps are too few for {n_folds} fold(s) of {test_bars} bars with gap {gap} "
            f"(need ≥ {needed}); lower --folds/--test-bars or load more history"
        )
    values = ts.to_numpy()
    folds = []
    for k in range(n_folds):
        start = len(times) - (n_folds - k) * test_bars
        test_times = times[start : start + test_bars]
        train_end = times[start - gap - 1]
        train = np.flatnonzero(values <= train_end)
        test = np.flatnonzero((values >= test_times[0]) & (values <= test_times[-1]))
        folds.append(
            Fold(k + 1, train, test, pd.Timestamp(train_end), pd.Timestamp(test_times[0]), pd.Timestamp(test_times[-1]))
        )
    return folds


def validation_split(ts: pd.Series, fraction: float, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a training fold into (fit, validation) by time: the validation block is the fold's
    newest `fraction` of timestamps, `gap` timestamps after the fit rows. It is used for early
    stopping and never overlaps the fold's test block, which lies after the whole training fold."""
    times = np.sort(ts.unique())
    n_val = max(1, int(len(times) * fraction))
    val_start = times[len(times) - n_val]
    fit_end = times[max(0, len(times) - n_val - gap - 1)]
    values = ts.to_numpy()
    return np.flatnonzero(values <= fit_end), np.flatnonzero(values >= val_start)
