"""A plain numpy reference for every gold feature and label, the oracle of tests/test_features.py.

Written from the definitions in `lakecontract.feature_spec` (formulas and module docstring) and
qlib's Alpha158 conventions, NOT from `lakehouse.features`: one bar at a time, one explicit
window slice at a time, slow and obvious. It imports nothing from the code under test.

Conventions it implements (the spec's):
- windows look backward and include the current bar; a value is NaN until its window is full
  of defined inputs (no partial windows), so the NaN positions are an independent check too;
- population (ddof 0) or sample (ddof 1) standard deviation as each formula says;
- a window whose values are all equal has dispersion exactly 0 (numpy's two-pass std can return
  ~1e-15 there; the exact value is 0 and the spec's neutral values hinge on it): CORR 0, robust
  z 0, volume z 0, %B 0.5 on such windows;
- quantiles are linearly interpolated (numpy's default method);
- EMA is seeded with the simple mean of its first n values, alpha 2/(n+1); Wilder smoothing
  (RSI, ATR) is the same with alpha 1/n; RSI is 100 when the average loss is 0, and 50 (neutral)
  when the average gain is 0 as well (a perfectly flat window);
- the Alpha158 `+ 1e-12` guards are part of the formulas.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

EPS = 1e-12
ALPHA_WINDOWS = (5, 10, 20, 30, 60)
MA_WINDOWS = (5, 10, 20, 50)
NAN = float("nan")


def _shift(x: np.ndarray, k: int) -> np.ndarray:
    """x[t-k], NaN where t-k < 0."""
    out = np.full(len(x), NAN)
    out[k:] = x[: len(x) - k]
    return out


def _rolling(x: np.ndarray, n: int, fn: Callable[[np.ndarray], float]) -> np.ndarray:
    """fn over x[t-n+1 .. t] for every t whose window is complete and has no NaN."""
    out = np.full(len(x), NAN)
    for t in range(n - 1, len(x)):
        window = x[t - n + 1 : t + 1]
        if not np.isnan(window).any():
            out[t] = fn(window)
    return out


def _rolling2(x: np.ndarray, y: np.ndarray, n: int, fn: Callable[[np.ndarray, np.ndarray], float]) -> np.ndarray:
    out = np.full(len(x), NAN)
    for t in range(n - 1, len(x)):
        wx, wy = x[t - n + 1 : t + 1], y[t - n + 1 : t + 1]
        if not (np.isnan(wx).any() or np.isnan(wy).any()):
            out[t] = fn(wx, wy)
    return out


def _flat(w: np.ndarray) -> bool:
    return bool(w.max() == w.min())


def std_pop(w: np.ndarray) -> float:
    return 0.0 if _flat(w) else float(np.std(w, ddof=0))


def std_samp(w: np.ndarray) -> float:
    return 0.0 if _flat(w) else float(np.std(w, ddof=1))


def corr_or_zero(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; 0 when either side is flat (the spec's neutral value)."""
    if _flat(a) or _flat(b):
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def seeded_ema(x: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """EMA over the defined values of x (a leading NaN run is skipped), seeded with the mean of
    the first n of them; value[t] = value[t-1] + alpha * (x[t] - value[t-1])."""
    out = np.full(len(x), NAN)
    defined = [t for t in range(len(x)) if not np.isnan(x[t])]
    if len(defined) < n:
        return out
    first = defined[0]
    seed_at = first + n - 1
    value = sum(x[first : seed_at + 1]) / n
    out[seed_at] = value
    for t in range(seed_at + 1, len(x)):
        value = value + alpha * (x[t] - value)
        out[t] = value
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    return seeded_ema(x, n, 2.0 / (n + 1))


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    delta = close - _shift(close, 1)
    gains = np.where(np.isnan(delta), NAN, np.where(delta > 0, delta, 0.0))
    losses = np.where(np.isnan(delta), NAN, np.where(delta < 0, -delta, 0.0))
    avg_gain, avg_loss = seeded_ema(gains, n, 1.0 / n), seeded_ema(losses, n, 1.0 / n)
    out = np.full(len(close), NAN)
    for t in range(len(close)):
        g, lo = avg_gain[t], avg_loss[t]
        if np.isnan(g):
            continue
        if lo == 0:
            out[t] = 50.0 if g == 0 else 100.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + g / lo)
    return out


def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int = 14) -> np.ndarray:
    prev = _shift(close, 1)
    true_range = np.full(len(close), NAN)
    for t in range(1, len(close)):
        true_range[t] = max(high[t] - low[t], abs(high[t] - prev[t]), abs(low[t] - prev[t]))
    return seeded_ema(true_range, n, 1.0 / n)


def _one_symbol(bars: pd.DataFrame) -> dict[str, np.ndarray]:
    o, h, lo, c, v = (bars[k].to_numpy(dtype=float) for k in ("open", "high", "low", "close", "volume"))
    f: dict[str, np.ndarray] = {}
    prev = _shift(c, 1)
    ret_1 = c / prev - 1
    log_ret = np.log(c / prev)
    delta = c - prev
    for n in (1, 5, 10):
        f[f"ret_{n}"] = c / _shift(c, n) - 1
    f["log_ret_1"] = log_ret
    for lag in (1, 2, 3, 5):
        f[f"ret_1_lag_{lag}"] = _shift(ret_1, lag)
    for n in MA_WINDOWS:
        sma = _rolling(c, n, np.mean)
        f[f"sma_{n}"] = sma
        f[f"ema_{n}"] = ema(c, n)
        f[f"dist_sma_{n}"] = c / sma - 1
    for n in (5, 10, 20):
        f[f"volatility_{n}"] = _rolling(log_ret, n, std_samp)
    f["rsi_14"] = rsi(c, 14)
    macd = ema(c, 12) - ema(c, 26)
    signal = ema(macd, 9)
    f.update(macd=macd, macd_signal=signal, macd_hist=macd - signal)
    mid, sd = _rolling(c, 20, np.mean), _rolling(c, 20, std_pop)
    upper, lower = mid + 2 * sd, mid - 2 * sd
    with np.errstate(divide="ignore", invalid="ignore"):
        pctb = np.where(sd == 0, 0.5, (c - lower) / (upper - lower))
    f.update(
        bb_mid_20=mid,
        bb_upper_20=upper,
        bb_lower_20=lower,
        bb_pctb_20=np.where(np.isnan(sd), NAN, pctb),
        bb_width_20=(upper - lower) / mid,
    )
    a = atr(h, lo, c, 14)
    f.update(atr_14=a, atr_pct_14=a / c)
    vmean, vsd = _rolling(v, 20, np.mean), _rolling(v, 20, std_samp)
    with np.errstate(divide="ignore", invalid="ignore"):
        vz = np.where(vsd == 0, 0.0, (v - vmean) / vsd)
    f.update(vol_sma_20=vmean, vol_z_20=np.where(np.isnan(vsd), NAN, vz))
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    f.update(body=(c - o) / o, upper_wick=(h - top) / o, lower_wick=(bottom - lo) / o)
    q25, q50, q75 = (_rolling(ret_1, 20, lambda w, q=q: float(np.quantile(w, q))) for q in (0.25, 0.5, 0.75))
    iqr = q75 - q25
    f["iqr_20"] = iqr
    with np.errstate(divide="ignore", invalid="ignore"):
        rz = np.where(iqr == 0, 0.0, (ret_1 - q50) / iqr)
    f["robust_z_20"] = np.where(np.isnan(iqr), NAN, rz)
    span = h - lo + EPS
    f.update(
        KMID=(c - o) / o,
        KLEN=(h - lo) / o,
        KMID2=(c - o) / span,
        KUP=(h - top) / o,
        KUP2=(h - top) / span,
        KLOW=(bottom - lo) / o,
        KLOW2=(bottom - lo) / span,
        KSFT=(2 * c - h - lo) / o,
        KSFT2=(2 * c - h - lo) / span,
    )
    log_volume = np.log(v + 1)
    up = np.where(np.isnan(delta), NAN, (delta > 0).astype(float))
    down = np.where(np.isnan(delta), NAN, (delta < 0).astype(float))
    gain = np.where(np.isnan(delta), NAN, np.maximum(delta, 0.0))
    loss = np.where(np.isnan(delta), NAN, np.maximum(-delta, 0.0))
    for d in ALPHA_WINDOWS:
        hi_d, lo_d = _rolling(h, d, np.max), _rolling(lo, d, np.min)
        abs_sum = _rolling(np.abs(delta), d, np.sum) + EPS
        f[f"ROC{d}"] = _shift(c, d) / c
        f[f"MA{d}"] = _rolling(c, d, np.mean) / c
        f[f"STD{d}"] = _rolling(c, d, std_pop) / c
        f[f"MAX{d}"] = hi_d / c
        f[f"MIN{d}"] = lo_d / c
        f[f"QTLU{d}"] = _rolling(c, d, lambda w: float(np.quantile(w, 0.8))) / c
        f[f"QTLD{d}"] = _rolling(c, d, lambda w: float(np.quantile(w, 0.2))) / c
        f[f"RSV{d}"] = (c - lo_d) / (hi_d - lo_d + EPS)
        f[f"CORR{d}"] = _rolling2(c, log_volume, d, corr_or_zero)
        f[f"CNTP{d}"] = _rolling(up, d, np.mean)
        f[f"CNTN{d}"] = _rolling(down, d, np.mean)
        f[f"SUMP{d}"] = _rolling(gain, d, np.sum) / abs_sum
        f[f"SUMN{d}"] = _rolling(loss, d, np.sum) / abs_sum
    next_close = np.append(c[1:], NAN)
    f["label_up"] = np.where(np.isnan(next_close), NAN, (next_close > c).astype(float))
    f["label_ret_1"] = next_close / c - 1
    return f


LABELS = ("label_up", "label_ret_1")


def reference_features(candles: pd.DataFrame) -> pd.DataFrame:
    """Candles (symbol, ts, open, high, low, close, volume; any row order) → one row per
    (symbol, ts), sorted by symbol then ts, with every reference feature and both labels."""
    frames = []
    for symbol, bars in candles.sort_values(["symbol", "ts"]).groupby("symbol", sort=True):
        bars = bars.reset_index(drop=True)
        columns = _one_symbol(bars)
        frames.append(pd.DataFrame({"symbol": symbol, "ts": bars["ts"], "close": bars["close"], **columns}))
    return pd.concat(frames, ignore_index=True)


def reference_feature_names() -> tuple[str, ...]:
    """The features this reference defines (labels excluded), from a tiny dry run."""
    probe = pd.DataFrame(
        {
            "symbol": "P",
            "ts": pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC"),
            "open": 1.0,
            "high": 1.0,
            "low": 1.0,
            "close": 1.0,
            "volume": 1.0,
        }
    )
    return tuple(c for c in reference_features(probe).columns if c not in ("symbol", "ts", "close", *LABELS))
