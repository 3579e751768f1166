"""cdk-nag suppressions written as plain data, turned into the struct cdk-nag reads.

A suppression passed as a bare dict reaches cdk-nag's metadata with its `id` and `reason` only: its
`applies_to` is dropped, and the rule is then waived for every finding on the resource. Building
`NagPackSuppression` (with `RegexAppliesTo` for a `{"regex": …}` entry) keeps the waiver to the
findings it names; tests/test_infra.py checks that every IAM5 waiver carries its `applies_to`.
"""

from __future__ import annotations

from typing import Any

from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo
from constructs import IConstruct


def _suppression(rule: dict[str, Any]) -> NagPackSuppression:
    applies_to = [
        RegexAppliesTo(regex=entry["regex"]) if isinstance(entry, dict) else entry
        for entry in rule.get("applies_to", [])
    ]
    return NagPackSuppression(id=rule["id"], reason=rule["reason"], applies_to=applies_to or None)


def suppress(construct: IConstruct, rules: list[dict[str, Any]], *, apply_to_children: bool = False) -> None:
    NagSuppressions.add_resource_suppressions(
        construct, [_suppression(rule) for rule in rules], apply_to_children=apply_to_children
    )
