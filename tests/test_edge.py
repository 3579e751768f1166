"""The dashboard's CloudFront access rule (infra/edge): the allowlist as the app reads it from context,
and the viewer-request function itself, run in Node (CloudFront Functions are JavaScript)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from infra import edge
from infra.settings import SettingsError


def _decisions(cidrs: str, ips: list[str]) -> list[object]:
    """What the rendered function answers each viewer IP: "pass" (the request goes on) or its status."""
    node = shutil.which("node")
    assert node, "Node.js is needed (make test's prerequisites)"
    script = edge.function_code(edge.allowed_networks(cidrs)) + (
        f"\nconst answers = {json.dumps(ips)}.map((ip) => {{"
        "\n  const request = { uri: '/dashboard/', method: 'GET', headers: {} };"
        "\n  const out = handler({ viewer: { ip }, request });"
        "\n  return out === request ? 'pass' : [out.statusCode, JSON.parse(out.body.data).error.code];"
        "\n});\nconsole.log(JSON.stringify(answers));"
    )
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [a if a == "pass" else tuple(a) for a in json.loads(done.stdout)]


def test_only_the_listed_networks_pass_and_everyone_else_gets_a_json_403():
    ips = ["203.0.113.9", "203.0.113.255", "203.0.114.1", "198.51.100.7", "198.51.100.8", "10.0.0.1"]
    denied = (403, "network_not_allowed")
    assert _decisions("203.0.113.0/24, 198.51.100.7", ips) == ["pass", "pass", denied, "pass", denied, denied]


def test_what_is_not_an_ipv4_address_is_refused():
    assert _decisions("0.0.0.0/0", ["2001:db8::1", "999.1.1.1", "1.2.3", "", "8.8.8.8"]) == [
        (403, "network_not_allowed")
    ] * 4 + ["pass"]


@pytest.mark.parametrize(
    ("cidrs", "message"),
    [("nope", "'nope' is not an IPv4 network"), ("203.0.113.0/24,2001:db8::/32", "'2001:db8::/32' is IPv6")],
)
def test_a_bad_network_in_context_is_refused_by_name(cidrs, message):
    with pytest.raises(SettingsError, match=message):
        edge.allowed_networks(cidrs)


def test_no_networks_means_no_distribution():
    assert edge.allowed_networks("") == [] and edge.allowed_networks(" , ") == []
