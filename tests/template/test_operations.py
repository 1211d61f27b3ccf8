"""Production operations in template.yaml, samconfig.toml and the lock: alarms that can reach a person,
money alarms on the metrics the code writes, gradual deploys that roll back, environments that cannot
fall back to stage, flood limits, tracing, the custom domain, and the Lambda package's locked list."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from tests.template.test_template import ROOT, functions, resources, source, transformed

from ecpay_lambda.api import metrics

# Metrics whose alarm means money may be at risk (the names the code writes, api/metrics.py).
MONEY_METRICS = {
    metrics.NOTIFICATION_FAMILIES["rejected"],
    metrics.CROSS_CHECK_FAILURES,
    metrics.STORE_ERRORS,
    metrics.CONFIG_ERRORS,
    metrics.REFUND_FAILURES,
    metrics.RECONCILE_CREDITED,
    metrics.RECONCILE_ERRORS,
    metrics.REFUNDS_NEEDING_REVIEW,
    metrics.STATEMENT_DISCREPANCIES,
    metrics.CLOSED_USER_CREDITS,
}
# Those a new version can cause at once: a deploy rolls back on them.
ROLLBACK_METRICS = {
    metrics.NOTIFICATION_FAMILIES["rejected"],
    metrics.CROSS_CHECK_FAILURES,
    metrics.STORE_ERRORS,
    metrics.CONFIG_ERRORS,
    metrics.REFUND_FAILURES,
}


def alarms() -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in resources().items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    value: list[dict[str, Any]] = document["Statement"]
    return value


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- the alarm topic -----------------------------------------------------------------------------------


def test_the_alarm_topic_is_one_cloudwatch_can_publish_to() -> None:
    topic = resources()["AlarmTopic"]["Properties"]
    # alias/aws/sns cannot be used by CloudWatch: its key policy is AWS's and names no service.
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmKey"}
    key = resources()["AlarmKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch = [
        s for s in statements(key["KeyPolicy"]) if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert len(cloudwatch) == 1 and cloudwatch[0]["Effect"] == "Allow"
    assert set(as_list(cloudwatch[0]["Action"])) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    # Scoped to this account's alarms of this stack (no confused deputy).
    assert cloudwatch[0]["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert "${AWS::StackName}-*" in cloudwatch[0]["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    # The key stays administrable by the account (else it could never be changed or deleted).
    admin = [s for s in statements(key["KeyPolicy"]) if "AWS" in s["Principal"]]
    assert admin and admin[0]["Action"] == "kms:*"


def test_the_topic_policy_lets_cloudwatch_publish_and_denies_nothing_it_needs() -> None:
    policy = resources()["AlarmTopicPolicy"]["Properties"]
    assert policy["Topics"] == [{"Ref": "AlarmTopic"}]
    allowed = [
        s
        for s in statements(policy["PolicyDocument"])
        if s["Effect"] == "Allow" and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [as_list(s["Action"]) for s in allowed] == [["sns:Publish"]]
    assert allowed[0]["Resource"] == {"Ref": "AlarmTopic"}
    assert not [s for s in statements(policy["PolicyDocument"]) if s["Effect"] == "Deny"]


def test_every_alarm_goes_to_the_topic() -> None:
    assert len(alarms()) >= 14
    for name, props in alarms().items():
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name


# --- money alarms on the code's metrics ----------------------------------------------------------------


def test_every_money_metric_has_an_alarm_on_the_stacks_own_series() -> None:
    glob_env = source()["Globals"]["Function"]["Environment"]["Variables"]
    # The code writes namespace EcpayWallet (its default) with service = the stack name.
    assert glob_env["POWERTOOLS_METRICS_NAMESPACE"] == metrics.NAMESPACE == "EcpayWallet"
    assert glob_env["POWERTOOLS_SERVICE_NAME"] == {"Ref": "AWS::StackName"}
    watched = {}
    for name, props in alarms().items():
        if props.get("Namespace") == metrics.NAMESPACE:
            assert props["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}], name
            assert (
                props["Statistic"] == "Sum" and props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            )
            # No data (a quiet hour) is not an alarm; any counted failure is.
            assert props["TreatMissingData"] == "notBreaching", name
            watched[props["MetricName"]] = name
    assert set(watched) == MONEY_METRICS


def test_a_wrong_hash_key_pages_within_minutes() -> None:
    rejected = next(p for p in alarms().values() if p.get("MetricName") == "NotificationsRejected")
    assert rejected["Period"] * rejected["EvaluationPeriods"] <= 600
    assert rejected["Threshold"] == {"Ref": "RejectedNotificationsThreshold"}
    assert source()["Parameters"]["RejectedNotificationsThreshold"]["Default"] <= 5


# --- gradual deploys --------------------------------------------------------------------------------------


def test_every_function_deploys_gradually_through_an_alias_and_rolls_back_on_alarms() -> None:
    glob = source()["Globals"]["Function"]
    assert glob["AutoPublishAlias"] == "live"
    preference = glob["DeploymentPreference"]
    assert preference["Type"] == {"Ref": "DeploymentStrategy"}
    assert source()["Parameters"]["DeploymentStrategy"]["Default"].startswith(("Canary", "Linear"))
    rollback = {a["Ref"] for a in preference["Alarms"]}
    by_metric = {p.get("MetricName"): n for n, p in alarms().items()}
    assert {by_metric[m] for m in ROLLBACK_METRICS} | {"FunctionErrorsAlarm"} == rollback
    for name, props in functions().items():
        # A new layer (the code) must publish a new version too, not only a new function package.
        assert props["AutoPublishAliasAllProperties"] is True, name
    out = transformed()["Resources"]
    groups = {k: v for k, v in out.items() if v["Type"] == "AWS::CodeDeploy::DeploymentGroup"}
    assert {f"{f}DeploymentGroup" for f in functions()} == set(groups)
    for group in groups.values():
        config = group["Properties"]["AlarmConfiguration"]
        assert config["Enabled"] is True
        assert {a["Name"]["Ref"] for a in config["Alarms"]} == rollback
        assert "DEPLOYMENT_STOP_ON_ALARM" in group["Properties"]["AutoRollbackConfiguration"]["Events"]


def test_the_schedules_invoke_the_alias_too() -> None:
    out = transformed()["Resources"]
    rules = [r for r in out.values() if r["Type"] == "AWS::Events::Rule"]
    targets = [t for r in rules for t in r["Properties"]["Targets"]]
    # Reconcile, the daily statement and the invoice job (issue 13).
    assert [t["Arn"] for t in targets] == [{"Ref": "ReconcileFunctionAliaslive"}] * 3
    # The daily rule asks for the statement run (ECPay's trade file of the day before).
    inputs = sorted(t.get("Input") or "" for t in targets)
    assert inputs == ["", '{"action": "invoices"}', '{"action": "statement"}']
    # The invoice rule runs only with Invoicing=on (a plain Enabled would be ENABLED whatever the If says).
    states = {r["Properties"]["Targets"][0].get("Input"): r["Properties"].get("State") for r in rules}
    assert states['{"action": "invoices"}'] == {"Fn::If": ["InvoicingOn", "ENABLED", "DISABLED"]}


def test_old_layer_versions_are_kept_for_rollbacks() -> None:
    assert resources()["AppLayer"]["Properties"]["RetentionPolicy"] == "Retain"


# --- flood limits, tracing, custom domain ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "parameter", "default"),
    [
        ("CallbacksFunction", "CallbacksReservedConcurrency", 20),
        ("ReconcileFunction", "ReconcileReservedConcurrency", 1),
    ],
)
def test_callbacks_and_reconcile_reserve_concurrency(function: str, parameter: str, default: int) -> None:
    assert source()["Parameters"][parameter]["Default"] == default
    assert source()["Parameters"][parameter]["MinValue"] == 0
    value = functions()[function]["ReservedConcurrentExecutions"]["Fn::If"]
    assert value[1] == {"Ref": parameter} and value[2] == {"Ref": "AWS::NoValue"}
    condition = source()["Conditions"][value[0]]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, 0]}]}


def test_tracing_is_a_parameter() -> None:
    assert source()["Globals"]["Function"]["Tracing"] == {"Ref": "TracingMode"}
    assert set(source()["Parameters"]["TracingMode"]["AllowedValues"]) == {"Active", "PassThrough"}


def test_a_custom_domain_maps_the_stage_and_becomes_the_callback_base() -> None:
    params = source()["Parameters"]
    assert params["DomainName"]["Default"] == "" and params["DomainCertificateArn"]["Default"] == ""
    domain = resources()["ApiDomain"]
    mapping = resources()["ApiDomainMapping"]
    assert domain["Condition"] == mapping["Condition"] == "HasCustomDomain"
    assert mapping["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    assert mapping["Properties"]["Stage"] == {"Ref": "StageName"}
    # The stage SAM creates must exist before the mapping: that logical id is what the transform makes.
    assert mapping["DependsOn"] in transformed()["Resources"]
    base = source()["Globals"]["Function"]["Environment"]["Variables"]["PUBLIC_BASE_URL"]["Fn::If"]
    assert base[1] == {"Ref": "PublicBaseUrl"}
    assert base[2] == {"Fn::If": ["HasCustomDomain", {"Fn::Sub": "https://${DomainName}"}, ""]}
    rule = source()["Rules"]["CustomDomainNeedsCertificate"]
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "DomainCertificateArn"}, ""]}]
    }


# --- environments -------------------------------------------------------------------------------------------


def samconfig() -> dict[str, Any]:
    return tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))


def overrides(env: str) -> dict[str, str]:
    text = samconfig()[env]["deploy"]["parameters"]["parameter_overrides"]
    return dict(re.findall(r'(\w+)="([^"]*)"', text))


def test_each_config_env_is_its_own_stack_and_ecpay_environment() -> None:
    config = samconfig()
    assert {"stage", "production"} <= set(config)
    stacks = {
        env: config[env]["deploy"]["parameters"]["stack_name"] for env in ("default", "stage", "production")
    }
    assert stacks["default"] == stacks["stage"] != stacks["production"]
    for env in ("default", "stage", "production"):
        assert config[env]["global"]["parameters"]["stack_name"] == stacks[env], env
    assert overrides("default")["EcpayEnvironment"] == overrides("stage")["EcpayEnvironment"] == "stage"
    production = overrides("production")
    assert production["EcpayEnvironment"] == "production"
    assert production["EcpayCrossCheck"] in ("true", "default")
    assert production["DeploymentStrategy"] != "AllAtOnce"


def test_no_stack_can_fall_back_to_stage_by_omission() -> None:
    # With no default, a stack is never created in a mode nobody chose; on update SAM keeps the
    # previous value of a parameter an env does not list.
    assert "Default" not in source()["Parameters"]["EcpayEnvironment"]


# --- checkov findings are justified -------------------------------------------------------------------------


def test_every_checkov_skip_says_why() -> None:
    skips = [
        (name, skip)
        for name, resource in resources().items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert len(skips) >= 20
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
        assert len(skip.get("comment", "").split()) >= 4, (name, skip["id"])
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^lint:(.|\n)*checkov .*--file template\.yaml", makefile, re.MULTILINE)


# --- the lock ---------------------------------------------------------------------------------------


def _uv() -> str:
    uv = Path(sys.executable).parent / "uv"
    assert uv.exists(), "uv is a dev dependency: make test installs it in the venv"
    return str(uv)


def _requirements(text: str) -> list[str]:
    """The requirement lines (package==version ; markers, and hashes), comments and blanks left out."""
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip() if raw.lstrip().startswith("#") else raw.strip()
        if line:
            lines.append(line)
    return lines


def test_the_lambda_requirements_are_the_lock_exported_with_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    command = re.search(r"^EXPORT_LAMBDA := (.+)$", makefile, re.MULTILINE)
    assert command, "Makefile: EXPORT_LAMBDA"
    exported = subprocess.run(
        [_uv(), *command.group(1).split()],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=120,
    ).stdout
    shipped = (ROOT / "src" / "requirements.txt").read_text(encoding="utf-8")
    assert _requirements(shipped) == _requirements(exported), (
        "src/requirements.txt has drifted from uv.lock: run `make requirements`"
    )
    pinned = [line for line in _requirements(shipped) if not line.startswith("--")]
    assert pinned and all(re.match(r"^[A-Za-z0-9_.-]+==[^ ;]+ ", line + " ") for line in pinned)
    assert shipped.count("--hash=sha256:") >= len(pinned)


def test_the_lambda_group_is_the_runtime_dependencies_minus_what_lambda_has() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    runtime = set(project["project"]["dependencies"])
    shipped = set(project["dependency-groups"]["lambda"])
    assert shipped <= runtime  # same specifiers, so one resolution in uv.lock serves both
    left_out = {re.split(r"[<>=!~ ]", d, maxsplit=1)[0].lower() for d in runtime - shipped}
    assert left_out == {"boto3", "sqlalchemy", "pyyaml"}


def test_the_lock_knows_every_dependency_of_pyproject() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    ours = next(p for p in lock["package"] if p["name"] == project["project"]["name"])
    locked = {(r["name"], r.get("specifier")) for r in ours["metadata"]["requires-dist"]}
    for dependency in project["project"]["dependencies"]:
        name = re.split(r"[<>=!~ \[]", dependency, maxsplit=1)[0].lower()
        assert any(n == name for n, _ in locked), f"{name} is in pyproject.toml but not in uv.lock"


def test_make_installs_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^\t\$\(BIN\)/uv sync .*--frozen", makefile, re.MULTILINE)
    assert re.search(r"^\$\(STAMP\): pyproject\.toml uv\.lock", makefile, re.MULTILINE)
