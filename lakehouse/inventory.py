"""What is in the lake: each registered table's path, Delta version and row count."""

from __future__ import annotations

import argparse
import sys

from pyspark.sql import SparkSession

from lakehouse import delta_io
from lakehouse.config import add_config_arguments, config_from
from lakehouse.tables import Table, every_table


def inventory(spark: SparkSession, root: str) -> list[dict[str, str | int | None]]:
    """Each table's version and row count (from the Delta log: no data is scanned). The tables are asked
    four at a time: each answer is a few small Spark jobs that mostly wait, ~1 s a table one by one."""
    from concurrent.futures import ThreadPoolExecutor

    def one(tbl: Table) -> dict[str, str | int | None]:
        present = delta_io.exists(spark, tbl, root)
        return {
            "table": tbl.name,
            "path": tbl.path(root),
            "version": delta_io.version(spark, tbl, root) if present else None,
            "rows": delta_io.read(spark, tbl, root).count() if present else None,
        }

    tables = every_table()
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="inventory") as pool:
        return list(pool.map(one, tables))


def format_inventory(root: str, rows: list[dict[str, str | int | None]]) -> str:
    lines = [f"lake root: {root}", f"  {'table':<28} {'version':>7} {'rows':>10}  path"]
    for r in rows:
        version = "-" if r["version"] is None else f"v{r['version']}"
        count = "absent" if r["rows"] is None else f"{r['rows']:,}"
        lines.append(f"  {r['table']:<28} {version:>7} {count:>10}  {r['path']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from lakehouse.spark import session_for

    parser = add_config_arguments(argparse.ArgumentParser(prog="python -m lakehouse.inventory", description=__doc__))
    cfg = config_from(parser.parse_known_args(argv)[0])
    spark = session_for(cfg.s3_endpoint, "inventory")
    print(format_inventory(cfg.resolved_root, inventory(spark, cfg.resolved_root)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
