"""Glue job: gold/features_<interval> → walk-forward evaluated models in gold/model_registry."""

from __future__ import annotations

import argparse
import sys

from glue_jobs._entry import parser_for, run_job
from lakehouse.jobs import train_models
from lakehouse.ml.lstm import LSTMSettings
from lakehouse.ml.train import TrainSettings

JOB = train_models.JOB


def _settings(args: argparse.Namespace) -> TrainSettings:
    lstm = LSTMSettings(window=args.window, epochs=args.epochs, hidden=args.hidden, accelerator=args.accelerator)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) if args.models else ()
    return TrainSettings(
        args.interval,
        args.folds,
        args.test_bars,
        args.gap,
        args.train_seed,
        models,
        lstm,
        max_rows=args.train_max_rows,
        spark_workers=args.spark_workers,
    )


def main(argv: list[str] | None = None) -> int:
    parser = parser_for(
        JOB,
        "Train the direction classifiers, return regressors and the LSTM on gold features; evaluate walk-forward "
        "with a gap against naive baselines; append one row per model to gold/model_registry.",
    )
    d, ld = TrainSettings(), LSTMSettings()
    group = parser.add_argument_group("training")
    group.add_argument("--interval", default=d.interval, help="which gold/features_<interval> to train on")
    group.add_argument("--folds", type=int, default=d.folds, help="walk-forward folds; the last is the holdout")
    group.add_argument("--test-bars", "--test_bars", type=int, default=d.test_bars, help="timestamps per test block")
    group.add_argument("--gap", type=int, default=d.gap, help="timestamps between training and test (≥ 1, the horizon)")
    group.add_argument("--train-seed", "--train_seed", type=int, default=d.seed, help="seed of every model")
    group.add_argument("--models", default="", help="comma-separated subset, e.g. direction_logistic,return_lstm")
    group.add_argument(
        "--train-max-rows",
        "--train_max_rows",
        type=int,
        default=d.max_rows,
        help="rows the driver-side models (scikit-learn, LSTM) may hold, each symbol's newest first; "
        "xgboost_spark trains on every row",
    )
    group.add_argument(
        "--spark-workers",
        "--spark_workers",
        type=int,
        default=d.spark_workers,
        help="xgboost.spark workers (at most Spark's task slots; Glue auto-scaling must be off)",
    )
    group.add_argument(
        "--epochs", type=int, default=ld.epochs, help="LSTM maximum epochs (early stopping may end sooner)"
    )
    group.add_argument("--window", type=int, default=ld.window, help="LSTM input window in bars")
    group.add_argument("--hidden", type=int, default=ld.hidden, help="LSTM hidden units")
    group.add_argument(
        "--accelerator", default=ld.accelerator, help="Lightning accelerator: auto (GPU if present), cpu"
    )
    return run_job(train_models, parser, argv, options=lambda args: {"settings": _settings(args)})


if __name__ == "__main__":
    sys.exit(main())
