"""The prediction API: a python3.12 Lambda (serving/ + a layer of its pinned dependencies) behind a
Function URL with IAM auth, read-only on the published models, allowed to start the pipeline.

Auth: the Function URL uses AWS_IAM — callers sign requests with SigV4 (awscurl, boto3, an API
client with AWS credentials) and need `lambda:InvokeFunctionUrl` on the function. See infra/README.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra import edge, nag, packaging
from infra.settings import REPO, InfraSettings


class DashboardNotBuilt(FileNotFoundError):
    """The dashboard's chart library is missing: `make dashboard` copies it from its npm package."""


class LayerNotBuilt(FileNotFoundError):
    """The dependency layer folder is missing: `make lambda-layer` builds it."""


# The Lambda code: serving/ and the one package it imports (lakecontract; a test follows the imports), their
# .py files only, in a zip rewritten on every synth with fixed timestamps (a module deleted from the
# repository is not deployed; an unchanged tree gives the same asset hash).
API_CODE = ("serving", "lakecontract")
API_CODE_ZIP = REPO / "build" / "infra" / "api-code.zip"
# The dashboard's page, script, style and chart library (serving/routes/dashboard.py serves them).
DASHBOARD_STATIC = "serving/dashboard/static"
ROLE_SUPPRESSIONS = [
    {
        "id": "AwsSolutions-IAM5",
        "reason": "Objects under <lake>/gold/models/ (one folder per published "
        "version), executions of the pipeline state machine (named per run), and X-Ray's APIs, which take "
        "no resource ARN.",
        "applies_to": [
            {"regex": "/^Resource::.*Lake.*\\/gold\\/models\\/\\*$/g"},
            {
                "regex": "/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                "execution:[^:]+-pipeline:\\*$/g"
            },
            "Resource::*",
        ],
    }
]
DISTRIBUTION_SUPPRESSIONS = [
    {
        "id": "AwsSolutions-CFR1",
        "reason": "Access is by network, not by country: a viewer-request CloudFront Function lets the "
        "networks in -c dashboard_cidrs through and answers everyone else 403.",
    },
    {
        "id": "AwsSolutions-CFR2",
        "reason": "The one rule this distribution needs (an IPv4 network allowlist) is enforced by its "
        "CloudFront Function; a WAF web ACL for CloudFront must live in us-east-1, a second stack for one rule.",
    },
    {
        "id": "AwsSolutions-CFR3",
        "reason": "Standard logging needs an ACL-enabled bucket (ours enforce bucket ownership); every request "
        "that passes reaches the API, whose JSON access log records it with its request id.",
    },
    {
        "id": "AwsSolutions-CFR4",
        "reason": "The default *.cloudfront.net certificate (no custom domain here) cannot pin a minimum TLS "
        "version; with a custom domain and certificate, set TLSv1.2_2021.",
    },
]
FUNCTION_SUPPRESSIONS = [
    {
        "id": "AwsSolutions-L1",
        "reason": "python3.12 on purpose: the serving set is pinned and "
        "size-checked for it (numpy 1.26 has no wheels for newer Pythons); bump with "
        "serving/requirements.txt.",
    }
]


class ApiStack(Stack):
    """The API's Lambda, its Function URL, a least-privilege role and two alarms.

    Each part is one helper below, called in the order the resources were always created, so the
    construct ids (hence the logical ids) and the template are those of the former 131-line constructor.
    """

    def __init__(
        self,
        scope: Construct,
        cid: str,
        *,
        settings: InfraSettings,
        lake: s3.IBucket,
        lake_root: str,
        pipeline: sfn.IStateMachine,
        alarm_topic: sns.ITopic,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, cid, **kwargs)
        self.settings = settings
        vendor = REPO / DASHBOARD_STATIC / "vendor"
        if not any(vendor.glob("*.js")):
            raise DashboardNotBuilt(
                f"the dashboard's chart library is missing from {vendor}: run `make dashboard` first"
            )
        code = packaging.source_zip(API_CODE_ZIP, API_CODE, data=(DASHBOARD_STATIC,))
        log_group = logs.LogGroup(
            self,
            "ApiLogs",
            log_group_name=f"/aws/lambda/{settings.prefix}-api",
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = self._role(lake, pipeline, log_group)
        layer = self._dependencies_layer()
        self.function = self._function(code, layer, role, log_group, lake_root, pipeline)
        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)
        CfnOutput(self, "ApiUrl", value=self.url.url, description="Function URL (IAM auth: sign with SigV4)")
        networks = edge.allowed_networks(settings.dashboard_cidrs)
        self.dashboard = self._dashboard_edge(networks) if networks else None
        self._alarms(alarm_topic)
        nag.suppress(role, ROLE_SUPPRESSIONS, apply_to_children=True)
        nag.suppress(self.function, FUNCTION_SUPPRESSIONS)

    def _dashboard_edge(self, networks: list[tuple[int, int]]) -> cloudfront.Distribution:
        """CloudFront in front of the Function URL, for browsers (which cannot sign requests): it signs
        its requests to the origin itself (an Origin Access Control; the URL keeps AWS_IAM auth), reads
        only (GET/HEAD: runs still start from a signed operator call), serves IPv4, and lets through
        the listed networks alone (a viewer-request CloudFront Function; everyone else gets 403)."""
        access = cloudfront.Function(
            self,
            "DashboardNetworks",
            code=cloudfront.FunctionCode.from_inline(edge.function_code(networks)),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment=f"{self.settings.prefix}: only the networks -c dashboard_cidrs lists",
        )
        distribution = cloudfront.Distribution(
            self,
            "Dashboard",
            comment=f"{self.settings.prefix} API and dashboard, read-only, for the listed networks",
            enable_ipv6=False,  # the network rule is IPv4: no viewer may arrive any other way
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.FunctionUrlOrigin.with_origin_access_control(self.url),
                allowed_methods=cloudfront.AllowedMethods.ALLOW_GET_HEAD,
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=access, event_type=cloudfront.FunctionEventType.VIEWER_REQUEST
                    )
                ],
            ),
        )
        nag.suppress(distribution, DISTRIBUTION_SUPPRESSIONS)
        CfnOutput(
            self,
            "DashboardUrl",
            value=f"https://{distribution.distribution_domain_name}/",
            description="the dashboard and the read API, for the networks in -c dashboard_cidrs",
        )
        return distribution

    def _role(self, lake: s3.IBucket, pipeline: sfn.IStateMachine, log_group: logs.ILogGroup) -> iam.Role:
        """Read the published models, start and describe pipeline runs, write its logs and traces: nothing else."""
        settings = self.settings
        role = iam.Role(
            self,
            "ApiRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="candlelake API: read published models, start/describe pipeline runs",
        )
        log_group.grant_write(role)
        models_prefix = f"{settings.lake_prefix}/gold/models"
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[lake.arn_for_objects(f"{models_prefix}/*")])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[lake.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{models_prefix}/*"]}},
            )
        )
        role.add_to_policy(  # ListExecutions: an operator's run is refused while another one is RUNNING
            iam.PolicyStatement(
                actions=["states:StartExecution", "states:ListExecutions"], resources=[pipeline.state_machine_arn]
            )
        )
        execution_arns = (
            f"arn:{self.partition}:states:{self.region}:{self.account}:execution:{settings.prefix}-pipeline:*"
        )
        role.add_to_policy(iam.PolicyStatement(actions=["states:DescribeExecution"], resources=[execution_arns]))
        role.add_to_policy(
            iam.PolicyStatement(actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"])
        )
        return role

    def _dependencies_layer(self) -> lambda_.LayerVersion:
        """serving/requirements.txt built for the Lambda runtime by `make lambda-layer` (refused if absent:
        CDK's own "Cannot find asset" does not say how to make it)."""
        path = Path(self.settings.api_layer_path)
        if not path.is_dir():
            raise LayerNotBuilt(
                f"the API's dependency layer {path} does not exist: run `make lambda-layer` first "
                "(or pass -c api_layer_path=<folder holding python/>)"
            )
        return lambda_.LayerVersion(
            self,
            "ServingDependencies",
            code=lambda_.Code.from_asset(str(path)),
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.X86_64],
            description="serving/requirements.txt for python3.12 x86_64 (make lambda-layer)",
        )

    def _function(
        self,
        code: Path,
        layer: lambda_.ILayerVersion,
        role: iam.IRole,
        log_group: logs.ILogGroup,
        lake_root: str,
        pipeline: sfn.IStateMachine,
    ) -> lambda_.Function:
        """serving.app.handler on python3.12, reading the lake root and starting the pipeline it is given."""
        settings = self.settings
        return lambda_.Function(
            self,
            "Api",
            function_name=f"{settings.prefix}-api",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.X86_64,
            handler="serving.app.handler",
            code=lambda_.Code.from_asset(str(code)),
            layers=[layer],
            role=role,
            memory_size=settings.api_memory_mb,
            reserved_concurrent_executions=settings.api_reserved_concurrency or None,
            timeout=Duration.seconds(15),
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "CANDLELAKE_LAKE_ROOT": lake_root,
                "CANDLELAKE_STATE_MACHINE_ARN": pipeline.state_machine_arn,
                "CANDLELAKE_OPERATOR_ARNS": settings.operator_arns,
                "CANDLELAKE_RELOAD_SECONDS": "60",
                "CANDLELAKE_LOG_LEVEL": "INFO",
            },
            description="candlelake prediction API (FastAPI + Mangum)",
        )

    def _alarms(self, alarm_topic: sns.ITopic) -> None:
        """An alarm on Lambda errors and one on Function-URL 5xx answers, each to the alarm topic."""
        url_5xx = cloudwatch.Metric(
            namespace="AWS/Lambda",
            metric_name="Url5xxCount",
            dimensions_map={"FunctionName": self.function.function_name},
            statistic="Sum",
            period=Duration.minutes(5),
        )
        for name, metric in (("errors", self.function.metric_errors(period=Duration.minutes(5))), ("url-5xx", url_5xx)):
            alarm = cloudwatch.Alarm(
                self,
                f"Api-{name}",
                alarm_name=f"{self.settings.prefix}-api-{name}",
                alarm_description=f"The prediction API answered with {name} in the last 5 minutes: read its logs.",
                metric=metric,
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(alarm_topic))
