"""The CDK app, offline: synthesized once, asserted per stack, linted (cfn-lint), scanned (cdk-nag).

No AWS credentials are needed or used: the app synthesizes environment-agnostic templates.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk.assertions import Annotations, Match, Template

from infra import lake_access, packaging
from infra.settings import InfraSettings
from infra.stacks.analytics import GOLD_TABLES, QUERY_DIR
from step_functions import definitions
from tests.infra_fixtures import stand_in_wheel_bundles

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]

# The deployed Glue job names, written out: what the ASL placeholders must become on AWS.
JOB_NAMES = {
    "IngestJobName": "candlelake-ingest-candles",
    "BuildSilverJobName": "candlelake-build-silver",
    "BuildFeaturesJobName": "candlelake-build-features",
    "TrainJobName": "candlelake-train-models",
    "ExportJobName": "candlelake-export-models",
    "RecordFailureJobName": "candlelake-record-failure",
    "MaintainTablesJobName": "candlelake-maintain-tables",
}


OPERATOR_PATTERN = "arn:aws:sts::123456789012:assumed-role/candlelake-operator/*"
DASHBOARD_CIDRS = "203.0.113.0/24,198.51.100.7"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    from infra.app import create

    layer = tmp_path_factory.mktemp("layer")
    (layer / "python").mkdir()
    (layer / "python" / "placeholder.txt").write_text("the real layer is built by `make lambda-layer`")
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = {
        "api_layer_path": str(layer),
        "glue_wheels_path": str(stand_in_wheel_bundles(tmp_path_factory.mktemp("glue-wheels"))),
        "alarm_email": "ops@example.com",
        "operator_arns": OPERATOR_PATTERN,
        "dashboard_cidrs": DASHBOARD_CIDRS,
    }
    app, stacks = create(context, outdir=str(outdir))
    app.synth()
    templates = {name: Template.from_stack(stack) for name, stack in stacks.items()}
    return stacks, templates, outdir


def _resources(template: Template, kind: str) -> dict:
    return template.find_resources(kind)


def _statements(template: Template) -> list[dict]:
    out = []
    for policy in _resources(template, "AWS::IAM::Policy").values():
        out += policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def _actions(statement: dict) -> list[str]:
    actions = statement.get("Action", [])
    return [actions] if isinstance(actions, str) else actions


def _resources_of(statement: dict) -> list:
    res = statement.get("Resource", [])
    return res if isinstance(res, list) else [res]


# --- the whole app ------------------------------------------------------------------------------


def test_cdk_nag_aws_solutions_reports_nothing_unsuppressed(synthesized):
    stacks, _, _ = synthesized
    for name, stack in stacks.items():
        annotations = Annotations.from_stack(stack)
        for finding in (
            *annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*")),
            *annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")),
        ):
            pytest.fail(f"{name}: {finding.id}: {finding.entry.data}")


def test_every_nag_suppression_says_why(synthesized):
    _, templates, _ = synthesized
    seen = 0
    for template in templates.values():
        for logical_id, resource in template.to_json()["Resources"].items():
            for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
                seen += 1
                assert len(rule.get("reason", "")) >= 40, f"{logical_id}: {rule}"
                if rule["id"] == "AwsSolutions-IAM5":  # a wildcard is waived finding by finding, never wholesale
                    assert rule.get("applies_to"), f"{logical_id}: an IAM5 suppression without applies_to"
    assert seen > 0


def test_synthesized_templates_pass_cfn_lint(synthesized):
    _, _, outdir = synthesized
    templates = sorted(str(p) for p in Path(outdir).glob("*.template.json"))
    assert len(templates) == 4
    # W3005: CDK adds DependsOn on a role's default policy that a GetAtt already implies; harmless.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), *templates, "--ignore-checks", "W3005"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_iam_statement_allows_every_action_on_data(synthesized):
    _, templates, _ = synthesized
    for name, template in templates.items():
        for statement in _statements(template):
            if statement.get("Effect") != "Allow":
                continue
            for action in _actions(statement):
                assert action != "*" and not action.endswith(":*"), f"{name}: {statement}"
            if "*" in _resources_of(statement):
                data = [a for a in _actions(statement) if a.split(":")[0] in ("s3", "glue", "states", "athena")]
                assert not data, f"{name}: data actions on Resource '*': {statement}"


# --- storage ------------------------------------------------------------------------------------


def test_buckets_are_private_encrypted_tls_only_versioned(synthesized):
    _, templates, _ = synthesized
    storage = templates["storage"]
    buckets = _resources(storage, "AWS::S3::Bucket")
    assert len(buckets) == 2
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert sse["SSEAlgorithm"] == "AES256"
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert props["LifecycleConfiguration"]["Rules"]
        assert bucket["DeletionPolicy"] == "Retain"
    policies = _resources(storage, "AWS::S3::BucketPolicy")
    tls = [
        s
        for p in policies.values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} and s["Effect"] == "Deny"
    ]
    assert len(tls) == 2
    lake = next(b for b in buckets.values() if "LoggingConfiguration" in b["Properties"])
    rules = {r["Id"]: r for r in lake["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-old-runs"]["Prefix"] == "lake/runs/" and rules["expire-old-runs"]["ExpirationInDays"] == 90
    assert "ExpirationInDays" not in rules["noncurrent-versions"]  # table data is never expired by lifecycle


# --- analytics ----------------------------------------------------------------------------------


def test_gold_tables_are_registered_as_delta_without_columns(synthesized):
    _, templates, _ = synthesized
    analytics = templates["analytics"]
    analytics.has_resource_properties("AWS::Glue::Database", {"DatabaseInput": {"Name": "candlelake"}})
    tables = _resources(analytics, "AWS::Glue::Table")
    assert {t["Properties"]["TableInput"]["Name"] for t in tables.values()} == set(GOLD_TABLES)
    for table in tables.values():
        table_input = table["Properties"]["TableInput"]
        assert table_input["Parameters"]["table_type"] == "DELTA"
        assert "Columns" not in table_input["StorageDescriptor"]  # the schema comes from the Delta log
        location = json.dumps(table_input["StorageDescriptor"]["Location"])
        assert f"/lake/{GOLD_TABLES[table_input['Name']]}/" in location


def test_infra_registers_every_gold_table_the_lake_has():
    from lakehouse import tables
    from lakehouse.config import SUPPORTED_INTERVALS

    gold = {t.name for t in vars(tables).values() if isinstance(t, tables.Table) and t.zone == "gold"}
    gold |= {tables.gold_features(i).name for i in SUPPORTED_INTERVALS}
    assert gold == set(GOLD_TABLES.values())


def test_athena_workgroup_engine_v3_result_location_and_scan_cap(synthesized):
    _, templates, _ = synthesized
    config = next(iter(_resources(templates["analytics"], "AWS::Athena::WorkGroup").values()))["Properties"]
    wg = config["WorkGroupConfiguration"]
    assert wg["EngineVersion"]["SelectedEngineVersion"] == "Athena engine version 3"
    assert wg["BytesScannedCutoffPerQuery"] == InfraSettings().athena_bytes_scanned_limit
    assert wg["EnforceWorkGroupConfiguration"] is True
    assert "athena-results/" in json.dumps(wg["ResultConfiguration"]["OutputLocation"])


def test_each_sql_file_is_a_named_query(synthesized):
    _, templates, _ = synthesized
    queries = {
        q["Properties"]["Name"]: q["Properties"]
        for q in _resources(templates["analytics"], "AWS::Athena::NamedQuery").values()
    }
    files = {p.stem: p for p in QUERY_DIR.glob("*.sql")}
    assert set(queries) == set(files) and len(files) >= 4
    for name, props in queries.items():
        assert props["QueryString"] == files[name].read_text().strip().rstrip(";")
        assert props["Database"] == "candlelake" and props["Description"]


# --- pipeline -----------------------------------------------------------------------------------


def test_a_glue_5_1_job_for_every_entry_script(synthesized):
    _, templates, _ = synthesized
    jobs = {
        j["Properties"]["Name"]: j["Properties"] for j in _resources(templates["pipeline"], "AWS::Glue::Job").values()
    }
    expected = {JOB_NAMES[p]: m for p, m in definitions.GLUE_JOBS.items()}
    assert set(jobs) == set(expected)
    scripts = {p.stem for p in (REPO / "glue_jobs").glob("*.py") if not p.stem.startswith("_")}
    assert set(expected.values()) == scripts  # every entry script is deployed
    bundles = set()
    for name, job in jobs.items():
        args = job["DefaultArguments"]
        assert job["GlueVersion"] == "5.1" and job["MaxRetries"] == 0 and job["Command"]["Name"] == "glueetl"
        assert args["--datalake-formats"] == "delta"
        assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in _joined(args["--conf"])
        assert "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog" in _joined(
            args["--conf"]
        )
        assert args["--extra-py-files"] and job["SecurityConfiguration"]
        # its kind's hashed wheel bundle, installed with no index: nothing is resolved at run time
        ml = expected[name] in packaging.ML_JOBS
        bundle = _joined(args["--additional-python-modules"])
        assert re.fullmatch(
            r"s3://TOKEN/glue/wheels/[0-9a-f]{16}/" + ("ml" if ml else "etl") + r"\.gluewheels\.zip", bundle
        )
        assert args["--python-modules-installer-option"] == "--no-index"
        assert "index-url" not in json.dumps(job)
        bundles.add(bundle.rsplit("/", 1)[0] + "/")
        assert args.get("--enable-auto-scaling", "false") == "false"  # barrier stages need fixed executors
        assert job["WorkerType"] == ("G.2X" if ml else "G.1X") and job["NumberOfWorkers"] == 2
    # CDK's BucketDeployment copies the bundles there, under their own names (Glue needs the suffix)
    (deployment,) = _resources(templates["pipeline"], "Custom::CDKBucketDeployment").values()
    assert {"s3://TOKEN/" + deployment["Properties"]["DestinationBucketKeyPrefix"]} == bundles
    assert deployment["Properties"]["Prune"] is False


FIRST_PARTY = frozenset({"lakecontract", "lakehouse", "serving", "glue_jobs", "step_functions", "infra"})


def _imported_packages(start: str) -> set[str]:
    """Our top-level packages that `start` needs on the platform: its imports, followed through every package
    they reach (read from the sources with ast, lazy imports inside functions included)."""
    needed, todo = set(), [start]
    while todo:
        package = todo.pop()
        needed.add(package)
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                todo += [n.split(".")[0] for n in names if n.split(".")[0] in FIRST_PARTY - needed]
    return needed


def _asset_zip(outdir: Path, s3_location: str | dict) -> zipfile.ZipFile:
    """The staged file asset a template points at (an S3 key or URL ending in <hash>.zip)."""
    asset_hash = json.dumps(s3_location).rsplit("/", 1)[-1].split(".zip")[0].strip('"')
    return zipfile.ZipFile(Path(outdir) / f"asset.{asset_hash}.zip")


def _sources(packages: set[str]) -> set[str]:
    return {
        str(p.relative_to(REPO))
        for package in packages
        for p in (REPO / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }


def test_the_glue_library_zip_holds_what_the_jobs_import_and_not_the_api(synthesized):
    _, templates, outdir = synthesized
    jobs = _resources(templates["pipeline"], "AWS::Glue::Job").values()
    (location,) = {json.dumps(j["Properties"]["DefaultArguments"]["--extra-py-files"]) for j in jobs}
    names = set(_asset_zip(outdir, json.loads(location)).namelist())
    needed = _imported_packages("glue_jobs")
    assert needed == {"glue_jobs", "lakehouse", "lakecontract"}
    assert names == _sources(needed)  # every module of each, nothing else: no serving/, no tests, no caches


def test_the_api_code_asset_holds_what_serving_imports_and_no_batch_code(synthesized):
    _, templates, outdir = synthesized
    fn = next(
        f["Properties"]
        for f in _resources(templates["api"], "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "serving.app.handler"
    )
    names = set(_asset_zip(outdir, fn["Code"]["S3Key"]).namelist())
    needed = _imported_packages("serving")
    assert needed == {"serving", "lakecontract"}
    static = {str(p.relative_to(REPO)) for p in (REPO / "serving" / "dashboard" / "static").rglob("*") if p.is_file()}
    assert "serving/dashboard/static/vendor/lightweight-charts.standalone.production.js" in static
    assert names == _sources(needed) | static and "serving/app.py" in names  # no lakehouse/, no requirements*.txt


def test_the_source_zips_are_reproducible(tmp_path):
    a = packaging.source_zip(tmp_path / "a.zip", ("lakecontract", "lakehouse", "glue_jobs"))
    b = packaging.source_zip(tmp_path / "b.zip", ("lakecontract", "lakehouse", "glue_jobs"))
    assert a.read_bytes() == b.read_bytes()


def _joined(value: str | dict) -> str:
    """A CloudFormation string with its tokens (a bucket's name: an import) replaced by TOKEN."""
    if isinstance(value, str):
        return value
    parts = value["Fn::Join"][1]
    for part in parts:
        if not isinstance(part, str):
            assert "Fn::ImportValue" in part or "Ref" in part, part
    return "".join(p if isinstance(p, str) else "TOKEN" for p in parts)


def _substituted(node: object, values: dict[str, str]) -> object:
    """The ASL document with each `${Name}` in its strings replaced by values[Name]."""
    if isinstance(node, dict):
        return {k: _substituted(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substituted(v, values) for v in node]
    if isinstance(node, str):
        return re.sub(r"\$\{([A-Za-z]+)\}", lambda m: values[m.group(1)], node)
    return node


def _job_names(node: object) -> list[str]:
    if isinstance(node, dict):
        return [n for k, v in node.items() for n in ([v] if k == "JobName" else _job_names(v))]
    if isinstance(node, list):
        return [n for v in node for n in _job_names(v)]
    return []


def test_state_machines_are_the_asl_files_with_job_names_substituted(synthesized):
    _, templates, _ = synthesized
    machines = {
        m["Properties"]["StateMachineName"]: m
        for m in _resources(templates["pipeline"], "AWS::StepFunctions::StateMachine").values()
    }
    assert set(machines) == {"candlelake-pipeline", "candlelake-intraday", "candlelake-maintenance"}
    values = JOB_NAMES | {"LakeRoot": "s3://TOKEN/lake", "DefaultSource": "yfinance"}
    for name, file, jobs in (
        ("candlelake-pipeline", "pipeline.asl.json", set(JOB_NAMES.values()) - {"candlelake-maintain-tables"}),
        (
            "candlelake-intraday",
            "ingest_intraday.asl.json",
            {"candlelake-ingest-candles", "candlelake-build-silver", "candlelake-record-failure"},
        ),
        ("candlelake-maintenance", "maintenance.asl.json", {"candlelake-maintain-tables", "candlelake-record-failure"}),
    ):
        text = _joined(machines[name]["Properties"]["DefinitionString"])
        assert "${" not in text, f"{name}: a placeholder was deployed unsubstituted"
        deployed = json.loads(text)
        with open(REPO / "step_functions" / file, encoding="utf-8") as f:
            asl = json.load(f)
        assert deployed == _substituted(asl, values)
        assert set(_job_names(deployed)) == jobs
        # The lake is the deployment's constant, not an input; `{}` from the console ingests with
        # yfinance (the bundled sample needs packages the Glue jobs do not install).
        defaults = deployed["States"]["Defaults"]["Result"]
        assert "lake_root" not in defaults and defaults.get("source", "yfinance") == "yfinance"
        tasks = [s for s in deployed["States"].values() if s["Type"] == "Task"]
        assert {s["Parameters"]["Arguments"]["--lake_root"] for s in tasks} == {"s3://TOKEN/lake"}
        props = machines[name]["Properties"]
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert props["TracingConfiguration"] == {"Enabled": True}


def test_state_machine_roles_may_run_their_own_jobs_only(synthesized):
    """The intraday machine's role cannot start train or export: only the jobs its ASL names."""
    _, templates, _ = synthesized
    glue_statements = [s for s in _statements(templates["pipeline"]) if any(a.startswith("glue:") for a in _actions(s))]
    assert len(glue_statements) == 3  # one per state machine
    intraday = {"candlelake-ingest-candles", "candlelake-build-silver", "candlelake-record-failure"}
    maintenance = {"candlelake-maintain-tables", "candlelake-record-failure"}
    daily = set(JOB_NAMES.values()) - {"candlelake-maintain-tables"}
    allowed = []
    for statement in glue_statements:
        assert sorted(_actions(statement)) == sorted(
            ["glue:StartJobRun", "glue:GetJobRun", "glue:GetJobRuns", "glue:BatchStopJobRun"]
        )
        resources = json.dumps(_resources_of(statement))
        assert '"*"' not in resources
        allowed.append({job for job in JOB_NAMES.values() if f':job/{job}"' in resources})
    assert sorted(allowed, key=len) == [maintenance, intraday, daily]


def _role_statements(template: Template, role_logical_id: str) -> list[dict]:
    return [
        statement
        for policy in _resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role_logical_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _lake_keys(statements: list[dict], actions: set[str]) -> set[str]:
    """The lake-bucket object patterns (`lake/…*`) that statements allow any of `actions` on."""
    keys = set()
    for statement in statements:
        if statement["Effect"] == "Allow" and actions & set(_actions(statement)):
            for resource in _resources_of(statement):
                text = json.dumps(resource)
                if "Lake" in text and isinstance(resource, dict) and "Fn::Join" in resource:
                    keys.add(resource["Fn::Join"][1][-1].lstrip("/"))
    return keys


def test_each_glue_job_has_its_own_role_writing_only_its_tables(synthesized):
    """One role per job: writes limited to its tables' prefixes (infra/lake_access.py), so ingest
    cannot replace gold/models/latest; export alone writes gold/models/; no role deletes versions."""
    _, templates, _ = synthesized
    pipeline = templates["pipeline"]
    jobs = {j["Properties"]["Name"]: j["Properties"] for j in _resources(pipeline, "AWS::Glue::Job").values()}
    roles = {name: job["Role"]["Fn::GetAtt"][0] for name, job in jobs.items()}
    assert len(set(roles.values())) == len(JOB_NAMES)  # no two jobs share a role
    writers_of_models = set()
    for placeholder, module in definitions.GLUE_JOBS.items():
        statements = _role_statements(pipeline, roles[JOB_NAMES[placeholder]])
        actions = {a for s in statements for a in _actions(s)}
        assert not {a for a in actions if a.startswith("s3:DeleteObjectVersion") or a == "s3:DeleteObject*"}, module
        writes = _lake_keys(statements, {"s3:PutObject", "s3:DeleteObject"})
        assert writes == {f"lake/{prefix}*" for prefix in lake_access.WRITES[module]}, module
        assert _lake_keys(statements, {"s3:GetObject"}) >= {"lake/*"}, module
        if any(key.startswith("lake/gold/models/") for key in writes):
            writers_of_models.add(module)
    assert writers_of_models == {"export_models"}
    ingest = _role_statements(pipeline, roles["candlelake-ingest-candles"])
    assert _lake_keys(ingest, {"s3:PutObject"}) == {"lake/bronze/*"}
    # and nothing else in the stack may write the lake: the state-machine roles start jobs only
    for statement in _statements(pipeline):
        if "s3:PutObject" in _actions(statement) and "Lake" in json.dumps(statement):
            assert all("lake/" in json.dumps(r) for r in _resources_of(statement))


def test_schedules_and_failure_alarms(synthesized):
    _, templates, _ = synthesized
    pipeline = templates["pipeline"]
    rules = {r["Properties"]["Name"]: r["Properties"] for r in _resources(pipeline, "AWS::Events::Rule").values()}
    assert rules["candlelake-daily"]["ScheduleExpression"] == InfraSettings().daily_schedule
    assert rules["candlelake-intraday"]["ScheduleExpression"].startswith("cron(")
    for rule, intervals in (("candlelake-daily", "1d"), ("candlelake-intraday", "1h,5m")):
        (target,) = rules[rule]["Targets"]
        assert json.loads(_joined(target["Input"])) == {
            "source": "yfinance",
            "symbols": "^GSPC,^IXIC,MSFT",
            "intervals": intervals,
        }
    machine_ids = {
        m["Properties"]["StateMachineName"]: logical_id
        for logical_id, m in _resources(pipeline, "AWS::StepFunctions::StateMachine").items()
    }
    assert rules["candlelake-daily"]["Targets"][0]["Arn"] == {"Ref": machine_ids["candlelake-pipeline"]}
    assert rules["candlelake-intraday"]["Targets"][0]["Arn"] == {"Ref": machine_ids["candlelake-intraday"]}
    alarms = {a["Properties"]["AlarmName"] for a in _resources(pipeline, "AWS::CloudWatch::Alarm").values()}
    assert {"candlelake-pipeline-failed", "candlelake-intraday-failed"} <= alarms
    pipeline.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"})


def test_a_csv_dropped_under_raw_starts_the_pipeline_through_eventbridge(synthesized):
    """Issue 19: the lake bucket sends its object events to EventBridge; a rule matches a .csv created under
    lake/raw/ in that bucket and starts the pipeline machine, with definitions.drop_input as the input, under
    a role that may start that machine and do nothing else."""
    _, templates, _ = synthesized
    storage, pipeline = templates["storage"], templates["pipeline"]
    (lake,) = [b for lid, b in _resources(storage, "AWS::S3::Bucket").items() if lid.startswith("Lake")]
    assert lake["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}

    rules = {r["Properties"]["Name"]: r["Properties"] for r in _resources(pipeline, "AWS::Events::Rule").values()}
    rule = rules["candlelake-raw-drop"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["object"] == {"key": [{"wildcard": "lake/raw/*.csv"}]}
    (bucket_name,) = pattern["detail"]["bucket"]["name"]
    assert "Fn::ImportValue" in bucket_name and "Lake" in json.dumps(bucket_name)  # the lake bucket, not any

    (target,) = rule["Targets"]
    machine_ids = {
        m["Properties"]["StateMachineName"]: logical_id
        for logical_id, m in _resources(pipeline, "AWS::StepFunctions::StateMachine").items()
    }
    assert target["Arn"] == {"Ref": machine_ids["candlelake-pipeline"]}
    transformer = target["InputTransformer"]
    assert transformer["InputPathsMap"] == {
        "detail-bucket-name": "$.detail.bucket.name",
        "detail-object-key": "$.detail.object.key",
    }
    template = json.loads(
        transformer["InputTemplate"].replace("<detail-bucket-name>", "B").replace("<detail-object-key>", "K")
    )
    assert template == definitions.drop_input("B", "K") == {"source": "csv", "csv_path": "s3://B/K"}

    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    role = _resources(pipeline, "AWS::IAM::Role")[role_id]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    (statement,) = _role_statements(pipeline, role_id)
    assert statement["Effect"] == "Allow" and _actions(statement) == ["states:StartExecution"]
    assert statement["Resource"] == {"Ref": machine_ids["candlelake-pipeline"]}


def _cloudwatch_statements(statements: list[dict]) -> list[dict]:
    def service(st: dict) -> object:
        principal = st.get("Principal")
        return principal.get("Service") if isinstance(principal, dict) else None

    return [st for st in statements if service(st) == "cloudwatch.amazonaws.com"]


def test_cloudwatch_may_publish_alarms_to_the_topic_with_a_key_it_can_use(synthesized):
    """Issue 17: with `alias/aws/sns` (whose policy admits no service) and a topic policy holding only
    enforce_ssl's Deny, every alarm failed to publish. Both grants are checked, and their scope."""
    _, templates, _ = synthesized
    pipeline = templates["pipeline"]
    (topic,) = _resources(pipeline, "AWS::SNS::Topic").values()
    key_ref = topic["Properties"]["KmsMasterKeyId"]
    keys = _resources(pipeline, "AWS::KMS::Key")
    assert isinstance(key_ref, dict) and key_ref["Fn::GetAtt"][0] in keys, f"not a key of the stack: {key_ref}"
    key = keys[key_ref["Fn::GetAtt"][0]]["Properties"]
    assert key["EnableKeyRotation"] is True
    (grant,) = _cloudwatch_statements(key["KeyPolicy"]["Statement"])
    assert grant["Effect"] == "Allow" and {"kms:Decrypt", "kms:GenerateDataKey*"} == set(_actions(grant))

    statements = [
        st
        for policy in _resources(pipeline, "AWS::SNS::TopicPolicy").values()
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    (publish,) = [st for st in _cloudwatch_statements(statements) if st["Effect"] == "Allow"]
    assert _actions(publish) == ["sns:Publish"]
    assert ":alarm:candlelake-*" in json.dumps(publish["Condition"]["ArnLike"]["aws:SourceArn"])
    assert "aws:SourceAccount" in publish["Condition"]["StringEquals"]
    alarms = [a for t in templates.values() for a in _resources(t, "AWS::CloudWatch::Alarm").values()]
    names = [a["Properties"]["AlarmName"] for a in alarms]
    assert len(names) >= 4 and all(n.startswith("candlelake-") for n in names), names  # all inside the scope


# --- api ----------------------------------------------------------------------------------------


def test_the_api_lambda_serves_the_lake_behind_an_iam_function_url(synthesized):
    _, templates, _ = synthesized
    api = templates["api"]
    fn = next(
        f["Properties"]
        for f in _resources(api, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "serving.app.handler"
    )
    assert fn["Runtime"] == "python3.12" and fn["TracingConfig"] == {"Mode": "Active"}
    env = fn["Environment"]["Variables"]
    assert "CANDLELAKE_STATE_MACHINE_ARN" in env and "/lake" in json.dumps(env["CANDLELAKE_LAKE_ROOT"])
    assert env["CANDLELAKE_OPERATOR_ARNS"] == OPERATOR_PATTERN  # only these callers may start runs
    assert fn["ReservedConcurrentExecutions"] == InfraSettings().api_reserved_concurrency == 10  # a flood is capped
    api.has_resource_properties("AWS::Lambda::Url", {"AuthType": "AWS_IAM"})
    api.has_resource_properties("AWS::Lambda::LayerVersion", {"CompatibleRuntimes": ["python3.12"]})
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in _resources(api, "AWS::CloudWatch::Alarm").values()}
    assert alarms["candlelake-api-url-5xx"]["MetricName"] == "Url5xxCount"
    assert alarms["candlelake-api-errors"]["MetricName"] == "Errors"


def test_the_api_can_read_published_models_and_start_runs_and_nothing_more(synthesized):
    _, templates, _ = synthesized
    statements = _statements(templates["api"])
    actions = {a for s in statements for a in _actions(s)}
    assert {"s3:GetObject", "s3:ListBucket", "states:StartExecution", "states:DescribeExecution"} <= actions
    runs = next(s for s in statements if "states:StartExecution" in _actions(s))
    assert set(_actions(runs)) == {"states:StartExecution", "states:ListExecutions"}  # one run at a time
    assert len(_resources_of(runs)) == 1 and "Ref" in json.dumps(_resources_of(runs)[0])  # the pipeline machine only
    assert not {a for a in actions if a.startswith("s3:") and a not in ("s3:GetObject", "s3:ListBucket")}
    get = next(s for s in statements if _actions(s) == ["s3:GetObject"])
    assert "/lake/gold/models/*" in json.dumps(get["Resource"])


def test_unknown_context_keys_are_refused():
    with pytest.raises(ValueError, match="unknown context key"):
        InfraSettings.from_context({"worker_typo": "G.1X"})
    assert InfraSettings.from_context({"workers": "5", "intraday_enabled": "false"}).workers == 5


def test_the_deployed_default_source_needs_only_what_the_glue_jobs_install():
    """`{}` from the Step Functions console ingests with the deployed default source: it must not be
    the bundled sample, whose data files come from packages no Glue job installs."""
    from lakehouse.sources import PACKAGES

    installed = set(packaging.GLUE_MODULES_COMMON)
    assert set(PACKAGES[definitions.DEPLOYED_DEFAULT_SOURCE]) <= installed
    assert not set(PACKAGES["sample"]) <= installed  # why the deployed default is not the local one
    assert definitions.LOCAL_DEFAULT_SOURCE == "sample"  # offline `make run` keeps the bundled data


def test_glue_job_logs_have_a_retention_and_no_role_may_associate_kms_keys(synthesized):
    _, templates, _ = synthesized
    pipeline = templates["pipeline"]
    groups = {
        g["Properties"]["LogGroupName"]: (i, g["Properties"])
        for i, g in _resources(pipeline, "AWS::Logs::LogGroup").items()
    }
    logical_id, group = groups["/aws-glue/candlelake-jobs"]
    assert group["RetentionInDays"] == 90
    for job in _resources(pipeline, "AWS::Glue::Job").values():
        args = job["Properties"]["DefaultArguments"]
        assert args["--enable-continuous-cloudwatch-log"] == "true"
        assert args["--continuous-log-logGroup"] == {"Ref": logical_id}  # created before any job can log
    for template in templates.values():
        assert not [s for s in _statements(template) if "logs:AssociateKmsKey" in _actions(s)]


def _requirements(path: Path) -> dict[str, list[str]]:
    """A pip requirements file as `name==version` → its hashes (continuation lines joined)."""
    text = path.read_text().replace("\\\n", " ")
    blocks = [line.split() for line in text.splitlines() if line and not line.lstrip().startswith("#")]
    return {b[0]: [h.removeprefix("--hash=") for h in b[1:] if h.startswith("--hash=")] for b in blocks}


@pytest.mark.parametrize("lock", ["requirements.lock", "serving/requirements.txt"])
def test_every_locked_requirement_carries_its_hashes_and_installs_require_them(lock):
    """A tampered or substituted wheel fails the install: every pin carries sha256 hashes and the
    installs that read these files (`make setup`, `make lambda-layer`, the size check) require them."""
    requirements = _requirements(REPO / lock)
    assert len(requirements) > 5
    for pin, hashes in requirements.items():
        assert "==" in pin and hashes and all(h.startswith("sha256:") and len(h) == 71 for h in hashes), pin
    makefile = (REPO / "Makefile").read_text().replace("\\\n", " ")
    installs = [line for line in makefile.splitlines() if "pip install" in line and f"-r {lock}" in line]
    assert installs and all("--require-hashes" in line for line in installs), installs
    generated = [line for line in makefile.splitlines() if "pip compile" in line and f"-o {lock}" in line]
    assert generated and all("--generate-hashes" in line for line in generated), generated


def test_the_dashboard_reaches_browsers_through_cloudfront_for_the_listed_networks_only(synthesized):
    """CloudFront signs its requests to the Function URL (an OAC; the URL keeps AWS_IAM auth), reads
    only, serves IPv4, and its viewer-request function holds the allowlist (tests/test_edge.py runs it)."""
    _, templates, _ = synthesized
    api = templates["api"]
    (distribution_id, distribution), *more = _resources(api, "AWS::CloudFront::Distribution").items()
    assert not more
    config = distribution["Properties"]["DistributionConfig"]
    behavior = config["DefaultCacheBehavior"]
    assert behavior["AllowedMethods"] == ["GET", "HEAD"] and behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["IPV6Enabled"] is False
    (association,) = behavior["FunctionAssociations"]
    assert association["EventType"] == "viewer-request"
    (function_id, function), *_ = _resources(api, "AWS::CloudFront::Function").items()
    assert association["FunctionARN"] == {"Fn::GetAtt": [function_id, "FunctionARN"]}
    assert function["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"
    assert "[[3405803776, 24], [3325256711, 32]]" in function["Properties"]["FunctionCode"]  # 203.0.113.0/24, …
    (oac,) = _resources(api, "AWS::CloudFront::OriginAccessControl").values()
    signing = oac["Properties"]["OriginAccessControlConfig"]
    assert (signing["OriginAccessControlOriginType"], signing["SigningBehavior"]) == ("lambda", "always")
    (url,) = _resources(api, "AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "AWS_IAM"  # everyone else still signs
    grants = [
        p["Properties"]
        for p in _resources(api, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "cloudfront.amazonaws.com"
    ]
    assert sorted(g["Action"] for g in grants) == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
    assert all(distribution_id in json.dumps(g["SourceArn"]) for g in grants)  # this distribution only


def test_delta_commits_on_s3_are_arbitrated_by_a_dynamodb_table_every_job_may_use(synthesized):
    """Delta's S3DynamoDBLogStore: the table (its key schema and TTL as the log store writes them), the
    jar and the `--conf` every job gets, and exactly the four actions its client calls on that table."""
    from infra import log_store as infra_log_store
    from lakehouse import log_store

    assert infra_log_store.log_store_conf("t", "eu-west-1") == log_store.glue_conf_argument("t", "eu-west-1")
    assert (infra_log_store.LOG_PARTITION_KEY, infra_log_store.LOG_SORT_KEY, infra_log_store.LOG_TTL_ATTRIBUTE) == (
        log_store.PARTITION_KEY,
        log_store.SORT_KEY,
        log_store.TTL_ATTRIBUTE,
    )
    _, templates, _ = synthesized
    pipeline = templates["pipeline"]
    (table_id, table), *others = _resources(pipeline, "AWS::DynamoDB::Table").items()
    assert not others
    props = table["Properties"]
    assert props["TableName"] == "candlelake-delta-log"
    assert props["KeySchema"] == [
        {"AttributeName": "tablePath", "KeyType": "HASH"},
        {"AttributeName": "fileName", "KeyType": "RANGE"},
    ]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expireTime", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    jobs = {j["Properties"]["Name"]: j["Properties"] for j in _resources(pipeline, "AWS::Glue::Job").values()}
    for name, job in jobs.items():
        conf = job["DefaultArguments"]["--conf"]
        assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension --conf " in _joined(conf), name
        for scheme in ("s3", "s3a"):
            assert f"spark.delta.logStore.{scheme}.impl=io.delta.storage.S3DynamoDBLogStore" in _joined(conf), name
        assert table_id in json.dumps(conf), name
        assert job["DefaultArguments"]["--extra-jars"]["Fn::Sub"].endswith(".jar"), name
        role = job["Role"]["Fn::GetAtt"][0]
        on_table = [s for s in _role_statements(pipeline, role) if any(a.startswith("dynamodb:") for a in _actions(s))]
        assert len(on_table) == 1, name
        assert sorted(_actions(on_table[0])) == sorted(infra_log_store.LOG_STORE_ACTIONS), name
        assert table_id in json.dumps(_resources_of(on_table[0])) and '"*"' not in json.dumps(on_table[0]), name


def test_weekly_maintenance_runs_its_own_machine_with_the_retention_floor_and_an_alarm(synthesized):
    _, templates, _ = synthesized
    pipeline = templates["pipeline"]
    rules = {r["Properties"]["Name"]: r["Properties"] for r in _resources(pipeline, "AWS::Events::Rule").values()}
    weekly = rules["candlelake-maintenance"]
    assert weekly["ScheduleExpression"] == InfraSettings().maintenance_schedule == "cron(0 6 ? * SUN *)"
    (target,) = weekly["Targets"]
    assert json.loads(_joined(target["Input"])) == {"retention_hours": "168"}
    machine_ids = {
        m["Properties"]["StateMachineName"]: logical_id
        for logical_id, m in _resources(pipeline, "AWS::StepFunctions::StateMachine").items()
    }
    assert target["Arn"] == {"Ref": machine_ids["candlelake-maintenance"]}
    alarms = {a["Properties"]["AlarmName"] for a in _resources(pipeline, "AWS::CloudWatch::Alarm").values()}
    assert "candlelake-maintenance-failed" in alarms


def test_every_table_has_one_owning_job_whose_role_may_write_it_and_maintenance_may_write_them_all():
    """The one list of who writes what (lakehouse/tables.py) and the IAM write prefixes (infra/lake_access.py)
    agree: each table's owner and its other writers may write its prefix, maintenance every table's, and no
    other job any table's."""
    from lakehouse.tables import every_table

    jobs = set(definitions.GLUE_JOBS.values())
    for tbl in every_table():
        assert tbl.owner in jobs, f"{tbl.name}: owner {tbl.owner!r} is not a Glue job"
        writers = {tbl.owner, *tbl.also_written_by, "maintain_tables"}
        assert writers <= jobs, tbl.name
        for job in jobs:
            may_write = any(f"{tbl.name}/".startswith(prefix) for prefix in lake_access.WRITES[job])
            assert may_write == (job in writers), f"{tbl.name}: {job} {'may' if may_write else 'may not'} write it"
