"""The two questions several routes ask of the served version: is this its interval, is this symbol in it."""

from __future__ import annotations

from serving.api_error import ApiError
from serving.artifacts import Bundle


def check_interval(bundle: Bundle, interval: str | None) -> None:
    """No interval asked for means the version's own; another one is a 404, not an empty answer."""
    if interval and interval != bundle.interval:
        raise ApiError(
            404, "unknown_interval", f"model version {bundle.version} serves interval {bundle.interval}, not {interval}"
        )


def unknown_symbol(bundle: Bundle, symbol: str) -> ApiError:
    """The 404 for a symbol the version does not serve, naming the ones it does."""
    served = ", ".join(bundle.symbols)
    return ApiError(404, "unknown_symbol", f"unknown symbol {symbol!r}; model version {bundle.version} serves {served}")
