"""Measurement behind a design choice: one model pooled across symbols, or one per symbol?

    python -m tests.benchmarks.bench_pooling [--lake-root lake] [--out build/bench/pooling.json]

Run after `make run`. On the same walk-forward folds as training, each model family is fitted
(a) once on every symbol's training rows with the symbol-independent features, and (b) once
per symbol on that symbol's training rows only; both predict the same test rows, and both are
scored with the same metric code against the same baseline. Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from lakehouse.config import add_config_arguments, config_from
from lakehouse.ml import dataset
from lakehouse.ml.evaluate import KEY_METRIC, score
from lakehouse.ml.models import SKLEARN_MODELS
from lakehouse.ml.splits import walk_forward
from lakehouse.ml.train import TrainSettings
from lakehouse.spark import session_for


def main(argv: list[str] | None = None) -> int:
    parser = add_config_arguments(argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_pooling"))
    parser.add_argument("--out", default="build/bench/pooling.json")
    args = parser.parse_args(argv)
    cfg = config_from(args)
    settings = TrainSettings()
    data = dataset.load(session_for(cfg.s3_endpoint, "bench_pooling"), cfg.resolved_root, settings.interval)
    labeled = data.labeled
    folds = walk_forward(labeled["ts"], settings.folds, settings.test_bars, settings.gap)
    results = []
    for spec in SKLEARN_MODELS:
        key = KEY_METRIC[spec.task][0]
        row = {"model": spec.name, "metric": key, "pooled": [], "per_symbol": [], "baseline": []}
        started = time.monotonic()
        for fold in folds:
            train, test = labeled.iloc[fold.train], labeled.iloc[fold.test]
            pooled = spec.predict_rows(spec.fit(train, settings.seed, settings.gap), labeled, fold.test)
            separate = np.full(len(fold.test), np.nan)
            for symbol in test["symbol"].unique():
                own_train = train[train["symbol"] == symbol]
                where = (test["symbol"] == symbol).to_numpy()
                own_model = spec.fit(own_train, settings.seed, settings.gap)
                separate[where] = spec.predict_rows(own_model, labeled, fold.test[where])
            for name, pred in (("pooled", pooled), ("per_symbol", separate)):
                model_metrics, base = score(spec.task, train, test, pred, data.interval)
                row[name].append(model_metrics[key])
            row["baseline"].append(base[key])
        row["seconds"] = round(time.monotonic() - started, 1)
        results.append(row)
        print(
            f"{spec.name:<28} {key:<6} holdout pooled {row['pooled'][-1]:.5f} per-symbol {row['per_symbol'][-1]:.5f} "
            f"baseline {row['baseline'][-1]:.5f} | mean over folds pooled {np.mean(row['pooled']):.5f} "
            f"per-symbol {np.mean(row['per_symbol']):.5f} baseline {np.mean(row['baseline']):.5f}"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"table": data.table, "version": data.table_version, "results": results}, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
