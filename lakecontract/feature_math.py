"""The per-bar math of every gold feature, for one symbol's bars, in numpy: O(bars) whatever the window.

This is the one implementation: the gold job runs it per symbol inside one `applyInPandas`
(lakehouse/features.py), and the API's `POST /predict/candles` runs it on the bars a caller sends
(serving/candles.py), so the two cannot compute a feature differently. It imports neither Spark nor
pandas: numpy, and scipy's `lfilter` for the recursions where scipy is installed (Glue). The API's
Lambda has no room for scipy (143 MB of a 250 MB budget), so without it the recursions run as a
Python loop doing lfilter's arithmetic in lfilter's order: the same doubles, bit for bit
(tests/test_feature_math.py), ~0.1 ms per recursion over 500 bars.

Why numpy per symbol rather than Spark windows (measured, see DESIGN.md "Scale facts"): Spark 3.5
re-aggregates a sliding `ROWS BETWEEN n PRECEDING` frame at every row, O(rows × window), and the
gold job had dozens of them up to 60 bars; at 10 M rows the 115-feature job did not finish in
600 s. Every rolling statistic here costs a fixed number of vectorised passes per bar:

- sums (means, variances, covariances, counts) use the van Herk / Gil-Werman block split: blocks of
  `w` bars aligned to the ABSOLUTE bar number, a prefix sum inside each block and a suffix sum
  inside each block, and a window is (suffix of the previous block) + (prefix of its own block).
  No subtraction of running totals, so no cancellation of a long prefix sum; variances and
  covariances are summed over values centred on the first bar of the window's own block (a member
  of the window), so a flat window gives exactly 0 and a trending one loses a few ulps, not digits;
- rolling max/min use the same split with running max/min (exact);
- rolling quantiles partition each window (`np.partition`, O(window) per bar, in C);
- EMA, MACD and the Wilder RSI/ATR recursions run in `scipy.signal.lfilter` (C), or its loop.

Aligning blocks to the absolute bar number makes a build that resumes from stored state on a tail
of bars (`compute(..., context=, resume=)`) add the same numbers in the same order as a build from
the first bar, so an incremental gold build equals a full rebuild bit for bit, not just closely.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from functools import cache, partial
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lakecontract.feature_spec import (
    ALPHA_WINDOWS,
    FEATURE_NAMES,
    FEATURES,
    MA_WINDOWS,
    MAX_WINDOW,
    STATE_COLUMNS,
    WARM_BARS,
)

Array = np.ndarray
EPS = 1e-12
NAN = float("nan")

# The recursions' state after a bar is stored on its gold row (STATE_COLUMNS) so a later build
# can resume there; the EMAs of MA_WINDOWS, macd_signal and atr_14 are features and hold their own.
RESUME_COLUMNS = ("bar_no", *(f"ema_{n}" for n in MA_WINDOWS), "macd_signal", "atr_14", *STATE_COLUMNS)
# Bars of context a resumed build needs before its first computed bar: the longest look-back.
CONTEXT_BARS = MAX_WINDOW - 1
# Every recursion is seeded by this bar (ema_50 the last); resuming earlier would skip a seed.
RESUME_FROM_BAR = max(MA_WINDOWS)
LABEL_COLUMNS = ("label_up", "label_ret_1")
OUTPUT_COLUMNS = (*FEATURE_NAMES, *LABEL_COLUMNS, "bar_no", "is_warm", *STATE_COLUMNS)
_WINDOW_OF = {f.name: f.window for f in FEATURES}


# --- O(n) rolling primitives -------------------------------------------------------------------


def _blocks(x: Array, w: int, offset: int, fill: float) -> tuple[Array, int]:
    """x laid out in rows of `w` aligned so that absolute index `offset + i` sits at column
    (offset + i) % w; returns the 2-D blocks and the number of leading pad cells."""
    lead = offset % w
    nb = -(-(lead + len(x)) // w)
    buf = np.empty(nb * w)  # not np.full: its Python wrapper is most of the cost on short series
    buf[:lead] = fill
    buf[lead : lead + len(x)] = x
    buf[lead + len(x) :] = fill
    return buf.reshape(nb, w), lead


def _split_windows(prefix: Array, suffix: Array, w: int, offset: int, join: Callable[[Array, Array], Array]) -> Array:
    """Combine in-block prefix and suffix aggregates into trailing windows of `w` (NaN until full)."""
    n = len(prefix)
    out = np.empty(n)
    out[: w - 1] = NAN
    if n < w:
        return out
    ends = prefix[w - 1 :]
    out[w - 1 :] = join(suffix[: n - w + 1], ends)
    first_block_end = (w - 1 - (w - 1 + offset) % w) % w  # where a window is exactly one block
    out[w - 1 + first_block_end :: w] = ends[first_block_end::w]
    return out


def _window_sum(y_own: Array, y_next: Array, w: int, offset: int) -> Array:
    """Trailing sums of w values: `y_own` as seen from its own block (prefix part), `y_next` as
    seen from the next block (suffix part) — the same values unless centred per block."""
    pre, lead = _blocks(y_own, w, offset, 0.0)
    suf = pre if y_next is y_own else _blocks(y_next, w, offset, 0.0)[0]
    n = len(y_own)
    prefix = np.cumsum(pre, axis=1).ravel()[lead : lead + n]
    suffix = np.cumsum(suf[:, ::-1], axis=1)[:, ::-1].ravel()[lead : lead + n]
    return _split_windows(prefix, suffix, w, offset, np.add)


Memo = dict[tuple[Any, ...], Any]
"""Per build: what several features compute from the same series (keyed by the series' identity,
the window and the offset; each entry keeps its series alive, so that identity cannot be reused)."""


def _shared(memo: Memo | None, tag: str, x: Array, w: int, offset: int, make: Callable[[], Any]) -> Any:
    if memo is None:
        return make()
    key = (tag, id(x), w, offset)
    if key not in memo:
        memo[key] = (x, make())
    return memo[key][1]


def _clean(x: Array, memo: Memo | None = None) -> Array:
    """x with NaN as 0 (the sums skip NaN windows separately)."""
    return _shared(memo, "clean", x, 0, 0, lambda: np.where(np.isnan(x), 0.0, x))


def _invalid(x: Array, w: int, offset: int, memo: Memo | None = None) -> Array:
    """True where the trailing window of w holds a NaN (or is not full)."""
    return _shared(memo, "invalid", x, w, offset, lambda: _invalid_windows(x, w, offset))


def _invalid_windows(x: Array, w: int, offset: int) -> Array:
    """NaNs only at the start (a lag's, a difference's) are the common case and need no window sum."""
    n = len(x)
    nan_at = np.flatnonzero(np.isnan(x))
    if len(nan_at) == 0 or nan_at[-1] == len(nan_at) - 1:
        return np.arange(n) < len(nan_at) + w - 1
    bad = np.isnan(x).astype(float)
    count = _window_sum(bad, bad, w, offset)
    return np.isnan(count) | (count > 0)


def rolling_sum(x: Array, w: int, offset: int = 0, memo: Memo | None = None) -> Array:
    """Sum of the last w values (NaN until w values, or where one of them is NaN)."""
    clean = _clean(x, memo)
    out = _window_sum(clean, clean, w, offset)
    out[_invalid(x, w, offset, memo)] = NAN
    return out


def rolling_mean(x: Array, w: int, offset: int = 0, memo: Memo | None = None) -> Array:
    return rolling_sum(x, w, offset, memo) / w


def _block_centres(x: Array, w: int, offset: int, memo: Memo | None = None) -> tuple[Array, Array]:
    """Per value: the first value of its own block, and the first value of the next block (a
    window ending in block k is centred on block k's first value, a member of that window)."""
    return _shared(memo, "centres", x, w, offset, lambda: _centres(_clean(x, memo), w, offset))


def _centres(x0: Array, w: int, offset: int) -> tuple[Array, Array]:
    firsts, lead = _blocks(x0, w, offset, 0.0)
    starts = firsts[:, 0].copy()
    if lead:  # a partial first block: its windows are incomplete anyway; centre on x[0]
        starts[0] = firsts[0, lead]
    n = len(x0)
    own = np.repeat(starts, w)[lead : lead + n]
    following = np.repeat(np.append(starts[1:], 0.0), w)[lead : lead + n]
    return own, following


Column = Array | Callable[[], Array]
"""A family's column: an array, or a function that computes it (with what it shares with its
neighbours, cached) only when `compute` is asked for it: `only=` then costs what it names."""


def _centred_sums(x: Array, y: Array, w: int, offset: int, memo: Memo | None = None) -> tuple[Array, Array, Array]:
    """Window sums of centred x, y and x·y (x may be y): the pieces of a variance or covariance.
    `memo` (keyed by the arrays' identity) shares the sums between the features of one build: a
    covariance then takes x's and y's own sums from their variances' entries (the same arrays,
    NaN only where x's or y's window is invalid; Σxy is NaN where either is, so a correlation
    built from them is unchanged) and computes only Σxy."""
    if memo is not None:
        key = ("sums", id(x), id(y), w)
        if key not in memo:
            if y is x:
                memo[key] = _sums(x, x, w, offset, memo)
            else:
                sx = _centred_sums(x, x, w, offset, memo)[0]
                sy = _centred_sums(y, y, w, offset, memo)[0]
                memo[key] = (sx, sy, _centred_cross(x, y, w, offset, memo))
        return memo[key]
    return _sums(x, y, w, offset, None)


def _sums(x: Array, y: Array, w: int, offset: int, memo: Memo | None) -> tuple[Array, Array, Array]:
    x0, y0 = _clean(x, memo), _clean(y, memo)
    cx_own, cx_next = _block_centres(x, w, offset, memo)
    cy_own, cy_next = (cx_own, cx_next) if y is x else _block_centres(y, w, offset, memo)
    xo, xn, yo, yn = x0 - cx_own, x0 - cx_next, y0 - cy_own, y0 - cy_next
    sx = _window_sum(xo, xn, w, offset)
    sy = sx if y is x else _window_sum(yo, yn, w, offset)
    sxy = _window_sum(xo * yo, xn * yn, w, offset)
    bad = _invalid(x, w, offset, memo) | (_invalid(y, w, offset, memo) if y is not x else False)
    for part in (sx, sy, sxy):
        part[bad] = NAN
    return sx, sy, sxy


def _centred_cross(x: Array, y: Array, w: int, offset: int, memo: Memo | None) -> Array:
    """Σxy of `_centred_sums` alone (the same operations, so the same doubles)."""
    x0, y0 = _clean(x, memo), _clean(y, memo)
    cx_own, cx_next = _block_centres(x, w, offset, memo)
    cy_own, cy_next = _block_centres(y, w, offset, memo)
    sxy = _window_sum((x0 - cx_own) * (y0 - cy_own), (x0 - cx_next) * (y0 - cy_next), w, offset)
    sxy[_invalid(x, w, offset, memo) | _invalid(y, w, offset, memo)] = NAN
    return sxy


def _sum_of_squares(x: Array, w: int, offset: int, memo: Memo | None = None) -> Array:
    """Σ(x − mean)² over the window, from centred sums; never negative."""
    s1, _, s2 = _centred_sums(x, x, w, offset, memo)
    return np.maximum(s2 - s1 * s1 / w, 0.0)


def rolling_var(x: Array, w: int, ddof: int = 0, offset: int = 0, memo: Memo | None = None) -> Array:
    """Variance of the last w values; exactly 0 on a flat window."""
    return _sum_of_squares(x, w, offset, memo) / (w - ddof)


def rolling_std(x: Array, w: int, ddof: int = 0, offset: int = 0, memo: Memo | None = None) -> Array:
    return np.sqrt(rolling_var(x, w, ddof, offset, memo))


def rolling_corr(x: Array, y: Array, w: int, offset: int = 0, memo: Memo | None = None) -> Array:
    """Pearson correlation of the last w pairs; 0 where either side is flat (the spec's neutral)."""
    sx, sy, sxy = _centred_sums(x, y, w, offset, memo)
    vx, vy = _sum_of_squares(x, w, offset, memo), _sum_of_squares(y, w, offset, memo)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (sxy - sx * sy / w) / np.sqrt(vx * vy)
    return np.where((vx == 0) | (vy == 0), 0.0, corr)


def _rolling_extreme(x: Array, w: int, offset: int, accumulate: np.ufunc, fill: float) -> Array:
    blocks, lead = _blocks(x, w, offset, fill)
    n = len(x)
    prefix = accumulate.accumulate(blocks, axis=1).ravel()[lead : lead + n]
    suffix = accumulate.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()[lead : lead + n]
    return _split_windows(prefix, suffix, w, offset, accumulate)


def rolling_max(x: Array, w: int, offset: int = 0) -> Array:
    return _rolling_extreme(x, w, offset, np.maximum, -np.inf)


def rolling_min(x: Array, w: int, offset: int = 0) -> Array:
    return _rolling_extreme(x, w, offset, np.minimum, np.inf)


def rolling_quantiles(x: Array, w: int, qs: tuple[float, ...]) -> list[Array]:
    """Linearly interpolated quantiles of the last w values (numpy's default method), NaN until
    the window is full or where it holds a NaN. A window's value depends on its members only.
    Sorting each window (O(w log w), vectorised) measured 7× faster than `np.partition` at w = 60
    and 4–12× faster than pandas' skip-list rolling quantile for windows 5–60."""
    n = len(x)
    outs = [np.full(n, NAN) for _ in qs]
    if n < w:
        return outs
    ordered = np.sort(sliding_window_view(x, w), axis=1)
    invalid = _invalid(x, w, 0)[w - 1 :]
    for out, q in zip(outs, qs, strict=True):
        p = q * (w - 1)
        lo = int(np.floor(p))
        hi, frac = min(lo + 1, w - 1), p - lo
        a, b = ordered[:, lo], ordered[:, hi]
        value = a + (b - a) * frac
        value[invalid] = NAN
        out[w - 1 :] = value
    return outs


def lag(x: Array, k: int) -> Array:
    out = np.full(len(x), NAN)
    if k < len(x):
        out[k:] = x[: len(x) - k]
    return out


# --- recursions ----------------------------------------------------------------------------------


@cache
def scipy_lfilter() -> Callable[..., tuple[Array, Array]] | None:
    """scipy's lfilter where scipy is installed (Glue), else None (the API's Lambda). Imported on
    first use, not with the module: `import scipy.signal` costs 0.3–1.6 s, which an API cold start
    that never runs a recursion over a lake's worth of bars should not pay."""
    try:
        from scipy.signal import lfilter
    except ImportError:
        return None
    return lfilter


def _ema_run(x: Array, alpha: float, prev: float) -> Array:
    """y[t] = alpha·x[t] + (1 − alpha)·y[t−1] from y[−1] = prev, in C. A full build's run after
    its seed and a resumed build's run compute each step from the same two doubles, so they agree
    bit for bit."""
    lfilter = scipy_lfilter()
    if lfilter is None:
        return ema_loop(x, alpha, prev)
    y, _ = lfilter([alpha], [1.0, alpha - 1.0], x, zi=[(1.0 - alpha) * prev])
    return np.asarray(y, dtype=float)


def ema_loop(x: Array, alpha: float, prev: float) -> Array:
    """`_ema_run` without scipy: lfilter's transposed direct form II for b = [alpha],
    a = [1, alpha − 1], step by step as its C loop does it (coefficients divided by a[0] = 1, the
    state z = x·b[1] − y·a[1] with b[1] = 0), so each output is the same double. Python floats are
    the same IEEE doubles; only the speed differs (fine for a request's bars, not for a lake)."""
    alpha, prev = float(alpha), float(prev)  # Python floats: numpy scalars would be 2× slower here
    b0, a1 = alpha / 1.0, (alpha - 1.0) / 1.0
    z = (1.0 - alpha) * prev
    out = x.tolist()
    for i, xn in enumerate(out):
        yn = z + b0 * xn
        z = xn * 0.0 - yn * a1
        out[i] = yn
    return np.array(out, dtype=float)


def seeded_ema(x: Array, n: int, alpha: float | None = None, *, prev: float | None = None) -> Array:
    """EMA seeded with the mean of its first n valid values (TA-Lib's convention); Wilder smoothing
    is the same recursion with alpha = 1/n. With `prev` (the value after the bar before x[0]),
    the recursion resumes instead of seeding. Leading NaNs are skipped."""
    alpha = 2.0 / (n + 1) if alpha is None else alpha
    out = np.full(len(x), NAN)
    if prev is not None and not np.isnan(prev):
        out[:] = _ema_run(x, alpha, prev)
        return out
    valid = np.flatnonzero(~np.isnan(x))
    if len(valid) == 0 or len(x) - valid[0] < n:
        return out
    seed_at = valid[0] + n - 1
    out[seed_at] = x[valid[0] : seed_at + 1].mean()
    if seed_at + 1 < len(x):
        out[seed_at + 1 :] = _ema_run(x[seed_at + 1 :], alpha, out[seed_at])
    return out


# --- how many bars a series needs to match gold ----------------------------------------------------

SEED_WEIGHT = 1e-9
"""How much a series' first bars may still weigh in its newest recursive features (see below)."""


def _recursions() -> list[tuple[int, float]]:
    """(bar of the seed, alpha) of every recursion `_recursive` runs: the EMAs of MA_WINDOWS, MACD's
    EMA 12 and 26, its signal (seeded at bar 26 + 9 − 1), and Wilder's RSI averages and ATR (bar 15)."""
    emas = [(n, 2.0 / (n + 1)) for n in (*MA_WINDOWS, 12, 26)]
    return [*emas, (26 + 9 - 1, 2.0 / 10), (15, 1.0 / 14), (15, 1.0 / 14), (15, 1.0 / 14)]


def bars_to_match_gold(weight: float = SEED_WEIGHT) -> int:
    """The fewest bars a series needs so that its newest bar's features equal gold's for that bar.

    Rolling features look back at most MAX_WINDOW bars, so any series that long gets gold's values
    (to rounding). A recursion is seeded at a series' first bars: gold's at the symbol's first bar
    in the lake, a caller's at the first bar it sent. k steps after its seed, the seed weighs
    (1 − alpha)^k in the value, so the two agree to about that weight times the seeds' relative
    difference (a few per cent of the price). This is the length at which every recursion's seed
    weighs ≤ `weight`: for 1e-9, 569 bars, set by ema_50 (alpha 2/51); on the bundled real series
    the measured difference from gold there is ≤ 7.4e-12 relative (docs/api.md)."""
    steps = [seed + math.ceil(math.log(weight) / math.log(1.0 - alpha)) for seed, alpha in _recursions()]
    return max(MAX_WINDOW, *steps)


# --- the features ----------------------------------------------------------------------------------


class _Bars:
    """One symbol's bars (context first) with the shared helper series, computed once."""

    def __init__(self, o: Array, h: Array, lo: Array, c: Array, v: Array, offset: int) -> None:
        self.o, self.h, self.lo, self.c, self.v, self.offset = o, h, lo, c, v, offset
        self.prev = lag(c, 1)
        self.delta = c - self.prev
        with np.errstate(divide="ignore", invalid="ignore"):
            self.ret_1 = c / self.prev - 1
            self.log_ret = np.log(c / self.prev)
            self.log_volume = np.log(v + 1)

        self.memo: Memo = {}
        self._means: dict[tuple[int, int], Array] = {}

    def mean(self, x: Array, w: int) -> Array:
        key = (id(x), w)
        if key not in self._means:
            self._means[key] = rolling_mean(x, w, self.offset, self.memo)
        return self._means[key]

    def std(self, x: Array, w: int, ddof: int) -> Array:
        return rolling_std(x, w, ddof, self.offset, self.memo)


def _returns(b: _Bars) -> dict[str, Array]:
    cols = {f"ret_{n}": b.c / lag(b.c, n) - 1 for n in (1, 5, 10)}
    cols["log_ret_1"] = b.log_ret
    cols.update({f"ret_1_lag_{k}": lag(b.ret_1, k) for k in (1, 2, 3, 5)})
    return cols


def _averages(b: _Bars) -> dict[str, Column]:
    """Lazy (see `Column`): each column is computed only when asked for; shared parts are cached."""
    cols: dict[str, Column] = {}
    for n in MA_WINDOWS:
        cols[f"sma_{n}"] = partial(b.mean, b.c, n)
        cols[f"dist_sma_{n}"] = partial(_dist, b, n)
    cols.update({f"volatility_{n}": partial(b.std, b.log_ret, n, 1) for n in (5, 10, 20)})
    sd = cache(partial(b.std, b.c, 20, 0))

    def pctb() -> Array:
        mid = b.mean(b.c, 20)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sd() == 0, 0.5, (b.c - (mid - 2 * sd())) / (4 * sd()))

    def vol_z() -> Array:
        vol_mean, vol_sd = b.mean(b.v, 20), b.std(b.v, 20, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(vol_sd == 0, 0.0, (b.v - vol_mean) / vol_sd)

    cols.update(
        bb_mid_20=lambda: b.mean(b.c, 20),
        bb_upper_20=lambda: b.mean(b.c, 20) + 2 * sd(),
        bb_lower_20=lambda: b.mean(b.c, 20) - 2 * sd(),
        bb_pctb_20=pctb,
        bb_width_20=lambda: (4 * sd()) / b.mean(b.c, 20),
        vol_sma_20=lambda: b.mean(b.v, 20),
        vol_z_20=vol_z,
    )
    return cols


def _dist(b: _Bars, n: int) -> Array:
    return b.c / b.mean(b.c, n) - 1


def _candle_shapes(b: _Bars) -> dict[str, Array]:
    o, h, lo, c = b.o, b.h, b.lo, b.c
    top, bottom, hl = np.maximum(o, c), np.minimum(o, c), h - lo + EPS
    return {
        "body": (c - o) / o,
        "upper_wick": (h - top) / o,
        "lower_wick": (bottom - lo) / o,
        "KMID": (c - o) / o,
        "KLEN": (h - lo) / o,
        "KMID2": (c - o) / hl,
        "KUP": (h - top) / o,
        "KUP2": (h - top) / hl,
        "KLOW": (bottom - lo) / o,
        "KLOW2": (bottom - lo) / hl,
        "KSFT": (2 * c - h - lo) / o,
        "KSFT2": (2 * c - h - lo) / hl,
    }


def _alpha158(b: _Bars) -> dict[str, Column]:
    """Lazy, like `_averages`: the 65 columns are the costliest family (the quantiles, the
    correlations), and `compute(only=...)` should pay only for those it names."""
    up, down = (
        np.where(np.isnan(b.delta), NAN, (b.delta > 0) * 1.0),
        np.where(np.isnan(b.delta), NAN, (b.delta < 0) * 1.0),
    )
    gain, loss = np.maximum(b.delta, 0.0), np.maximum(-b.delta, 0.0)
    cols: dict[str, Column] = {}
    for d in ALPHA_WINDOWS:
        cols.update(_alpha158_window(b, d, up, down, gain, loss))
    return cols


def _alpha158_window(b: _Bars, d: int, up: Array, down: Array, gain: Array, loss: Array) -> dict[str, Column]:
    c, off = b.c, b.offset
    hi = cache(partial(rolling_max, b.h, d, off))
    lo = cache(partial(rolling_min, b.lo, d, off))
    abs_sum = cache(lambda: rolling_sum(np.abs(b.delta), d, off, b.memo) + EPS)
    qtl = cache(partial(rolling_quantiles, c, d, (0.8, 0.2)))
    return {
        f"ROC{d}": lambda: lag(c, d) / c,
        f"MA{d}": lambda: b.mean(c, d) / c,
        f"STD{d}": lambda: b.std(c, d, 0) / c,
        f"MAX{d}": lambda: hi() / c,
        f"MIN{d}": lambda: lo() / c,
        f"QTLU{d}": lambda: qtl()[0] / c,
        f"QTLD{d}": lambda: qtl()[1] / c,
        f"RSV{d}": lambda: (c - lo()) / (hi() - lo() + EPS),
        f"CORR{d}": lambda: rolling_corr(c, b.log_volume, d, off, b.memo),
        f"CNTP{d}": lambda: b.mean(up, d),
        f"CNTN{d}": lambda: b.mean(down, d),
        f"SUMP{d}": lambda: rolling_sum(gain, d, off, b.memo) / abs_sum(),
        f"SUMN{d}": lambda: rolling_sum(loss, d, off, b.memo) / abs_sum(),
    }


def _robust(b: _Bars) -> dict[str, Array]:
    q25, q50, q75 = rolling_quantiles(b.ret_1, 20, (0.25, 0.5, 0.75))
    iqr = q75 - q25
    with np.errstate(divide="ignore", invalid="ignore"):
        robust_z = np.where(iqr == 0, 0.0, (b.ret_1 - q50) / iqr)
    return {"iqr_20": iqr, "robust_z_20": robust_z}


def _recursive(b: _Bars, resume: Mapping[str, float] | None) -> dict[str, Array]:
    """EMA, MACD, Wilder RSI and ATR, seeded from the first bar or resumed from `resume`, which
    holds the values after the bar before the first computed one (see RESUME_COLUMNS)."""

    def prev(name: str) -> float | None:
        return None if resume is None else float(resume[name])

    c, k = b.c, 0 if resume is None else _context_of(b, resume)
    cols = {f"ema_{n}": _pad(k, seeded_ema(c[k:], n, prev=prev(f"ema_{n}"))) for n in MA_WINDOWS}
    ema_12 = _pad(k, seeded_ema(c[k:], 12, prev=prev("state_ema_12")))
    ema_26 = _pad(k, seeded_ema(c[k:], 26, prev=prev("state_ema_26")))
    macd = ema_12 - ema_26
    signal = _pad(k, seeded_ema(macd[k:], 9, prev=prev("macd_signal")))
    gains = np.where(np.isnan(b.delta), NAN, np.maximum(b.delta, 0.0))
    losses = np.where(np.isnan(b.delta), NAN, np.maximum(-b.delta, 0.0))
    avg_gain = _pad(k, seeded_ema(gains[k:], 14, 1.0 / 14, prev=prev("state_rsi_avg_gain")))
    avg_loss = _pad(k, seeded_ema(losses[k:], 14, 1.0 / 14, prev=prev("state_rsi_avg_loss")))
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    rsi = np.where((avg_loss == 0) & (avg_gain > 0), 100.0, rsi)  # no losses: RSI is 100
    rsi = np.where((avg_loss == 0) & (avg_gain == 0), 50.0, rsi)  # a perfectly flat window: neutral
    true_range = np.fmax(b.h - b.lo, np.fmax(np.abs(b.h - b.prev), np.abs(b.lo - b.prev)))
    if b.offset == 0:
        true_range[0] = NAN  # TA-Lib starts the true range at the second bar
    atr = _pad(k, seeded_ema(true_range[k:], 14, 1.0 / 14, prev=prev("atr_14")))
    cols.update(macd=macd, macd_signal=signal, macd_hist=macd - signal, rsi_14=rsi, atr_14=atr, atr_pct_14=atr / c)
    cols.update(state_ema_12=ema_12, state_ema_26=ema_26, state_rsi_avg_gain=avg_gain, state_rsi_avg_loss=avg_loss)
    return cols


def _pad(k: int, tail: Array) -> Array:
    return np.concatenate([np.full(k, NAN), tail]) if k else tail


def _context_of(b: _Bars, resume: Mapping[str, float]) -> int:
    return int(resume["bar_no"]) - b.offset


# Each family and the columns it produces, so a caller asking for a subset computes only that.
_FAMILIES: tuple[Callable[[_Bars], Mapping[str, Column]], ...] = (
    _returns,
    _averages,
    _candle_shapes,
    _alpha158,
    _robust,
)


def compute(
    open_: Array,
    high: Array,
    low: Array,
    close: Array,
    volume: Array,
    *,
    context: int = 0,
    resume: Mapping[str, float] | None = None,
    only: Collection[str] | None = None,
) -> dict[str, Array]:
    """One symbol's bars in time order → every output column for the bars after `context`.

    From the first bar: `context=0, resume=None`; bar_no runs 1..n. Resuming: the first `context`
    bars are the symbol's bars just before the first one to compute (at least CONTEXT_BARS of
    them, or all earlier bars), and `resume` holds RESUME_COLUMNS of the last context bar's gold
    row (its bar_no ≥ RESUME_FROM_BAR). `only` restricts the features computed (labels, bar_no and
    the state are always returned)."""
    arrays = [np.asarray(a, dtype=float) for a in (open_, high, low, close, volume)]
    offset = _check_resume(context, resume, len(arrays[3]))
    o, h, lo, c, v = arrays
    b = _Bars(o, h, lo, c, v, offset)
    cols: dict[str, Array] = {}
    wanted = set(FEATURE_NAMES) if only is None else set(only)
    for family in _FAMILIES:
        produced = family(b) if wanted & _family_names(family) else {}
        cols.update({name: col() if callable(col) else col for name, col in produced.items() if name in wanted})
    cols.update(_recursive(b, resume))
    bar_no = np.arange(1, len(b.c) + 1) + offset
    for name in wanted & set(FEATURE_NAMES):
        cols[name] = np.where(bar_no >= _WINDOW_OF[name], cols[name], NAN)
    next_close = np.append(b.c[1:], NAN)
    with np.errstate(invalid="ignore"):
        cols["label_up"] = np.where(np.isnan(next_close), NAN, (next_close > b.c) * 1.0)
    cols["label_ret_1"] = next_close / b.c - 1
    cols["bar_no"], cols["is_warm"] = bar_no.astype(float), (bar_no >= WARM_BARS) * 1.0
    names = [n for n in OUTPUT_COLUMNS if n in cols and (n in wanted or n not in FEATURE_NAMES)]
    return {name: cols[name][context:] for name in names}


def _check_resume(context: int, resume: Mapping[str, float] | None, n: int) -> int:
    """The absolute index of the first bar given; raises where a resume could not be exact."""
    if resume is None:
        if context:
            raise ValueError("context bars without a resume state: a build from the first bar has no context")
        return 0
    missing = [c for c in RESUME_COLUMNS if c not in resume]
    if missing:
        raise ValueError(f"resume state lacks {missing}")
    bar_no = int(resume["bar_no"])
    if bar_no < RESUME_FROM_BAR:
        raise ValueError(f"cannot resume after bar {bar_no}: the recursions are seeded by bar {RESUME_FROM_BAR}")
    if context != min(CONTEXT_BARS, bar_no) or context > n:
        raise ValueError(f"a resume after bar {bar_no} needs {min(CONTEXT_BARS, bar_no)} context bars, got {context}")
    return bar_no - context


_NAMES_CACHE: dict[Callable[[_Bars], Mapping[str, Column]], frozenset[str]] = {}


def _family_names(family: Callable[[_Bars], Mapping[str, Column]]) -> frozenset[str]:
    """The columns a family produces, found once by running it on a short probe series."""
    if family not in _NAMES_CACHE:
        probe = np.linspace(1.0, 2.0, 4)
        with np.errstate(all="ignore"):
            _NAMES_CACHE[family] = frozenset(family(_Bars(probe, probe, probe, probe, probe, 0)))
    return _NAMES_CACHE[family]


def produced_names() -> frozenset[str]:
    """Every feature this module computes; the spec check compares it with FEATURE_NAMES."""
    probe = np.linspace(1.0, 2.0, 4)
    with np.errstate(all="ignore"):
        recursive = set(_recursive(_Bars(probe, probe, probe, probe, probe, 0), None)) - set(STATE_COLUMNS)
    return frozenset().union(*(_family_names(f) for f in _FAMILIES), recursive)
