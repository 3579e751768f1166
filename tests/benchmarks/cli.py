"""What the benchmarks' command lines and reports share."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def parse_known(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse, naming and ignoring arguments meant for another benchmark: `make bench` passes one
    BENCH_ARGS to every benchmark, and its default (--full-timeout) is bench_features'."""
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"ignoring arguments not meant for this benchmark: {' '.join(ignored)}", file=sys.stderr)
    return args


def write_report(out: Path, report: dict[str, Any]) -> None:
    """The figures as JSON (build/bench/<name>.json by default), beside the printed table."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
