"""Effective configuration of a job: one lake root, the symbols, intervals and source.

Values come from (lowest to highest precedence) built-in defaults, `CANDLELAKE_*` environment
variables and command-line flags. Every job prints the effective configuration it runs with,
with where each value came from, because "which lake did that write to?" is the first question
anybody asks when a run surprises them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lakecontract.constants import INTERVALS

SUPPORTED_INTERVALS = INTERVALS
SOURCES = ("sample", "yfinance", "csv", "synthetic")
DEFAULT_SYMBOLS = ("^GSPC", "^IXIC", "MSFT")
SOURCES_WITH_OWN_SYMBOLS = ("csv", "synthetic")
"""Sources whose default is every symbol they hold, not DEFAULT_SYMBOLS (the sample's)."""
DEFAULT_LAKE_ROOT = "lake"
SYNTHETIC_CALENDARS = ("sessions", "24x5", "24x7")
"""When the synthetic source's bars fall (lakehouse/sources/synthetic.py); other sources' bars bring their own."""

ENV_PREFIX = "CANDLELAKE_"


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class LakeConfig:
    lake_root: str = DEFAULT_LAKE_ROOT
    source: str = "sample"
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    intervals: tuple[str, ...] = ("1d",)
    csv_path: str | None = None
    start: str | None = None
    end: str | None = None
    backfill: bool = False
    synthetic_symbols: int = 5
    synthetic_bars: int = 2_000
    seed: int = 42
    calendar: str = "sessions"
    s3_endpoint: str | None = None
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"unknown source {self.source!r}; choose one of {', '.join(SOURCES)}")
        bad = [i for i in self.intervals if i not in SUPPORTED_INTERVALS]
        if bad:
            raise ConfigError(f"unsupported interval(s) {bad}; supported: {', '.join(SUPPORTED_INTERVALS)}")
        if not self.intervals:
            raise ConfigError("at least one interval is required")
        if self.source == "csv" and not self.csv_path:
            raise ConfigError("--source csv needs --csv-path (or CANDLELAKE_CSV_PATH)")
        if self.synthetic_symbols < 1 or self.synthetic_bars < 1:
            raise ConfigError("--synthetic-symbols and --synthetic-bars must be positive")
        if self.calendar not in SYNTHETIC_CALENDARS:
            raise ConfigError(f"unknown --calendar {self.calendar!r}; choose one of {', '.join(SYNTHETIC_CALENDARS)}")
        if self.calendar != "sessions" and self.source != "synthetic":
            raise ConfigError(
                f"--calendar {self.calendar} shapes the synthetic source's bars; the {self.source} source's bars "
                "come with their own calendar, which training measures from their timestamps"
            )

    @property
    def resolved_root(self) -> str:
        """The lake root as a URI Spark understands: absolute local paths, s3/s3a kept as given."""
        return normalise_root(self.lake_root)

    def describe(self) -> str:
        """Human-readable effective config, one `key = value  (origin)` line each."""
        values = asdict(self)
        values.pop("origins")
        values["lake_root"] = self.resolved_root
        lines = ["effective configuration:"]
        for key, value in values.items():
            if isinstance(value, tuple):
                value = ",".join(value)
            lines.append(f"  {key:<18} = {value}  ({self.origins.get(key, 'default')})")
        return "\n".join(lines)


def normalise_root(root: str) -> str:
    root = root.strip()
    if not root:
        raise ConfigError("the lake root is empty")
    if "://" in root:
        scheme = root.split("://", 1)[0]
        if scheme not in ("s3", "s3a", "file"):
            raise ConfigError(f"unsupported lake root scheme {scheme!r}: use a local path, s3:// or s3a://")
        return root.rstrip("/")
    return str(Path(root).expanduser().resolve())


def _truth(value: str, name: str) -> bool:
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


# (field, flag, env suffix, parser of the string form, help)
_FIELDS: tuple[tuple[str, str, str, object, str], ...] = (
    (
        "lake_root",
        "--lake-root",
        "LAKE_ROOT",
        str,
        "lake root: a local folder, s3://bucket/prefix or s3a://…",
    ),
    ("source", "--source", "SOURCE", str, f"candle source: {', '.join(SOURCES)}"),
    ("symbols", "--symbols", "SYMBOLS", _split, "comma-separated symbols, e.g. ^GSPC,MSFT"),
    (
        "intervals",
        "--intervals",
        "INTERVALS",
        _split,
        f"comma-separated intervals ({', '.join(SUPPORTED_INTERVALS)})",
    ),
    ("csv_path", "--csv-path", "CSV_PATH", str, "path of the CSV file for --source csv"),
    ("start", "--start", "START", str, "first date to fetch (YYYY-MM-DD, inclusive)"),
    ("end", "--end", "END", str, "last date to fetch (YYYY-MM-DD, exclusive)"),
    ("synthetic_symbols", "--synthetic-symbols", "SYNTHETIC_SYMBOLS", int, "number of SYN symbols"),
    ("synthetic_bars", "--synthetic-bars", "SYNTHETIC_BARS", int, "bars per synthetic symbol"),
    ("seed", "--seed", "SEED", int, "random seed of the synthetic source"),
    (
        "calendar",
        "--calendar",
        "CALENDAR",
        str,
        f"synthetic source's calendar: {', '.join(SYNTHETIC_CALENDARS)} (weekday sessions 14:30–21:00 UTC; "
        "weekdays round the clock; every day round the clock, as crypto)",
    ),
    ("s3_endpoint", "--s3-endpoint", "S3_ENDPOINT", str, "S3 endpoint URL for s3a:// roots off AWS"),
)


def add_config_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the shared lake flags; their defaults stay None so we can tell flag from env from default."""
    group = parser.add_argument_group("lake configuration (flags override CANDLELAKE_* environment variables)")
    for name, flag, env, _, help_text in _FIELDS:
        # Glue job parameters are conventionally snake_case (--lake_root): accept both spellings.
        group.add_argument(
            flag,
            flag.replace("-", "_").replace("__", "--"),
            dest=name,
            default=None,
            help=f"{help_text} [env {ENV_PREFIX}{env}]",
        )
    group.add_argument(
        "--backfill",
        nargs="?",
        const="true",
        default=None,
        metavar="BOOL",
        help="ignore the per-symbol watermark and fetch the whole history; a bare flag means true, "
        f"`--backfill false` (how a state machine passes it) means false [env {ENV_PREFIX}BACKFILL=1]",
    )
    return parser


def config_from(args: argparse.Namespace | None = None, environ: dict[str, str] | None = None) -> LakeConfig:
    """Build the effective config from parsed flags and the environment."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, object] = {}
    origins: dict[str, str] = {}
    for name, flag, env, parse, _ in _FIELDS:
        raw = getattr(args, name, None) if args is not None else None
        origin = f"flag {flag}"
        if raw == "":  # Glue passes every argument a state machine lists: an empty one means unset
            raw = None
        if raw is None and environ.get(f"{ENV_PREFIX}{env}"):
            raw, origin = environ[f"{ENV_PREFIX}{env}"], f"env {ENV_PREFIX}{env}"
        if raw is None:
            continue
        try:
            values[name] = parse(raw)  # type: ignore[operator]
        except ValueError as exc:
            raise ConfigError(f"{flag}: cannot parse {raw!r}: {exc}") from None
        origins[name] = origin
    backfill_flag = getattr(args, "backfill", None) if args is not None else None
    if backfill_flag not in (None, ""):
        values["backfill"], origins["backfill"] = _truth(backfill_flag, "--backfill"), "flag --backfill"
    elif environ.get(f"{ENV_PREFIX}BACKFILL"):
        values["backfill"] = _truth(environ[f"{ENV_PREFIX}BACKFILL"], f"{ENV_PREFIX}BACKFILL")
        origins["backfill"] = f"env {ENV_PREFIX}BACKFILL"
    if values.get("source") in SOURCES_WITH_OWN_SYMBOLS and "symbols" not in values:
        # The default symbols are the sample's; a user's CSV or the synthetic SYN0001… universe
        # does not hold them, so without --symbols these sources ingest every symbol they have
        # (an empty request). Asking the CSV for ^GSPC,^IXIC,MSFT would silently ingest nothing.
        values["symbols"] = ()
    return LakeConfig(**values, origins=origins)  # type: ignore[arg-type]
