"""Athena over the gold layer: the Glue database, the gold Delta tables, a workgroup, named queries.

Athena (engine v3) reads Delta tables natively from the Glue catalog when a table is registered
with `table_type = DELTA` and its location, and no column list: the schema comes from the Delta
log, so it follows the pipeline's schema changes without a crawler. Read-only, no time travel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.settings import InfraSettings
from lakecontract.athena_queries import QUERY_DIR
from lakecontract.constants import INTERVALS

# Athena name → lake path (lakehouse/tables.py; a test checks they agree).
GOLD_TABLES = {
    **{f"gold_features_{interval}": f"gold/features_{interval}" for interval in INTERVALS},
    "gold_dq_results": "gold/dq_results",
    "gold_model_registry": "gold/model_registry",
    "gold_predictions": "gold/predictions",
    "gold_pipeline_failures": "gold/pipeline_failures",
}


def query_description(path: Path) -> str:
    """The first comment line of a .sql file."""
    for line in path.read_text().splitlines():
        if line.startswith("--") and line.strip("- "):
            return line.strip("- ").strip()[:1024]
    return path.stem


class AnalyticsStack(Stack):
    """The Glue database with every gold table, the analysts' Athena workgroup and its named queries."""

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        settings: InfraSettings,
        lake: s3.IBucket,
        artifacts: s3.IBucket,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, cid, **kwargs)
        self.database_name = settings.prefix.replace("-", "_")
        database = self._database()
        self.tables = {
            name: self._delta_table(name, f"s3://{lake.bucket_name}/{settings.lake_prefix}/{path}/", database)
            for name, path in GOLD_TABLES.items()
        }
        self.workgroup = self._workgroup(settings, artifacts)
        self.named_queries = {
            query_file.stem: self._named_query(query_file, database) for query_file in sorted(QUERY_DIR.glob("*.sql"))
        }

    def _database(self) -> glue.CfnDatabase:
        return glue.CfnDatabase(
            self,
            "Database",
            catalog_id=self.account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name, description="candlelake gold layer (Delta tables, read by Athena)"
            ),
        )

    def _delta_table(self, name: str, location: str, database: glue.CfnDatabase) -> glue.CfnTable:
        """A gold table as Athena reads Delta: table_type DELTA, its location and no column list
        (the schema comes from the Delta log, so it never drifts from the table)."""
        table = glue.CfnTable(
            self,
            f"Table-{name}",
            catalog_id=self.account,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                table_type="EXTERNAL_TABLE",
                parameters={"table_type": "DELTA", "EXTERNAL": "TRUE", "classification": "delta"},
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(location=location),
            ),
        )
        table.node.add_dependency(database)
        return table

    def _workgroup(self, settings: InfraSettings, artifacts: s3.IBucket) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=settings.prefix,
            description="candlelake analysts: engine v3, results in the artifacts bucket, scan cap per query",
            state="ENABLED",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=settings.athena_bytes_scanned_limit,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{artifacts.bucket_name}/athena-results/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_S3"
                    ),
                ),
            ),
        )

    def _named_query(self, query_file: Path, database: glue.CfnDatabase) -> athena.CfnNamedQuery:
        query = athena.CfnNamedQuery(
            self,
            f"Query-{query_file.stem}",
            name=query_file.stem,
            description=query_description(query_file),
            database=self.database_name,
            work_group=self.workgroup.name,
            query_string=query_file.read_text().strip().rstrip(";"),
        )
        query.node.add_dependency(self.workgroup, database)
        return query
