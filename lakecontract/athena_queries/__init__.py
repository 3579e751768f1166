"""The Athena named queries: one `<name>.sql` file each, in the SQL subset Athena (Trino, engine v3)
and Spark SQL 3.5 share, over unqualified gold table names.

They live here, as package data beside no code of either reader, because two sides read the same
text: the CDK app deploys each as an Athena named query (infra/stacks/analytics.py) and the library
runs each locally on the lake with Spark SQL (lakehouse/named_queries.py); neither imports the other.
"""

from __future__ import annotations

import re
from pathlib import Path

QUERY_DIR = Path(__file__).resolve().parent


class UnknownQuery(KeyError):
    """No query file of that name; the message lists the available ones."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def names() -> list[str]:
    """The available query names (file stems), sorted."""
    return sorted(p.stem for p in QUERY_DIR.glob("*.sql"))


def path(name: str) -> Path:
    available = names()
    if name not in available:
        raise UnknownQuery(f"unknown named query {name!r}; available: {', '.join(available) or '(none)'}")
    return QUERY_DIR / f"{name}.sql"


def read(name: str) -> str:
    """The query text, without trailing whitespace or semicolons (spark.sql and Athena take one statement)."""
    return re.sub(r"[\s;]+$", "", path(name).read_text(encoding="utf-8"))


def description(name: str) -> str:
    """The first line of the query's leading `-- ` comment block."""
    for line in read(name).splitlines():
        if line.startswith("--"):
            return line.removeprefix("--").strip()
        if line.strip():
            break
    return ""
