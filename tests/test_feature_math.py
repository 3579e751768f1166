"""The per-bar feature math, Spark-free: every feature against the plain reference on real and on
edge-case series, the O(n) rolling primitives against window-by-window numpy, their precision
where prefix sums would lose digits, and — as a property — that a build resumed from stored state
on a tail equals a full rebuild, bit for bit, for random split points, corrections and backfills."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakecontract import feature_math as fm
from lakecontract.feature_spec import FEATURE_NAMES
from tests.feature_frames import mixed_candles_frame, real_candles_frame
from tests.feature_reference import reference_feature_names, reference_features

RTOL, ATOL = 1e-9, 1e-11  # as tests/test_features.py: relative, with a floor for values crossing 0
OHLCV = ("open", "high", "low", "close", "volume")


def _ours(candles: pd.DataFrame) -> pd.DataFrame:
    frames = []
    for _, bars in candles.sort_values(["symbol", "ts"]).groupby("symbol", sort=True):
        frames.append(pd.DataFrame(fm.compute(*(bars[c].to_numpy(float) for c in OHLCV))))
    return pd.concat(frames, ignore_index=True)


def _mismatches(ours: pd.DataFrame, ref: pd.DataFrame) -> list[str]:
    failures = []
    for name in (*reference_feature_names(), "label_up", "label_ret_1"):
        got, want = ours[name].to_numpy(float), ref[name].to_numpy(float)
        if not np.array_equal(np.isnan(got), np.isnan(want)):
            failures.append(f"{name}: null positions differ")
            continue
        bad = ~np.isclose(got, want, rtol=RTOL, atol=ATOL) & ~np.isnan(want)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            failures.append(f"{name}: {bad.sum()} rows differ, e.g. row {i}: {got[i]!r} vs {want[i]!r}")
    return failures


@pytest.mark.parametrize(
    "frame", [mixed_candles_frame, lambda: real_candles_frame(("^GSPC", "^IXIC", "MSFT"))], ids=["edge-cases", "real"]
)
def test_every_feature_equals_the_plain_reference(frame):
    candles = frame()
    assert not _mismatches(_ours(candles), reference_features(candles))


def test_the_module_computes_exactly_the_spec():
    assert fm.produced_names() == set(FEATURE_NAMES)


@settings(max_examples=25, deadline=None)
@given(st.sets(st.sampled_from(FEATURE_NAMES), min_size=1, max_size=12))
def test_a_subset_is_the_same_numbers_as_the_full_computation(names):
    """`only=` computes each family's columns lazily, with shared parts cached: whatever the
    subset (and so the order the shared parts are first asked for), the numbers are the full build's."""
    bars = mixed_candles_frame().query("symbol == symbol.iloc[0]")
    series = [bars[c].to_numpy(float) for c in OHLCV]
    full, subset = fm.compute(*series), fm.compute(*series, only=names)
    assert set(subset) & set(FEATURE_NAMES) == names
    for name in names:
        np.testing.assert_array_equal(subset[name], full[name], err_msg=name)


# --- the O(n) primitives against one window at a time -----------------------------------------------


def _naive(x: np.ndarray, w: int, fn) -> np.ndarray:
    out = np.full(len(x), np.nan)
    for t in range(w - 1, len(x)):
        window = x[t - w + 1 : t + 1]
        out[t] = np.nan if np.isnan(window).any() else fn(window)
    return out


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 400),
    w=st.integers(1, 90),
    offset=st.integers(0, 500),
    seed=st.integers(0, 2**32 - 1),
    nans=st.lists(st.integers(0, 399), max_size=4),
)
def test_rolling_primitives_equal_a_window_by_window_computation(n, w, offset, seed, nans):
    rng = np.random.default_rng(seed)
    x = 50 + np.cumsum(rng.normal(0, 1, n))
    y = rng.lognormal(0, 1, n)
    x[[i for i in nans if i < n]] = np.nan
    checks = {
        "sum": (fm.rolling_sum(x, w, offset), _naive(x, w, np.sum)),
        "std_pop": (fm.rolling_std(x, w, 0, offset), _naive(x, w, np.std)),
        "max": (fm.rolling_max(x, w, offset), _naive(x, w, np.max)),
        "min": (fm.rolling_min(x, w, offset), _naive(x, w, np.min)),
        "q80": (fm.rolling_quantiles(x, w, (0.8,))[0], _naive(x, w, lambda a: np.quantile(a, 0.8))),
    }
    if w > 1:
        checks["std_samp"] = (fm.rolling_std(x, w, 1, offset), _naive(x, w, lambda a: np.std(a, ddof=1)))
        pairs = np.stack([x, y])
        corr = _naive(np.arange(n, dtype=float), w, lambda i: _corr(pairs[:, i.astype(int)]))
        corr[np.isnan(fm.rolling_sum(x, w))] = np.nan
        checks["corr"] = (fm.rolling_corr(x, y, w, offset), corr)
    for name, (got, want) in checks.items():
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-9, err_msg=name)


def _corr(pair: np.ndarray) -> float:
    a, b = pair
    if np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def test_dispersion_keeps_its_digits_where_prefix_sums_would_not():
    """A price near 10,000 moving by 1e-3: Σx² over 100,000 bars is ~1e13, so a prefix-sum
    difference keeps ~3 digits of a window variance of ~1e-6; a flat window must be exactly 0."""
    rng = np.random.default_rng(7)
    x = 10_000 + np.cumsum(rng.normal(0, 1e-3, 100_000))
    x[50_000:50_030] = x[50_000]
    got, want = fm.rolling_std(x, 20), _naive(x, 20, np.std)
    # numpy's two-pass std is itself off by ~1e-12 here (and not exactly 0 on the flat window)
    np.testing.assert_allclose(got[19:], want[19:], rtol=1e-7, atol=1e-11)
    assert (got[50_019:50_030] == 0).all()
    prefix = np.cumsum(np.insert(x * x, 0, 0.0))
    window_mean = fm.rolling_mean(x, 20)
    via_prefix = np.sqrt(np.maximum((prefix[20:] - prefix[:-20]) / 20 - window_mean[19:] ** 2, 0))
    assert not np.allclose(via_prefix, want[19:], rtol=1e-7), "the case no longer tells the methods apart"


# --- resuming from stored state equals a full rebuild ---------------------------------------------------


def _series(seed: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 30 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    close[n // 3 : n // 3 + 25] = close[n // 3]  # a flat stretch: exact zeros must survive resuming
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    return {
        "open": open_,
        "high": np.maximum(open_, close) * 1.004,
        "low": np.minimum(open_, close) * 0.996,
        "close": close,
        "volume": np.round(rng.lognormal(9, 1, n)),
    }


def _resumed(bars: dict[str, np.ndarray], gold: dict[str, np.ndarray], first_changed: int) -> dict[str, np.ndarray]:
    """What the job does: rewrite from the bar before the first changed one, resuming after the bar
    before that with the state stored on its (old) gold row and CONTEXT_BARS bars of silver."""
    state_at = first_changed - 2  # index of the bar whose gold row holds the state
    bar_no = state_at + 1
    context = min(fm.CONTEXT_BARS, bar_no)
    start = state_at + 1 - context
    resume = {c: float(gold[c][state_at]) for c in fm.RESUME_COLUMNS}
    return fm.compute(*(bars[c][start:] for c in OHLCV), context=context, resume=resume)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(fm.RESUME_FROM_BAR + 2, 700),
    data=st.data(),
)
def test_a_resumed_build_equals_a_full_rebuild_bit_for_bit(seed, n, data):
    bars = _series(seed, n)
    gold = fm.compute(*(bars[c] for c in OHLCV))
    kind = data.draw(st.sampled_from(["append", "correct", "backfill"]))
    changed = {k: v.copy() for k, v in bars.items()}
    if kind == "append":
        extra = _series(seed + 1, data.draw(st.integers(1, 30)))
        scale = bars["close"][-1] / extra["close"][0]
        changed = {k: np.concatenate([v, extra[k] * (1 if k == "volume" else scale)]) for k, v in bars.items()}
        first = n
    else:
        first = data.draw(st.integers(fm.RESUME_FROM_BAR + 1, n - 1))
        if kind == "correct":
            for k in ("open", "high", "low", "close"):
                changed[k][first] *= 1.01
        else:  # a missing bar arrives late: every later bar number shifts
            changed = {k: np.insert(v, first, v[first - 1]) for k, v in changed.items()}
    full = fm.compute(*(changed[c] for c in OHLCV))
    resumed = _resumed(changed, gold, first)
    for name, values in resumed.items():
        expected = full[name][first - 1 :]
        assert np.array_equal(values, expected, equal_nan=True), f"{kind} at {first}: {name} differs"


def test_a_resume_that_could_not_be_exact_is_refused():
    bars = _series(3, 200)
    gold = fm.compute(*(bars[c] for c in OHLCV))
    state = {c: float(gold[c][99]) for c in fm.RESUME_COLUMNS}
    with pytest.raises(ValueError, match="needs 60 context bars"):
        fm.compute(*(bars[c][50:] for c in OHLCV), context=50, resume=state)
    early = {c: float(gold[c][20]) for c in fm.RESUME_COLUMNS}
    with pytest.raises(ValueError, match="seeded by bar 50"):
        fm.compute(*(bars[c] for c in OHLCV), context=21, resume=early)
    with pytest.raises(ValueError, match="lacks"):
        fm.compute(*(bars[c][40:] for c in OHLCV), context=60, resume={"bar_no": 100.0})


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.just(float("nan")), max_size=80),
    st.floats(1e-3, 0.999),
    st.floats(-1e6, 1e6),
)
def test_the_recursion_without_scipy_gives_lfilters_doubles_bit_for_bit(xs, alpha, prev):
    """The API's Lambda has no scipy: its loop must be the gold job's lfilter, not close to it."""
    x = np.asarray(xs, dtype=float)
    assert fm.scipy_lfilter() is not None, "scipy is installed here: the gold path is lfilter"
    np.testing.assert_array_equal(fm.ema_loop(x, alpha, prev), fm._ema_run(x, alpha, prev))


def test_every_feature_without_scipy_equals_the_gold_path_bit_for_bit(monkeypatch):
    bars = real_candles_frame(("MSFT",)).tail(700)
    arrays = [bars[c].to_numpy(float) for c in OHLCV]
    gold = fm.compute(*arrays)
    monkeypatch.setattr(fm, "scipy_lfilter", lambda: None)
    lambda_side = fm.compute(*arrays)
    assert gold.keys() == lambda_side.keys()
    for name, values in gold.items():
        np.testing.assert_array_equal(lambda_side[name], values, err_msg=name)
