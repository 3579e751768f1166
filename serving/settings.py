"""The API's configuration, from environment variables (a Lambda's only configuration channel)."""

from __future__ import annotations

import os
from dataclasses import dataclass


class SettingsError(ValueError):
    """An environment variable has a value the API cannot use; the message names it."""


def _float(environ: dict[str, str], name: str, default: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must be ≥ 0")
    return value


@dataclass(frozen=True)
class Settings:
    # Local folder or s3://bucket/prefix: the same lake root the pipeline writes.
    lake_root: str = "lake"
    s3_endpoint: str | None = None
    # How often (seconds) a request may look at gold/models/latest for a new version; 0 = every request.
    reload_seconds: float = 30.0
    cors_origins: tuple[str, ...] = ()
    # Set on AWS: POST /pipeline/runs calls StartExecution on it. Unset: the local runner in a
    # background process (development only; a Lambda has no Spark).
    state_machine_arn: str | None = None
    # On AWS, who may start a run (POST /pipeline/runs): IAM ARNs of signed callers, `*` and `?` as in
    # fnmatch (an assumed role's sessions: arn:aws:sts::<account>:assumed-role/<role>/*). None: no one.
    operator_arns: tuple[str, ...] = ()
    log_level: str = "INFO"
    # Non-latest versions asked for with `model` stay loaded, newest used first, up to this many.
    cached_versions: int = 4
    # Limits that keep a Lambda's memory and time safe: any request body (413 above it), and the bars
    # one POST /predict/candles may send (422 above it). 5,000 bars of JSON are ≈ 0.6 MB.
    max_body_bytes: int = 1_048_576
    max_candles: int = 5_000

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        origins = tuple(o.strip() for o in env.get("CANDLELAKE_CORS_ORIGINS", "").split(",") if o.strip())
        return cls(
            lake_root=(env.get("CANDLELAKE_LAKE_ROOT") or "lake").rstrip("/"),
            s3_endpoint=env.get("CANDLELAKE_S3_ENDPOINT") or None,
            reload_seconds=_float(env, "CANDLELAKE_RELOAD_SECONDS", 30.0),
            cors_origins=origins,
            state_machine_arn=env.get("CANDLELAKE_STATE_MACHINE_ARN") or None,
            operator_arns=tuple(a.strip() for a in env.get("CANDLELAKE_OPERATOR_ARNS", "").split(",") if a.strip()),
            log_level=(env.get("CANDLELAKE_LOG_LEVEL") or "INFO").upper(),
            cached_versions=int(_float(env, "CANDLELAKE_CACHED_VERSIONS", 4)),
            max_body_bytes=int(_float(env, "CANDLELAKE_MAX_BODY_BYTES", 1_048_576)),
            max_candles=int(_float(env, "CANDLELAKE_MAX_CANDLES", 5_000)),
        )
