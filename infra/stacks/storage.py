"""The lake bucket and the artifacts bucket: private, encrypted, TLS-only, versioned, expiring old runs."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra import nag
from infra.settings import InfraSettings


def _bucket(scope: Construct, cid: str, **extra: Any) -> s3.Bucket:
    return s3.Bucket(
        scope,
        cid,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        versioned=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.RETAIN,  # the lake outlives a `cdk destroy`
        **extra,
    )


class StorageStack(Stack):
    def __init__(self, scope: Construct, cid: str, *, settings: InfraSettings, **kwargs: Any) -> None:
        super().__init__(scope, cid, **kwargs)
        keep, old = Duration.days(settings.old_runs_days), Duration.days(settings.noncurrent_days)
        # Athena results, Glue temp files and Spark UI logs, and the lake bucket's access logs.
        self.artifacts = _bucket(
            self,
            "Artifacts",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-working-files",
                    expiration=keep,
                    noncurrent_version_expiration=old,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
        )
        nag.suppress(
            self.artifacts,
            [
                {
                    "id": "AwsSolutions-S1",
                    "reason": "This bucket is the access-log destination of the lake bucket; "
                    "logging it into itself would log its own log writes.",
                }
            ],
        )
        self.lake = _bucket(
            self,
            "Lake",
            server_access_logs_bucket=self.artifacts,
            server_access_logs_prefix="access-logs/lake/",
            lifecycle_rules=[
                # Table data is never expired (Delta's VACUUM owns that); run records and reports are.
                s3.LifecycleRule(id="expire-old-runs", prefix=f"{settings.lake_prefix}/runs/", expiration=keep),
                s3.LifecycleRule(id="expire-old-reports", prefix=f"{settings.lake_prefix}/reports/", expiration=keep),
                s3.LifecycleRule(
                    id="noncurrent-versions",
                    noncurrent_version_expiration=old,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
        )
        # Object events reach EventBridge, where a CSV created under <lake>/raw/ starts the pipeline
        # (infra/stacks/pipeline.py, _raw_drops). Set on the CloudFormation bucket itself: the L2's
        # event_bridge_enabled deploys a custom-resource Lambda to do what this one property does.
        cfn_lake = self.lake.node.default_child
        assert isinstance(cfn_lake, s3.CfnBucket)
        cfn_lake.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
        self.lake_root = f"s3://{self.lake.bucket_name}/{settings.lake_prefix}"
