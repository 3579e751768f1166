"""Deployment settings, from CDK context (`cdk deploy -c key=value`, or `context` in tests).

Defaults make a small, cheap deployment: G.1X workers ×2, one daily run, 1 GB Athena scan cap.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


class SettingsError(ValueError):
    """A context key the app does not know, or a value of the wrong kind."""


@dataclass(frozen=True)
class InfraSettings:
    prefix: str = "candlelake"
    lake_prefix: str = "lake"  # the lake root is s3://<lake bucket>/<lake_prefix>
    symbols: str = "^GSPC,^IXIC,MSFT"
    glue_version: str = "5.1"
    worker_type: str = "G.1X"
    workers: int = 2
    train_worker_type: str = "G.2X"  # the LSTM and forests want memory more than workers
    train_workers: int = 2
    job_timeout_minutes: int = 60
    daily_schedule: str = "cron(30 22 ? * MON-FRI *)"  # after the US close, UTC
    intraday_schedule: str = "cron(5 14-21 ? * MON-FRI *)"  # hourly during US trading hours, UTC
    intraday_enabled: bool = True
    maintenance_schedule: str = "cron(0 6 ? * SUN *)"  # weekly, when no daily or intraday run is due, UTC
    maintenance_retention_hours: int = 168  # VACUUM's retention (the floor; time travel further back is lost)
    delta_log_store_jar: str = str(REPO / ".jars" / "delta-storage-s3-dynamodb-3.3.2.jar")  # `make setup` builds it
    athena_bytes_scanned_limit: int = 1_000_000_000  # per query: an accident costs cents, not dollars
    api_memory_mb: int = 1024
    # At most this many API instances at once: a flood of requests (or a loop in a client) costs at most
    # this much Lambda and cannot take the account's whole concurrency from other functions. 0: none
    # reserved (an account whose concurrency limit is still the new-account 10 cannot reserve any).
    api_reserved_concurrency: int = 10
    api_layer_path: str = str(REPO / "build" / "lambda" / "layer")  # `make lambda-layer` builds it
    glue_wheels_path: str = str(REPO / "build" / "glue")  # <kind>.gluewheels.zip: `make glue-wheels` builds them
    old_runs_days: int = 90  # run histories, reports, Athena results expire after this many days
    noncurrent_days: int = 30  # old object versions kept this long
    alarm_email: str = ""
    # Who may start pipeline runs through the API (comma-separated IAM ARN patterns, fnmatch `*`): the
    # API's other callers only read. Empty: nobody (runs start from the console or the schedules).
    operator_arns: str = ""
    # The dashboard through CloudFront (no request signing in a browser): comma-separated IPv4 networks
    # allowed to read the API and its page there (a CloudFront Function answers everyone else 403).
    # Empty: no distribution; the API stays behind the Function URL's IAM auth alone.
    dashboard_cidrs: str = ""

    @classmethod
    def from_context(cls, context: dict[str, Any] | None = None) -> InfraSettings:
        context = context or {}
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in context and context[f.name] is not None:
                raw = context[f.name]
                kind: type[Any] = type(f.default)
                if kind is bool:
                    values[f.name] = _boolean(f.name, raw)
                else:
                    try:
                        values[f.name] = kind(raw)
                    except ValueError:
                        raise SettingsError(f"context {f.name}={raw!r}: expected {kind.__name__}") from None
        unknown = set(context) - {f.name for f in fields(cls)}
        if unknown:
            raise SettingsError(f"unknown context key(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        return cls(**values)


def _boolean(name: str, raw: object) -> bool:
    """`-c intraday_enabled=false` arrives as a string; anything but a clear yes or no is refused, not read as no."""
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in ("1", "true", "yes"):
        return True
    if word in ("0", "false", "no"):
        return False
    raise SettingsError(f"context {name}={raw!r}: expected true or false")
