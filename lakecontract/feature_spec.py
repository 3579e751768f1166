"""The feature specification: every gold feature's name, family, formula, window and warm-up.

One list read by everything that needs to know the features: the Spark code that computes
them (`lakehouse.features` looks each expression up by name and fails if one is missing or
extra), the feature table of docs/features.md (`make docs`), and the
model manifest (`spec_hash()`). Spark-free, so the serving Lambda can import it.

Conventions (those that matter when checking against TA-Lib):
- every window looks backward only and includes the current bar;
- a feature is null until its window is full (no partial windows); `warmup` is the number of
  bars before its first non-null value; the row flag `is_warm` is true once every feature has
  had `WARM_BARS` bars, enough for the recursive ones to agree with other libraries;
- RSI and ATR are Wilder-smoothed (recursive), RSI is 100 when the average loss is 0, and 50
  (neutral; TA-Lib gives 0) when the average gain is 0 as well, i.e. after a perfectly flat start;
- EMA is seeded with the simple mean of its first n values (TA-Lib's convention);
- Bollinger bands use the population standard deviation.
- where a ratio's denominator is a dispersion that can be exactly 0 (a flat window, common in
  old penny-rounded prices), the feature takes its neutral value instead of null: CORR 0,
  robust z 0, volume z 0, %B 0.5. So a warm row has no null feature.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ALPHA_WINDOWS = (5, 10, 20, 30, 60)
MA_WINDOWS = (5, 10, 20, 50)
# Recursive indicators agree across libraries to ~1e-6 only after 100–150 bars (DESIGN.md).
WARM_BARS = 150


@dataclass(frozen=True)
class Feature:
    name: str
    family: str
    formula: str
    window: int
    warmup: int
    recursive: bool = False


def _f(
    name: str, family: str, formula: str, window: int, warmup: int | None = None, recursive: bool = False
) -> Feature:
    return Feature(name, family, formula, window, window - 1 if warmup is None else warmup, recursive)


def _build() -> tuple[Feature, ...]:
    return (*_classic(), *_alpha158())


def _classic() -> list[Feature]:
    """Returns, moving averages, volatility, oscillators, Bollinger bands, volume, candle, robust."""
    fs: list[Feature] = []
    for n in (1, 5, 10):
        fs.append(_f(f"ret_{n}", "returns", f"close / close[t-{n}] - 1", n + 1))
    fs.append(_f("log_ret_1", "returns", "ln(close / close[t-1])", 2))
    for lag in (1, 2, 3, 5):
        fs.append(_f(f"ret_1_lag_{lag}", "returns", f"ret_1[t-{lag}]", lag + 2))
    for n in MA_WINDOWS:
        fs.append(_f(f"sma_{n}", "moving average", f"mean(close, {n})", n))
        fs.append(
            _f(
                f"ema_{n}",
                "moving average",
                f"EMA(close, {n}), alpha = 2/({n}+1), seeded with sma_{n}",
                n,
                recursive=True,
            )
        )
        fs.append(_f(f"dist_sma_{n}", "moving average", f"close / sma_{n} - 1", n))
    for n in (5, 10, 20):
        fs.append(_f(f"volatility_{n}", "volatility", f"stddev_samp(log_ret_1, {n})", n + 1))
    fs.append(
        _f(
            "rsi_14",
            "oscillator",
            "Wilder RSI: 100 - 100/(1 + avg_gain/avg_loss), 100 if avg_loss = 0",
            15,
            14,
            recursive=True,
        )
    )
    fs.append(_f("macd", "oscillator", "ema(close, 12) - ema(close, 26)", 26, 25, recursive=True))
    fs.append(_f("macd_signal", "oscillator", "EMA(macd, 9) seeded with mean of first 9 macd", 34, 33, recursive=True))
    fs.append(_f("macd_hist", "oscillator", "macd - macd_signal", 34, 33, recursive=True))
    fs.append(_f("bb_mid_20", "bollinger", "mean(close, 20)", 20))
    fs.append(_f("bb_upper_20", "bollinger", "bb_mid_20 + 2 * stddev_pop(close, 20)", 20))
    fs.append(_f("bb_lower_20", "bollinger", "bb_mid_20 - 2 * stddev_pop(close, 20)", 20))
    fs.append(_f("bb_pctb_20", "bollinger", "(close - bb_lower_20) / (bb_upper_20 - bb_lower_20); 0.5 if flat", 20))
    fs.append(_f("bb_width_20", "bollinger", "(bb_upper_20 - bb_lower_20) / bb_mid_20", 20))
    fs.append(
        _f(
            "atr_14",
            "volatility",
            "Wilder ATR(14) of true range, seeded with mean of first 14 TR",
            15,
            14,
            recursive=True,
        )
    )
    fs.append(_f("atr_pct_14", "volatility", "atr_14 / close", 15, 14, recursive=True))
    fs.append(_f("vol_sma_20", "volume", "mean(volume, 20)", 20))
    fs.append(_f("vol_z_20", "volume", "(volume - mean(volume, 20)) / stddev_samp(volume, 20); 0 if flat", 20))
    fs.append(_f("body", "candle", "(close - open) / open", 1))
    fs.append(_f("upper_wick", "candle", "(high - max(open, close)) / open", 1))
    fs.append(_f("lower_wick", "candle", "(min(open, close) - low) / open", 1))
    fs.append(_f("iqr_20", "robust", "q75(ret_1, 20) - q25(ret_1, 20)", 21))
    fs.append(_f("robust_z_20", "robust", "(ret_1 - median(ret_1, 20)) / iqr_20; 0 if iqr_20 = 0", 21))
    return fs


def _alpha158() -> list[Feature]:
    """qlib Alpha158: kbar shapes and rolling families (price ratios to today's close)."""
    fs: list[Feature] = []
    fs.append(_f("KMID", "alpha158 kbar", "(close - open) / open", 1))
    fs.append(_f("KLEN", "alpha158 kbar", "(high - low) / open", 1))
    fs.append(_f("KMID2", "alpha158 kbar", "(close - open) / (high - low + 1e-12)", 1))
    fs.append(_f("KUP", "alpha158 kbar", "(high - max(open, close)) / open", 1))
    fs.append(_f("KUP2", "alpha158 kbar", "(high - max(open, close)) / (high - low + 1e-12)", 1))
    fs.append(_f("KLOW", "alpha158 kbar", "(min(open, close) - low) / open", 1))
    fs.append(_f("KLOW2", "alpha158 kbar", "(min(open, close) - low) / (high - low + 1e-12)", 1))
    fs.append(_f("KSFT", "alpha158 kbar", "(2 * close - high - low) / open", 1))
    fs.append(_f("KSFT2", "alpha158 kbar", "(2 * close - high - low) / (high - low + 1e-12)", 1))
    for d in ALPHA_WINDOWS:
        fs += [
            _f(f"ROC{d}", "alpha158 ROC", f"close[t-{d}] / close", d + 1),
            _f(f"MA{d}", "alpha158 MA", f"mean(close, {d}) / close", d),
            _f(f"STD{d}", "alpha158 STD", f"stddev_pop(close, {d}) / close", d),
            _f(f"MAX{d}", "alpha158 MAX", f"max(high, {d}) / close", d),
            _f(f"MIN{d}", "alpha158 MIN", f"min(low, {d}) / close", d),
            _f(f"QTLU{d}", "alpha158 QTLU", f"quantile(close, 0.8, {d}) / close (linear interpolation)", d),
            _f(f"QTLD{d}", "alpha158 QTLD", f"quantile(close, 0.2, {d}) / close (linear interpolation)", d),
            _f(f"RSV{d}", "alpha158 RSV", f"(close - min(low, {d})) / (max(high, {d}) - min(low, {d}) + 1e-12)", d),
            _f(f"CORR{d}", "alpha158 CORR", f"corr(close, ln(volume + 1), {d}); 0 if either is flat", d),
            _f(f"CNTP{d}", "alpha158 CNTP", f"mean(close > close[t-1], {d})", d + 1),
            _f(f"CNTN{d}", "alpha158 CNTN", f"mean(close < close[t-1], {d})", d + 1),
            _f(f"SUMP{d}", "alpha158 SUMP", f"sum(max(Δclose, 0), {d}) / (sum(|Δclose|, {d}) + 1e-12)", d + 1),
            _f(f"SUMN{d}", "alpha158 SUMN", f"sum(max(-Δclose, 0), {d}) / (sum(|Δclose|, {d}) + 1e-12)", d + 1),
        ]
    return fs


FEATURES: tuple[Feature, ...] = _build()
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
RECURSIVE_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.recursive)
# The longest backward window any feature needs (bars including the current one).
MAX_WINDOW = max(f.window for f in FEATURES)

# Not features: the recursions' state after each bar (EMA 12/26 of MACD, Wilder average gain and
# loss of RSI), stored on every gold row so an incremental build resumes exactly where it stopped.
STATE_COLUMNS: tuple[str, ...] = ("state_ema_12", "state_ema_26", "state_rsi_avg_gain", "state_rsi_avg_loss")

# Labels: about the NEXT bar; null on each symbol's last bar, never filled.
LABELS = {
    "label_up": "1 if close[t+1] > close[t], else 0 (a flat next bar counts as not up); null on the last bar",
    "label_ret_1": "close[t+1] / close[t] - 1; null on the last bar",
}


def spec_hash() -> str:
    """sha256 of the spec (features and labels): a model records it to prove which features it saw."""
    payload = json.dumps({"features": [asdict(f) for f in FEATURES], "labels": LABELS}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def markdown_table() -> str:
    """The features and labels as a Markdown table (docs/features.md).

    A "|" in a formula (`sum(|Δclose|, 5)`) is escaped: GitHub splits table cells at every unescaped pipe,
    which shifted the SUMP/SUMN rows into the window and warm-up columns.
    """

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| feature | family | formula | window | warm-up bars |", "|---|---|---|---|---|"]
    rows += [f"| `{f.name}` | {f.family} | {cell(f.formula)} | {f.window} | {f.warmup} |" for f in FEATURES]
    rows += [f"| `{name}` | label | {cell(text)} | – | – |" for name, text in LABELS.items()]
    return "\n".join(rows)


FEATURES_PAGE = "docs/features.md"
TABLE_BEGIN = "<!-- feature-table:begin (generated by `make docs` from lakecontract/feature_spec.py) -->"
TABLE_END = "<!-- feature-table:end -->"


def page_with_table(page: str) -> str:
    """The page's text with the block between the feature-table markers replaced by `markdown_table()`.

    Only the marked block is generated, so the prose around it stays hand-written and untouched. A page
    without both markers, in this order, is refused: appending a table or writing a fresh page would hide
    that the page someone reads is not the one being kept up to date.
    """
    head, sep, rest = page.partition(TABLE_BEGIN)
    _, sep2, tail = rest.partition(TABLE_END)
    if not sep or not sep2:
        raise ValueError(f"the page lacks the markers {TABLE_BEGIN!r} … {TABLE_END!r} (in this order)")
    return f"{head}{TABLE_BEGIN}\n{markdown_table()}\n{TABLE_END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """`make docs` rewrites the table in docs/features.md; without options, print the spec's size and hash."""
    parser = argparse.ArgumentParser(
        prog="python -m lakecontract.feature_spec", description="The gold feature specification and its Markdown table."
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--markdown", action="store_true", help="print the feature table (Markdown)")
    action.add_argument(
        "--update-docs",
        metavar="PAGE",
        type=Path,
        help=f"rewrite the feature table between the markers of PAGE (`make docs`: {FEATURES_PAGE})",
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table())
    elif args.update_docs is not None:
        page: Path = args.update_docs
        try:
            old = page.read_text(encoding="utf-8")
            new = page_with_table(old)
        except (OSError, ValueError) as exc:
            print(f"{page}: {exc}", file=sys.stderr)
            return 1
        if new != old:
            page.write_text(new, encoding="utf-8")
        state = "updated" if new != old else "already up to date"
        print(f"{page}: feature table {state} ({len(FEATURES)} features, {len(LABELS)} labels)")
    else:
        print(f"{len(FEATURES)} features, spec {spec_hash()[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
