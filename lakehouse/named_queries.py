"""The Athena named queries of lakecontract/athena_queries, runnable locally against a lake with Spark SQL.

Each `<name>.sql` file holds one query in the SQL subset that Athena (Trino, engine v3) and
Spark SQL 3.5 share, over unqualified gold table names: on AWS they resolve in the Glue database
the named query runs in; here `run` registers each table the query uses as a temp view of the
same name over the lake's Delta table. So the query text that CDK deploys is the text tested here.

    python -m lakehouse.named_queries --list
    python -m lakehouse.named_queries latest_prediction_per_symbol [--lake-root lake] [--limit 20]
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING

from lakecontract.athena_queries import description, names, read
from lakehouse.tables import GOLD_DQ_RESULTS, GOLD_MODEL_REGISTRY, GOLD_PREDICTIONS, Table, gold_features

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def view_name(tbl: Table) -> str:
    """A lake table's Glue/Athena name, also its local temp-view name: gold/predictions → gold_predictions."""
    return tbl.name.replace("/", "_")


TABLES: dict[str, Table] = {
    view_name(t): t for t in (GOLD_PREDICTIONS, GOLD_DQ_RESULTS, gold_features("1d"), GOLD_MODEL_REGISTRY)
}


class MissingTable(RuntimeError):
    """A table the query reads does not exist in the lake yet."""


def tables_used(sql: str) -> list[str]:
    """The view names of TABLES that the query text mentions (as whole words, comments ignored)."""
    code = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [v for v in TABLES if re.search(rf"\b{re.escape(v)}\b", code, flags=re.IGNORECASE)]


def register_views(spark: SparkSession, root: str, views: list[str], *, query: str = "") -> None:
    """Register each of `views` as a temp view over its Delta table; raise MissingTable if one is absent."""
    from lakehouse import delta_io

    for view in views:
        tbl = TABLES[view]
        if not delta_io.exists(spark, tbl, root):
            who = f"named query {query!r} reads" if query else "needs"
            raise MissingTable(
                f"{who} table {tbl.name} ({view}), which does not exist at {tbl.path(root)}; "
                "run `make run` first to build the lake"
            )
        delta_io.read(spark, tbl, root).createOrReplaceTempView(view)


def run(spark: SparkSession, root: str, name: str) -> DataFrame:
    """Run the named query against the lake at `root` and return its (lazy) result."""
    sql = read(name)
    register_views(spark, root, tables_used(sql), query=name)
    return spark.sql(sql)


def format_list() -> str:
    width = max((len(n) for n in names()), default=0)
    return "\n".join(f"{n:<{width}}  {description(n)}" for n in names())


def main(argv: list[str] | None = None) -> int:
    from lakehouse.config import add_config_arguments, config_from

    parser = add_config_arguments(
        argparse.ArgumentParser(
            prog="python -m lakehouse.named_queries",
            description="Run an Athena named query of lakecontract/athena_queries locally with Spark SQL.",
        )
    )
    parser.add_argument("name", nargs="?", help="query name (file stem); see --list")
    parser.add_argument("--list", action="store_true", help="list the queries with what each answers")
    parser.add_argument("--limit", type=int, default=100, metavar="N", help="rows to print (default 100)")
    args = parser.parse_args(argv)

    if args.list:
        print(format_list())
        return 0
    if not args.name:
        print(f"a query name is required; available:\n{format_list()}", file=sys.stderr)
        return 2
    if args.name not in names():
        print(f"unknown named query {args.name!r}; available:\n{format_list()}", file=sys.stderr)
        return 2

    from lakehouse.spark import session_for

    cfg = config_from(args)
    spark = session_for(cfg.s3_endpoint, f"named-query-{args.name}")
    try:
        df = run(spark, cfg.resolved_root, args.name)
    except MissingTable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"-- {args.name}: {description(args.name)}")
    print(f"-- lake root: {cfg.resolved_root}")
    rows = df.cache()
    total = rows.count()
    rows.show(max(args.limit, 0), truncate=False)
    shown = min(total, max(args.limit, 0))
    print(f"{total} row(s)" + (f" ({shown} shown; raise --limit to see more)" if shown < total else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
