"""The CDK app: `python -m infra.app`, what the cdk CLI runs for `make synth` / `make deploy` and, through
infra/cdk.json, for `npx cdk synth` / `diff` / `deploy` typed in infra/.

cdk-nag's AwsSolutions pack runs on every synth; an unsuppressed finding is an error annotation
(the tests fail on any), and every suppression carries its reason next to the resource.
"""

from __future__ import annotations

import os
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra.settings import InfraSettings, SettingsError
from infra.stacks.analytics import AnalyticsStack
from infra.stacks.api import ApiStack, DashboardNotBuilt, LayerNotBuilt
from infra.stacks.pipeline import GlueWheelsNotBuilt, PipelineStack
from infra.stacks.storage import StorageStack


def build(app: cdk.App, settings: InfraSettings, env: cdk.Environment | None = None) -> dict[str, cdk.Stack]:
    p = settings.prefix
    storage = StorageStack(app, f"{p}-storage", settings=settings, env=env)
    analytics = AnalyticsStack(
        app, f"{p}-analytics", settings=settings, lake=storage.lake, artifacts=storage.artifacts, env=env
    )
    pipeline = PipelineStack(
        app,
        f"{p}-pipeline",
        settings=settings,
        lake=storage.lake,
        artifacts=storage.artifacts,
        lake_root=storage.lake_root,
        env=env,
    )
    api = ApiStack(
        app,
        f"{p}-api",
        settings=settings,
        lake=storage.lake,
        lake_root=storage.lake_root,
        pipeline=pipeline.machines["pipeline"],
        alarm_topic=pipeline.alarm_topic,
        env=env,
    )
    for stack in (storage, analytics, pipeline, api):
        cdk.Tags.of(stack).add("project", "candlelake")
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return {"storage": storage, "analytics": analytics, "pipeline": pipeline, "api": api}


# CDK feature flags this app relies on. A `cdk init` project lists them in cdk.json; here they are part of
# the app, so the tests (which build it without the CLI) and `make` (which passes --app) get them too.
FEATURE_FLAGS = {
    # access logs delivered under a bucket policy, not an ACL (the buckets enforce owner-only ACLs)
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    # cross-stack references (bucket names, the state machine ARN) as CloudFormation exports that
    # protect the producer: a stack whose outputs are in use cannot be deleted from under its readers
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


# The context keys the CDK sets itself hold a colon (the CLI's `aws:cdk:*`, feature flags `@aws-cdk/…:…`,
# lookups `<provider>:account=…`), except this one, which `cdk acknowledge` keeps in cdk.context.json.
CDK_OWN_CONTEXT = frozenset({"acknowledged-issue-numbers"})


def settings_context(app: cdk.App) -> dict[str, Any]:
    """Every context value but the CDK's own: what `-c key=value` gave, so a mistyped key is refused, not ignored."""
    context = app.node.get_all_context()
    return {k: v for k, v in context.items() if ":" not in k and k not in CDK_OWN_CONTEXT}


def create(context: dict[str, Any] | None = None, outdir: str | None = None) -> tuple[cdk.App, dict[str, cdk.Stack]]:
    app = cdk.App(context={**FEATURE_FLAGS, **(context or {})}, outdir=outdir)
    settings = InfraSettings.from_context(settings_context(app))
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    env = cdk.Environment(account=account, region=region) if account and region else None
    return app, build(app, settings, env)


def main() -> None:
    try:
        app, _ = create()
    # a bad -c value or a build step not run: say which, no traceback
    except (SettingsError, LayerNotBuilt, GlueWheelsNotBuilt, DashboardNotBuilt) as error:
        raise SystemExit(f"candlelake infra: {error}") from None
    app.synth()


if __name__ == "__main__":
    main()
