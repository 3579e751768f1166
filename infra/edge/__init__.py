"""The CloudFront front door of the API and its dashboard: who may reach it (by network) and the
viewer-request function that enforces it (allow_networks.js, rendered with the allowed networks)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from infra.settings import SettingsError

FUNCTION = Path(__file__).with_name("allow_networks.js")
PLACEHOLDER = "__ALLOWED_NETWORKS__"


def allowed_networks(text: str) -> list[tuple[int, int]]:
    """`-c dashboard_cidrs=203.0.113.0/24,198.51.100.7` as (network as an integer, prefix length);
    an IPv6 or malformed entry is refused by name (the distribution serves IPv4 only)."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                f"context dashboard_cidrs: {entry!r} is not an IPv4 network (e.g. 203.0.113.0/24)"
            ) from None
        if network.version != 4:
            raise SettingsError(f"context dashboard_cidrs: {entry!r} is IPv6; the dashboard's distribution serves IPv4")
        networks.append((int(network.network_address), network.prefixlen))
    return networks


def function_code(networks: list[tuple[int, int]]) -> str:
    """allow_networks.js with its allowlist filled in."""
    source = FUNCTION.read_text()
    if PLACEHOLDER not in source:
        raise ValueError(f"{FUNCTION} has no {PLACEHOLDER}")
    return source.replace(PLACEHOLDER, json.dumps([list(n) for n in networks]))
