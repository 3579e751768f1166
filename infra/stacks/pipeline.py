"""Glue 5.1 jobs for every glue_jobs/ entry, the two state machines from step_functions/, schedules, alarms.

Retries belong to the state machine (its Retry/Catch), so every job has MaxRetries 0. The ASL
files are deployed as they are, with the job names and lake root substituted: the same files
the local runner executes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Size, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import aws_s3_deployment as s3_deployment
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import glue_wheels, lake_access, nag, packaging
from infra.log_store import (
    LOG_PARTITION_KEY,
    LOG_SORT_KEY,
    LOG_STORE_ACTIONS,
    LOG_TTL_ATTRIBUTE,
    log_store_conf,
)
from infra.settings import REPO, InfraSettings
from step_functions import definitions

DELTA_CONF = (
    "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension"
    " --conf spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog"
)
GLUE_ENCRYPTION_SUPPRESSIONS = [
    {
        "id": "AwsSolutions-GL1",
        "reason": "Glue job logs hold row counts and job messages, no market data or "
        "secrets; CloudWatch KMS encryption would need a customer key (cost, key policy) for no gain here. "
        "S3 output is encrypted (SSE-S3 security configuration and bucket default).",
    },
    {
        "id": "AwsSolutions-GL3",
        "reason": "The jobs use no Glue bookmarks: the state machine and Delta MERGE make "
        "reruns idempotent, so there is no bookmark data to encrypt.",
    },
]


def glue_role_suppressions(lake_prefix: str, module: str) -> list[dict[str, Any]]:
    """IAM5 for a job role, finding by finding (`applies_to`): object wildcards under the lake
    prefixes it reads and writes, the glue/ prefix of the artifacts bucket, the CDK asset objects
    CDK's grant_read names with s3:GetObject*/GetBucket*/List*, the /aws-glue/* log groups, and
    PutMetricData (no resource ARN; a condition limits it to the Glue namespace)."""

    def ending(bucket: str, key: str) -> dict[str, str]:  # the bucket is a token or a cross-stack import
        return {"regex": f"/^Resource::.*{bucket}.*{_js_regex(key)}$/g"}

    lake_keys = [f"{lake_prefix}/*", *(f"{lake_prefix}/{prefix}*" for prefix in lake_access.WRITES[module])]
    return [
        {
            "id": "AwsSolutions-IAM5",
            "reason": f"glue_jobs/{module}.py reads every object under the lake prefix and writes the objects of "
            "its own tables (many files per Delta table); the glue/ prefix of the artifacts bucket holds "
            "Glue's temp files and Spark event logs; the CDK asset objects hold its script and libraries "
            "(CDK's grant_read: s3:GetObject*, GetBucket*, List*); /aws-glue/* are Glue's own log groups; "
            "PutMetricData takes no resource ARN and is limited to the Glue namespace by a condition.",
            "applies_to": [
                *(ending("Lake", key) for key in lake_keys),
                ending("Artifacts", "/glue/*"),
                "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
                "Action::s3:GetObject*",
                "Action::s3:GetBucket*",
                "Action::s3:List*",
                "Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws-glue/*",
                "Resource::*",
            ],
        }
    ]


def _js_regex(text: str) -> str:
    """`text` matched literally inside a /…/ JavaScript regex (what cdk-nag's applies_to regex is)."""
    return "".join("\\" + c if c in "\\^$.|?*+()[]{}/" else c for c in text)


STATE_MACHINE_ROLE_SUPPRESSIONS = [
    {
        "id": "AwsSolutions-IAM5",
        "reason": "CloudWatch Logs delivery and X-Ray APIs take no resource "
        "ARN (AWS requires Resource '*' for logs:CreateLogDelivery & co. and xray:PutTraceSegments).",
        "applies_to": ["Resource::*"],
    }
]
# CDK's own BucketDeployment handler, which copies the wheel bundles into the artifacts bucket at deploy time.
BUCKET_DEPLOYMENT_SUPPRESSIONS: list[dict[str, Any]] = [
    {
        "id": "AwsSolutions-IAM4",
        "reason": "CDK's BucketDeployment handler logs with the AWS-managed basic execution role; it runs "
        "only during a deploy and touches no lake data.",
        "applies_to": ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
    },
    {
        "id": "AwsSolutions-IAM5",
        "reason": "CDK's BucketDeployment grants its handler read on the CDK asset bucket and read/write on "
        "the destination (the artifacts bucket, never the lake) with object wildcards; it copies the wheel "
        "bundles under glue/wheels/ at deploy time and prunes nothing.",
        "applies_to": [
            "Action::s3:Abort*",
            "Action::s3:DeleteObject*",
            "Action::s3:GetBucket*",
            "Action::s3:GetObject*",
            "Action::s3:List*",
            {"regex": "/^Resource::.*Artifacts.*\\/\\*$/g"},
            "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*",
        ],
    },
    {
        "id": "AwsSolutions-L1",
        "reason": "The BucketDeployment handler's runtime is chosen by the CDK version pinned in "
        "requirements.lock; it moves with a CDK upgrade, not with this app.",
    },
]
# The --extra-py-files zip: what glue_jobs/ import, followed through (glue_jobs → lakehouse → lakecontract; a
# test follows the imports). Not serving/: the batch side does not carry the API.
GLUE_LIBRARY = ("lakecontract", "lakehouse", "glue_jobs")
GLUE_LIBRARY_ZIP = REPO / "build" / "infra" / "candlelake-libs.zip"
# What a `.sync` Glue task needs, and nothing else (Step Functions developer guide, "Glue").
SYNC_ACTIONS = ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"]


class LogStoreJarMissing(FileNotFoundError):
    """The Delta log store jar has not been built (`make setup`)."""


class GlueWheelsNotBuilt(FileNotFoundError):
    """The Glue jobs' wheel bundles are missing: `make glue-wheels` builds them."""


class PipelineStack(Stack):
    """The Glue jobs, the two state machines that run them, their schedules and failure alarms.

    Each part is one helper below, called in the order the resources were always created: the
    construct ids (hence the logical ids) and the template are what they were when this was one
    218-line constructor.
    """

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        settings: InfraSettings,
        lake: s3.IBucket,
        artifacts: s3.IBucket,
        lake_root: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, cid, **kwargs)
        self.settings = settings
        libs = s3_assets.Asset(
            self,
            "GlueLibs",
            path=str(packaging.source_zip(GLUE_LIBRARY_ZIP, GLUE_LIBRARY)),
        )
        security = self._glue_security_configuration()
        wheels = self._glue_wheels(artifacts)
        self.delta_log = self._delta_log_table()
        log_store_jar = self._log_store_jar()
        # The jobs' continuous logs go to a group of our own with a retention, not Glue's shared
        # /aws-glue/jobs/logs-v2 (created by Glue on first use, kept forever).
        job_logs = logs.LogGroup(
            self,
            "GlueJobLogs",
            log_group_name=f"/aws-glue/{settings.prefix}-jobs",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.jobs: dict[str, glue.CfnJob] = {}
        self.glue_roles: dict[str, iam.Role] = {}
        for placeholder, module in definitions.GLUE_JOBS.items():
            self.glue_roles[module] = self._glue_role(module, lake, artifacts, libs)
            log_store_jar.grant_read(self.glue_roles[module])
            self.delta_log.grant(self.glue_roles[module], *LOG_STORE_ACTIONS)
            arguments = _job_arguments(module, libs, wheels, lake_root, artifacts, job_logs.log_group_name)
            arguments["--conf"] = f"{DELTA_CONF} --conf {log_store_conf(self.delta_log.table_name, self.region)}"
            arguments["--extra-jars"] = log_store_jar.s3_object_url
            self.jobs[placeholder] = self._glue_job(placeholder, module, arguments, security)
        # Every alarm of the app is named <prefix>-…: the topic admits CloudWatch for those alone.
        self.alarm_arn_pattern = (
            f"arn:{self.partition}:cloudwatch:{self.region}:{self.account}:alarm:{settings.prefix}-*"
        )
        self.alarm_topic = self._alarm_topic()
        self.machines: dict[str, sfn.StateMachine] = {}
        machines = (
            ("pipeline", definitions.PIPELINE),
            ("intraday", definitions.INGEST_INTRADAY),
            ("maintenance", definitions.MAINTENANCE),
        )
        for key, path in machines:
            self.machines[key] = self._state_machine(key, path, lake_root)
            self._failure_alarm(key, self.machines[key])
        self._schedules()
        self._maintenance_schedule()
        self._raw_drops(lake)

    # --- the Glue jobs ---------------------------------------------------------------------------

    def _delta_log_table(self) -> dynamodb.Table:
        """The commit arbiter of Delta's S3DynamoDBLogStore (lakehouse/log_store.py): S3 has no put-if-absent
        that Delta 3.3's S3 log store uses, so without it two jobs committing one table's next version at once
        (the pipeline and the weekly maintenance, a backfill started by hand) can both "succeed" and lose one
        commit. Entries are needed only until the commit file is in S3: the log store stamps `expireTime`
        (one day later) and the table's TTL removes them. On demand: a handful of writes per job run."""
        table = dynamodb.Table(
            self,
            "DeltaLogTable",
            table_name=f"{self.settings.prefix}-delta-log",
            partition_key=dynamodb.Attribute(name=LOG_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=LOG_SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=LOG_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.DESTROY,  # holds no data: a commit's entry lives until its file is in S3
        )
        return table

    def _log_store_jar(self) -> s3_assets.Asset:
        """The log store's jar (built by `make setup` from infra/delta_logstore/), given to every job with
        `--extra-jars`: Glue's `--datalake-formats delta` does not ship it."""
        jar = Path(self.settings.delta_log_store_jar)
        if not jar.is_file():
            raise LogStoreJarMissing(
                f"the Delta log store jar {jar} does not exist: run `make setup` first "
                "(or pass -c delta_log_store_jar=<path of delta-storage-s3-dynamodb-3.3.2.jar>)"
            )
        return s3_assets.Asset(self, "DeltaLogStoreJar", path=str(jar))

    def _glue_role(self, module: str, lake: s3.IBucket, artifacts: s3.IBucket, libs: s3_assets.Asset) -> iam.Role:
        """The role of glue_jobs/<module>.py alone: it reads the lake, writes only its own tables'
        prefixes (infra/lake_access.py), deletes no object version, and reads its code and libraries.

        The lake bucket is versioned, so a job's overwrite or delete stays recoverable as long as no
        job may `s3:DeleteObjectVersion`; `gold/models/` (what the API serves) is export's alone."""
        role = iam.Role(
            self,
            f"GlueRole-{module}",
            assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
            description=f"candlelake glue_jobs/{module}.py: reads the lake, writes its own tables",
        )
        lake_prefix = self.settings.lake_prefix
        for statement in _lake_statements(module, lake, lake_prefix):
            role.add_to_policy(statement)
        libs.grant_read(role)
        role.add_to_policy(
            iam.PolicyStatement(
                sid="GlueTempAndSparkLogs",
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                resources=[artifacts.arn_for_objects("glue/*")],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListGlueTemp",
                actions=["s3:ListBucket"],
                resources=[artifacts.bucket_arn],
                conditions={"StringLike": {"s3:prefix": ["glue/*"]}},
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="JobLogs",
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[f"arn:{self.partition}:logs:{self.region}:{self.account}:log-group:/aws-glue/*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="GlueMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "Glue"}},
            )
        )
        nag.suppress(role, glue_role_suppressions(lake_prefix, module), apply_to_children=True)
        return role

    def _glue_wheels(self, artifacts: s3.IBucket) -> dict[str, str]:
        """The hashed wheel bundles (`make glue-wheels`) copied to artifacts `glue/wheels/<digest>/`:
        kind → its S3 URL. Glue takes a zip of wheels by its `.gluewheels.zip` suffix, which a CDK
        file asset's key (`<hash>.zip`) lacks, so a BucketDeployment puts them under their own names;
        the digest of their bytes in the prefix gives a changed bundle a new key (and the jobs new
        arguments)."""
        folder = Path(self.settings.glue_wheels_path)
        bundles = [folder / glue_wheels.bundle_name(kind) for kind in glue_wheels.KINDS]
        missing = [str(b) for b in bundles if not b.is_file()]
        if missing:
            raise GlueWheelsNotBuilt(
                f"the Glue jobs' wheel bundles {missing} do not exist: run `make glue-wheels` first "
                "(or pass -c glue_wheels_path=<folder holding etl.gluewheels.zip and ml.gluewheels.zip>)"
            )
        digest = hashlib.sha256(b"".join(hashlib.sha256(b.read_bytes()).digest() for b in bundles)).hexdigest()[:16]
        prefix = f"glue/wheels/{digest}/"
        self.glue_wheels = s3_deployment.BucketDeployment(
            self,
            "GlueWheels",
            sources=[s3_deployment.Source.asset(str(folder), exclude=["*", *(f"!{b.name}" for b in bundles)])],
            destination_bucket=artifacts,
            destination_key_prefix=prefix,
            prune=False,
            retain_on_delete=True,  # a job run in flight during a redeploy still finds its bundle
            memory_limit=2048,
            ephemeral_storage_size=Size.gibibytes(4),
        )
        handler = next(c for c in self.node.children if c.node.id.startswith("Custom::CDKBucketDeployment"))
        nag.suppress(handler, BUCKET_DEPLOYMENT_SUPPRESSIONS, apply_to_children=True)
        return {
            kind: f"s3://{artifacts.bucket_name}/{prefix}{glue_wheels.bundle_name(kind)}" for kind in glue_wheels.KINDS
        }

    def _glue_security_configuration(self) -> glue.CfnSecurityConfiguration:
        """SSE-S3 for what the jobs write to S3; CloudWatch and bookmark encryption off (see GL1/GL3)."""
        config = glue.CfnSecurityConfiguration
        return config(
            self,
            "GlueSecurity",
            name=f"{self.settings.prefix}-glue",
            encryption_configuration=config.EncryptionConfigurationProperty(
                s3_encryptions=[config.S3EncryptionProperty(s3_encryption_mode="SSE-S3")],
                cloud_watch_encryption=config.CloudWatchEncryptionProperty(cloud_watch_encryption_mode="DISABLED"),
                job_bookmarks_encryption=config.JobBookmarksEncryptionProperty(
                    job_bookmarks_encryption_mode="DISABLED"
                ),
            ),
        )

    def _glue_job(
        self, placeholder: str, module: str, arguments: dict[str, str], security: glue.CfnSecurityConfiguration
    ) -> glue.CfnJob:
        """The Glue job running glue_jobs/<module>.py, named as the ASL placeholder becomes on AWS."""
        settings = self.settings
        script = s3_assets.Asset(self, f"Script-{module}", path=str(REPO / "glue_jobs" / f"{module}.py"))
        script.grant_read(self.glue_roles[module])
        ml = module in packaging.ML_JOBS
        job = glue.CfnJob(
            self,
            f"Job-{module}",
            name=definitions.glue_job_name(placeholder, settings.prefix),
            role=self.glue_roles[module].role_arn,
            glue_version=settings.glue_version,
            command=glue.CfnJob.JobCommandProperty(
                name="glueetl", python_version="3", script_location=script.s3_object_url
            ),
            default_arguments=arguments,
            max_retries=0,
            worker_type=settings.train_worker_type if ml else settings.worker_type,
            number_of_workers=settings.train_workers if ml else settings.workers,
            timeout=settings.job_timeout_minutes,
            execution_property=glue.CfnJob.ExecutionPropertyProperty(
                max_concurrent_runs=3 if module == "record_failure" else 1
            ),
            security_configuration=security.name,
            description=f"candlelake glue_jobs/{module}.py",
        )
        job.node.add_dependency(security)
        nag.suppress(job, GLUE_ENCRYPTION_SUPPRESSIONS)
        return job

    # --- the state machines ----------------------------------------------------------------------

    def _alarm_topic(self) -> sns.Topic:
        """Where every failure alarm goes (`-c alarm_email=…` subscribes an address).

        CloudWatch publishes an alarm to the topic as the service itself, so two grants are needed
        that a topic with default settings lacks: the topic's policy must Allow
        `cloudwatch.amazonaws.com` to `sns:Publish` (scoped here to this account's alarms named
        `<prefix>-*`; `enforce_ssl` alone writes only a Deny), and the topic's KMS key must let
        CloudWatch encrypt with it. The AWS-managed `alias/aws/sns` key's policy cannot be changed and
        admits no service principal, so with it every alarm failed to publish: this key is our own,
        rotated, used by nothing else."""
        topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"{self.settings.prefix}: encrypts the alarm topic; CloudWatch may use it to publish",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublishToTheTopic",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        topic = sns.Topic(self, "Alarms", display_name="candlelake alarms", enforce_ssl=True, master_key=topic_key)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnLike": {"aws:SourceArn": self.alarm_arn_pattern},
                    "StringEquals": {"aws:SourceAccount": self.account},
                },
            )
        )
        if self.settings.alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(self.settings.alarm_email))
        return topic

    def _state_machine(self, key: str, path: Path, lake_root: str) -> sfn.StateMachine:
        """The ASL file deployed as it is, job names, lake root and default source substituted."""
        prefix = self.settings.prefix
        substitutions = definitions.substitutions(lake_root, definitions.DEPLOYED_DEFAULT_SOURCE, prefix)
        log_group = logs.LogGroup(
            self,
            f"Logs-{key}",
            log_group_name=f"/aws/vendedlogs/states/{prefix}-{key}",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        machine = sfn.StateMachine(
            self,
            f"StateMachine-{key}",
            state_machine_name=f"{prefix}-{key}",
            definition_body=sfn.DefinitionBody.from_string(definitions.render(path, substitutions)),
            state_machine_type=sfn.StateMachineType.STANDARD,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
            tracing_enabled=True,
            timeout=Duration.hours(6),
        )
        # Only the jobs this definition names: the intraday machine's role cannot start train or export.
        own = [self.jobs[p] for p in sorted(definitions.placeholders(path) & set(self.jobs))]
        job_arns = [f"arn:{self.partition}:glue:{self.region}:{self.account}:job/{j.name}" for j in own]
        machine.add_to_role_policy(iam.PolicyStatement(actions=SYNC_ACTIONS, resources=job_arns))
        for job in own:
            machine.node.add_dependency(job)
        nag.suppress(machine.role, STATE_MACHINE_ROLE_SUPPRESSIONS, apply_to_children=True)
        return machine

    def _failure_alarm(self, key: str, machine: sfn.StateMachine) -> None:
        """An alarm on any failed, timed-out or aborted execution of `machine`, to the alarm topic."""
        alarm = cloudwatch.Alarm(
            self,
            f"Failed-{key}",
            alarm_name=f"{self.settings.prefix}-{key}-failed",
            alarm_description=f"A {key} execution failed, timed out or was aborted: open it in the console.",
            metric=cloudwatch.MathExpression(
                expression="failed + timedout + aborted",
                using_metrics={
                    "failed": machine.metric_failed(),
                    "timedout": machine.metric_timed_out(),
                    "aborted": machine.metric_aborted(),
                },
                period=Duration.minutes(5),
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cw_actions.SnsAction(self.alarm_topic))

    def _schedules(self) -> None:
        """EventBridge rules: the daily pipeline after the US close, intraday candles during trading hours."""
        settings = self.settings
        base_input = {"source": "yfinance", "symbols": settings.symbols}  # the lake is the definition's own
        schedules = (
            # construct id, machine, rule suffix, schedule, intervals, enabled, description
            (
                "DailySchedule",
                "pipeline",
                "daily",
                settings.daily_schedule,
                "1d",
                True,
                "the daily pipeline: ingest → features → train → export",
            ),
            (
                "IntradaySchedule",
                "intraday",
                "intraday",
                settings.intraday_schedule,
                "1h,5m",
                settings.intraday_enabled,
                "hourly and 5-minute candles during US trading hours",
            ),
        )
        for cid, machine_key, suffix, expression, intervals, enabled, description in schedules:
            events.Rule(
                self,
                cid,
                rule_name=f"{settings.prefix}-{suffix}",
                description=description,
                enabled=enabled,
                schedule=events.Schedule.expression(expression),
                targets=[
                    targets.SfnStateMachine(
                        self.machines[machine_key],
                        input=events.RuleTargetInput.from_object({**base_input, "intervals": intervals}),
                    )
                ],
            )

    def _maintenance_schedule(self) -> None:
        """Weekly table maintenance (compaction, retention, VACUUM) when no daily or intraday run is due:
        compaction commits conflict with a concurrent writer only on the same files, and the loser retries
        (lakehouse/conflicts.py), but there is no reason to make them meet."""
        retention = self.settings.maintenance_retention_hours
        events.Rule(
            self,
            "MaintenanceSchedule",
            rule_name=f"{self.settings.prefix}-maintenance",
            description="weekly: OPTIMIZE, retention properties and VACUUM of every lake table",
            schedule=events.Schedule.expression(self.settings.maintenance_schedule),
            targets=[
                targets.SfnStateMachine(
                    self.machines["maintenance"],
                    input=events.RuleTargetInput.from_object({"retention_hours": str(retention)}),
                )
            ],
        )

    def _raw_drops(self, lake: s3.IBucket) -> None:
        """A CSV object created under <lake>/raw/ starts the pipeline with `source=csv` and that object as
        input (definitions.drop_input). The rule's own role may start that one machine and nothing
        else. A malformed file fails the Ingest state (recorded in gold/pipeline_failures, the
        failure alarm fires) before anything is written; the same file put twice ingests nothing
        new the second time."""
        prefix = f"{self.settings.lake_prefix}/{definitions.RAW_DROP_PREFIX}"
        role = iam.Role(
            self,
            "RawDropRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description="candlelake: EventBridge starts the pipeline for a CSV dropped under the lake's raw/",
        )
        events.Rule(
            self,
            "RawDrop",
            rule_name=f"{self.settings.prefix}-raw-drop",
            description=f"a CSV created under s3://<lake>/{prefix} runs the pipeline on it (source=csv)",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [lake.bucket_name]},
                    "object": {"key": events.Match.wildcard(f"{prefix}*.csv")},
                },
            ),
            targets=[
                targets.SfnStateMachine(
                    self.machines["pipeline"],
                    input=events.RuleTargetInput.from_object(
                        definitions.drop_input(
                            events.EventField.from_path("$.detail.bucket.name"),
                            events.EventField.from_path("$.detail.object.key"),
                        )
                    ),
                    role=role,
                )
            ],
        )


def _lake_statements(module: str, lake: s3.IBucket, lake_prefix: str) -> list[iam.PolicyStatement]:
    """List the lake bucket and read anywhere under the lake prefix; write (and delete current objects) only under the
    job's own prefixes (lake_access.WRITES). No s3:DeleteObjectVersion: every overwrite stays recoverable."""
    return [
        # Unconditioned: a HeadBucket (EMRFS/S3A probing the bucket) carries no s3:prefix, and a
        # condition on it would deny that; listing shows key names, not data.
        iam.PolicyStatement(
            sid="ListTheLake", actions=["s3:ListBucket", "s3:GetBucketLocation"], resources=[lake.bucket_arn]
        ),
        iam.PolicyStatement(
            sid="ReadTheLake", actions=["s3:GetObject"], resources=[lake.arn_for_objects(f"{lake_prefix}/*")]
        ),
        iam.PolicyStatement(
            sid="WriteItsOwnTables",
            actions=["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            resources=[lake.arn_for_objects(f"{lake_prefix}/{prefix}*") for prefix in lake_access.WRITES[module]],
        ),
    ]


def _job_arguments(
    module: str, libs: s3_assets.Asset, wheels: dict[str, str], lake_root: str, artifacts: s3.IBucket, log_group: str
) -> dict[str, str]:
    """A job's default arguments: Delta on, our library zip, its wheel bundle installed with no index
    (nothing resolved at run time), the lake root, logs and metrics."""
    arguments = {
        "--job-language": "python",
        "--datalake-formats": "delta",
        "--conf": DELTA_CONF,
        "--extra-py-files": libs.s3_object_url,
        "--additional-python-modules": wheels[glue_wheels.kind_of(module)],
        "--python-modules-installer-option": "--no-index",
        "--lake_root": lake_root,
        "--enable-continuous-cloudwatch-log": "true",
        "--continuous-log-logGroup": log_group,
        "--enable-metrics": "true",
        "--enable-observability-metrics": "true",
        "--enable-spark-ui": "true",
        "--spark-event-logs-path": f"s3://{artifacts.bucket_name}/glue/spark-logs/",
        "--TempDir": f"s3://{artifacts.bucket_name}/glue/temp/",
    }
    return arguments
