"""template.yaml: transformed offline by the SAM translator, every seed route reaching a handler that
imports, and the properties the deploy guide promises (runtime, table, secrets, least privilege...)."""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import pytest
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from ecpay_lambda.store.dynamodb import TABLE_DEFINITION

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"

# The seed's routes (its template.yaml and front end), which must keep working unchanged.
SEED_ROUTES = [
    ("POST", "/users"),
    ("GET", "/users"),
    ("DELETE", "/users/{userId}"),
    ("GET", "/users/{userId}/transactions"),
    ("POST", "/users/{userId}/transactions"),
    ("PATCH", "/users/{userId}/transactions/{transactionId}"),
    ("POST", "/users/{userId}/transactions/{transactionId}/requestPayment"),
    ("POST", "/users/{userId}/transactions/{transactionId}/return"),
    ("GET", "/users/{userId}/transactions/{transactionId}/clientReturn"),
]
# And the rest of design §3.
MORE_ROUTES = [
    ("GET", "/users/{userId}"),
    ("POST", "/users/{userId}/reopen"),
    ("PUT", "/users/{userId}/invoice-settings"),
    ("GET", "/events"),
    ("GET", "/users/{userId}/transactions/{transactionId}"),
    ("POST", "/users/{userId}/transactions/{transactionId}/paymentInfo"),
    ("POST", "/users/{userId}/transactions/{transactionId}/clientReturn"),
    ("POST", "/users/{userId}/transactions/{transactionId}/refund"),
    ("POST", "/users/{userId}/transactions/{transactionId}/sync"),
    # Recurring top-ups (issue 14): charges #2..n, and the plan's cancel / ReAuth.
    ("POST", "/users/{userId}/transactions/{transactionId}/periodReturn"),
    ("POST", "/users/{userId}/transactions/{transactionId}/recurring"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/healthz"),
]
PUBLIC = {"/openapi.json", "/docs", "/healthz"}
CALLBACKS = {"return", "paymentInfo", "periodReturn", "clientReturn"}


@cache
def source() -> dict[str, Any]:
    """template.yaml parsed with CloudFormation's intrinsic functions."""
    parsed: dict[str, Any] = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return parsed


def resources() -> dict[str, Any]:
    value: dict[str, Any] = source()["Resources"]
    return value


def functions() -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in resources().items() if v["Type"] == "AWS::Serverless::Function"}


@cache
def transformed(auth_mode: str = "token") -> dict[str, Any]:
    """The template after the SAM transform, as CloudFormation would run it (offline)."""
    template = copy.deepcopy(source())
    # What `sam package` does: the local CodeUri / ContentUri become S3 locations.
    assert template["Globals"]["Function"]["CodeUri"] == "src/function/"
    template["Globals"]["Function"]["CodeUri"] = "s3://bucket/function.zip"
    template["Resources"]["AppLayer"]["Properties"]["ContentUri"] = "s3://bucket/layer.zip"
    params = {
        "AuthMode": auth_mode,
        "JwtIssuer": "https://issuer.example",
        "JwtAudience": "client",
        "EcpayEnvironment": "stage",
    }
    session = boto3.session.Session(region_name="ap-northeast-1")
    output: dict[str, Any] = Translator({}, Parser(), boto_session=session).translate(
        template, parameter_values=params, get_managed_policy_map=lambda: {}
    )
    return output


def api_paths(auth_mode: str = "token") -> dict[str, dict[str, Any]]:
    apis = [r for r in transformed(auth_mode)["Resources"].values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    assert len(apis) == 1
    paths: dict[str, dict[str, Any]] = apis[0]["Properties"]["Body"]["paths"]
    return paths


def integrated_function(operation: dict[str, Any]) -> str:
    """The logical id of the function an OpenAPI operation invokes (through its ``live`` alias)."""
    uri = operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"]
    # Every route invokes the alias that gradual deploys move, never $LATEST.
    found = re.search(r"\$\{(\w+)Aliaslive\}", uri)
    assert found, uri
    return found.group(1)


def all_routes() -> Iterator[tuple[str, str]]:
    yield from SEED_ROUTES
    yield from MORE_ROUTES


@pytest.mark.parametrize("auth_mode", ["token", "jwt"])
def test_the_sam_transform_succeeds(auth_mode: str) -> None:
    out = transformed(auth_mode)
    kinds = {r["Type"] for r in out["Resources"].values()}
    assert {"AWS::ApiGatewayV2::Api", "AWS::Lambda::Function", "AWS::DynamoDB::Table"} <= kinds


@pytest.mark.parametrize(("method", "path"), list(all_routes()))
def test_every_route_reaches_a_handler_that_imports(method: str, path: str) -> None:
    operation = api_paths()[path][method.lower()]
    assert operation["x-amazon-apigateway-integration"]["payloadFormatVersion"] == "2.0"
    function = transformed()["Resources"][integrated_function(operation)]
    assert function["Type"] == "AWS::Lambda::Function"
    module_name, _, name = function["Properties"]["Handler"].rpartition(".")
    handler = getattr(importlib.import_module(module_name), name)
    assert callable(handler)


def test_no_route_is_left_over() -> None:
    declared = {(m.upper(), p) for p, ops in api_paths().items() for m in ops}
    assert declared == set(all_routes())


def test_callbacks_go_to_the_lean_function_and_management_to_the_resolver() -> None:
    for path, ops in api_paths().items():
        for operation in ops.values():
            handler = transformed()["Resources"][integrated_function(operation)]["Properties"]["Handler"]
            if path.rsplit("/", 1)[-1] in CALLBACKS:
                assert handler == "ecpay_lambda.api.ecpay_callbacks.handler", path
            else:
                assert handler == "ecpay_lambda.api.handlers.handler", path


def test_management_routes_carry_the_jwt_requirement_and_nothing_else_does() -> None:
    body_paths = source()["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"]
    in_body = {(m.upper(), p) for p, ops in body_paths.items() for m in ops}
    management = {
        (m, p) for m, p in all_routes() if p not in PUBLIC and p.rsplit("/", 1)[-1] not in CALLBACKS
    }
    assert in_body == management
    for path, ops in api_paths("jwt").items():
        for method, operation in ops.items():
            security = operation.get("security")
            if (method.upper(), path) in management:
                assert security == {"Fn::If": ["UseJwt", [{"JwtAuthorizer": []}], {"Ref": "AWS::NoValue"}]}
            else:
                assert security is None, (method, path)


def test_functions_run_python_312_or_newer_on_arm64_from_one_package() -> None:
    glob = source()["Globals"]["Function"]
    # The code is one layer built from src/; each function's own package is the placeholder.
    assert glob["CodeUri"] == "src/function/"
    assert glob["Layers"] == [{"Ref": "AppLayer"}]
    layer = resources()["AppLayer"]
    assert layer["Properties"]["ContentUri"] == "src/"
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert not any(p.suffix == ".py" for p in (ROOT / "src" / "function").rglob("*"))
    for name, props in functions().items():
        runtime = props.get("Runtime", glob["Runtime"])
        assert re.fullmatch(r"python3\.(1[2-9]|[2-9]\d)", runtime), (name, runtime)
        assert runtime in layer["Properties"]["CompatibleRuntimes"], name
        assert props.get("Architectures", glob["Architectures"]) == ["arm64"], name
        assert "CodeUri" not in props and "Layers" not in props, name


# What the Lambda Python runtime already has: boto3 and its dependencies.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "urllib3", "python-dateutil", "six"}
# Loaded here only because this venv has them: botocore uses certifi when present (else its own CA
# bundle), and setuptools' .pth hook imports itself at start-up.
ENVIRONMENT_ONLY = {"certifi", "setuptools"}


def _closure(names: set[str]) -> set[str]:
    """``names`` and every distribution they require (markers ignored: a superset is fine here)."""
    seen: set[str] = set()
    todo = [n.lower() for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" not in req:
                todo.append(re.split(r"[<>=!~;\[ (]", req, maxsplit=1)[0].lower())
    return {n.replace("_", "-") for n in seen}


def test_the_package_ships_what_the_handlers_import() -> None:
    requirements = {
        re.split(r"[<>=\[ ;]", line, maxsplit=1)[0].lower()
        for line in (ROOT / "src/requirements.txt").read_text().splitlines()
        if line.strip() and not line[0].isspace() and not line.startswith("#")
    }
    assert {"aws-lambda-powertools", "pydantic"} <= requirements
    code = (
        "import json, sys, importlib.metadata as md\n"
        "import ecpay_lambda.api.handlers, ecpay_lambda.api.ecpay_callbacks, ecpay_lambda.api.scheduled\n"
        "import ecpay_lambda.store.dynamodb\n"
        "dists = md.packages_distributions()\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "print(json.dumps(sorted({d.lower() for t in top for d in dists.get(t, [])})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    imported = (
        {d.replace("_", "-") for d in json.loads(proc.stdout)} - {"aws-lambda-ecpay-api"} - ENVIRONMENT_ONLY
    )
    shipped = _closure(requirements | RUNTIME_PROVIDED)
    assert imported <= shipped, f"imported on Lambda but not in src/requirements.txt: {imported - shipped}"


def test_the_table_matches_the_dynamodb_adapter() -> None:
    table = resources()["WalletTable"]
    assert table["DeletionPolicy"] == "Retain" and table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["BillingMode"] == TABLE_DEFINITION["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    key = lambda items: sorted(map(str, items))  # noqa: E731
    assert key(props["AttributeDefinitions"]) == key(TABLE_DEFINITION["AttributeDefinitions"])
    assert props["KeySchema"] == TABLE_DEFINITION["KeySchema"]
    assert props["GlobalSecondaryIndexes"] == TABLE_DEFINITION["GlobalSecondaryIndexes"]


def _policy_statements(function: str) -> list[dict[str, Any]]:
    """Every statement a function's role gets, after the transform (managed policies resolved)."""
    out = transformed()["Resources"]
    role = out[f"{function}Role"]["Properties"]
    statements: list[dict[str, Any]] = []
    for policy in role.get("Policies", []):
        statements += policy["PolicyDocument"]["Statement"]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn:
            statements += out[arn["Ref"]]["Properties"]["PolicyDocument"]["Statement"]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def _secret_ref(resource: Any) -> str:
    """The logical id of the secret a statement's Resource names (``Ref`` or SAM's ``Fn::Sub`` form)."""
    if isinstance(resource, dict) and "Ref" in resource:
        return str(resource["Ref"])
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        _, variables = resource["Fn::Sub"]
        return str(variables["secretArn"]["Ref"])
    raise AssertionError(f"unexpected secret resource {resource!r}")


@pytest.mark.parametrize("function", sorted(functions()))
def test_least_privilege(function: str) -> None:
    env = functions()[function].get("Environment", {}).get("Variables", {})
    statements = _policy_statements(function)
    secrets_read = set()
    for statement in statements:
        actions = _actions(statement)
        assert all("*" not in a for a in actions), (function, actions)
        forbidden = {"dynamodb:Scan", "dynamodb:DeleteItem", "dynamodb:DeleteTable", "dynamodb:CreateTable"}
        assert not forbidden & set(actions), (function, actions)
        if "secretsmanager:GetSecretValue" in actions:
            secrets_read.add(_secret_ref(statement["Resource"]))
    wanted = {env[v]["Ref"] for v in ("ECPAY_SECRET_ARN", "API_TOKEN_SECRET_ARN") if v in env}
    if "INVOICE_SECRET_ARN" in env:  # the e-invoice keys, named only while Invoicing=on (issue 13)
        assert env["INVOICE_SECRET_ARN"] == {"Fn::If": ["InvoicingOn", {"Ref": "InvoiceSecret"}, ""]}
        wanted.add("InvoiceSecret")
    assert secrets_read == wanted, function
    if env.get("ECPAY_CREDENTIALS") == "none":
        assert "EcpaySecret" not in secrets_read


def test_functions_that_serve_ecpay_have_its_secret() -> None:
    for name, props in functions().items():
        env = props.get("Environment", {}).get("Variables", {})
        paths = [e["Properties"].get("Path", "") for e in props.get("Events", {}).values()]
        talks_to_ecpay = name == "ReconcileFunction" or any(
            p.rsplit("/", 1)[-1]
            in {"return", "paymentInfo", "periodReturn", "requestPayment", "refund", "sync", "recurring"}
            for p in paths
        )
        assert ("ECPAY_SECRET_ARN" in env) == talks_to_ecpay, name
        assert (env.get("ECPAY_CREDENTIALS") == "none") == (not talks_to_ecpay), name


def test_reconciliation_runs_on_a_schedule_with_a_dead_letter_path() -> None:
    props = functions()["ReconcileFunction"]
    assert props["Handler"] == "ecpay_lambda.api.scheduled.handler"
    events = props["Events"]
    assert [e["Type"] for e in events.values()] == ["Schedule", "Schedule", "Schedule"]
    assert all(e["Properties"]["DeadLetterConfig"] for e in events.values())
    assert events["Statement"]["Properties"]["Input"] == '{"action": "statement"}'
    # The invoice job's own short schedule, enabled only with Invoicing=on (issue 13).
    assert events["Invoices"]["Properties"]["Input"] == '{"action": "invoices"}'
    assert events["Invoices"]["Properties"]["State"] == {"Fn::If": ["InvoicingOn", "ENABLED", "DISABLED"]}
    assert props["Environment"]["Variables"]["RECONCILE_DEADLINE_SECONDS"] == "240"
    assert props["DeadLetterQueue"]["Type"] == "SQS"
    importlib.import_module("ecpay_lambda.api.scheduled")


def test_operations_settings() -> None:
    api = resources()["HttpApi"]["Properties"]
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(api["DefaultRouteSettings"])
    alarms = [r["Properties"] for r in resources().values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    metric_names = {
        m["MetricStat"]["Metric"]["MetricName"]
        for a in alarms
        for m in a.get("Metrics", [])
        if "MetricStat" in m
    } | {a.get("MetricName") for a in alarms}
    assert {"Errors", "Throttles", "5xx"} <= metric_names
    log_groups = {k for k, v in resources().items() if v["Type"] == "AWS::Logs::LogGroup"}
    for props in functions().values():
        assert props["LoggingConfig"]["LogGroup"]["Ref"] in log_groups
    for name in log_groups:
        assert resources()[name]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    assert "ApiUrl" in source()["Outputs"]
    params = set(source()["Parameters"])
    assert {"StageName", "EcpayEnvironment", "CorsOrigin", "FrontendUrl", "AuthMode"} <= params


def test_secrets_are_not_in_the_template() -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert "pwFHCqoQZGmho4w6" not in text and "EkRm7iFT261dpevs" not in text
    secret = resources()["EcpaySecret"]["Properties"]["SecretString"]
    assert secret == '{"MerchantID":"","HashKey":"","HashIV":""}'


def test_the_package_is_built_once_by_the_makefile_that_ships_bytecode_and_locked_wheels() -> None:
    makefile = (ROOT / "src" / "Makefile").read_text(encoding="utf-8")
    assert "compileall" in makefile and "manylinux2014_aarch64" in makefile
    assert "--require-hashes" in makefile  # only the wheels uv.lock lists
    built = [n for n, r in resources().items() if r.get("Metadata", {}).get("BuildMethod") == "makefile"]
    assert built == ["AppLayer"]
    assert re.search(r"^build-AppLayer:", makefile, re.MULTILINE)
    # Functions without a build method and with one CodeUri share one build definition in sam build.
    for name, resource in resources().items():
        if resource["Type"] == "AWS::Serverless::Function":
            assert "BuildMethod" not in resource.get("Metadata", {}), name
