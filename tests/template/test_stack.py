"""The stack on moto's CloudFormation, and the handlers driven in process against what it created.

template.yaml is transformed by the SAM translator, created as a stack on moto (once for this module),
and then each request goes where the transformed API sends it: to the function's handler, with the
environment the stack gave that function (table name, secret ARNs...), against the stack's table and
secrets. Create a user, a deposit, check out, a signed ReturnURL notification (cross-checked with the
offline ECPay sandbox, the one thing swapped in: ECPay's stage servers are on the internet), the
balance, health, a reconciliation run and ``ecpay-lambda audit``. That is the wiring a lint cannot
see: a route reaching a function whose environment names the right table and secrets.

What moto's CloudFormation cannot create is listed in ``NOT_ON_MOTO`` (with why); the test fails when
that list and the template disagree, so a new resource type is either created or explicitly listed.
"""

from __future__ import annotations

import copy
import importlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from tests.support.moto_server import FAKE_AWS_ENV, UNSET_AWS_ENV
from tests.template.test_template import api_paths, integrated_function, source
from tests.unit.api.apitest import LambdaContext, form, make_event, match, return_fields, sign

from ecpay_lambda.api import composition
from ecpay_lambda.cli import main as cli

REGION = "ap-northeast-1"
STACK = "ecpay-wallet-test"
BUCKET = "deploy-artifacts"
PARAMETERS = {"EcpayEnvironment": "stage", "AuthMode": "token", "AlarmEmail": ""}

# Resource types moto's CloudFormation does not implement (moto 5.2), left out of the stack:
NOT_ON_MOTO = {
    "AWS::ApiGatewayV2::Api": "the HTTP API (routes are checked against the transformed body instead)",
    "AWS::ApiGatewayV2::Stage": "the API's stage",
    "AWS::ApiGatewayV2::DomainName": "the custom domain (only with DomainName)",
    "AWS::ApiGatewayV2::ApiMapping": "the custom domain's mapping (only with DomainName)",
    "AWS::Lambda::Alias": "the `live` aliases (requests go to the function they point at)",
    "AWS::CodeDeploy::Application": "gradual deploys",
    "AWS::CodeDeploy::DeploymentGroup": "gradual deploys (their alarms: tests/template/test_operations.py)",
    "AWS::CloudWatch::Alarm": "alarms (checked in tests/template/test_operations.py)",
    "AWS::SNS::TopicPolicy": "the alarm topic's policy",
    "AWS::SQS::QueuePolicy": "the dead-letter queue's policy for EventBridge",
    "AWS::Lambda::EventInvokeConfig": "the reconcile function's async retry settings",
    "AWS::Pipes::Pipe": "the wallet events Pipe (checked in tests/template/test_events.py)",
    "AWS::SecretsManager::Secret": "secrets: created through the Secrets Manager API as the template "
    "declares them, their ARNs put where the template refers to them",
}
# Resources that exist only to connect one of the above (their subject is not on moto either).
DEPENDENT_TYPES = {"AWS::Lambda::Permission"}  # API Gateway's and EventBridge's right to invoke an alias


def _refs(node: Any) -> set[str]:
    """Logical ids ``node`` refers to (Ref, GetAtt, ${...} in Sub)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
                if isinstance(value, list):
                    found |= _refs(value[1])
            else:
                found |= _refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= _refs(item)
    return found


def _substitute(node: Any, values: dict[str, Any]) -> Any:
    """``node`` with every ``{"Ref": X}`` for X in ``values`` replaced by its value."""
    if isinstance(node, dict):
        if set(node) == {"Ref"} and node["Ref"] in values:
            return values[node["Ref"]]
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, values) for v in node]
    return node


def _stack_template(secret_arns: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The transformed template as moto can create it, and what was left out (logical id -> type)."""
    template = copy.deepcopy(source())
    template["Globals"]["Function"]["CodeUri"] = f"s3://{BUCKET}/function.zip"
    template["Resources"]["AppLayer"]["Properties"]["ContentUri"] = f"s3://{BUCKET}/layer.zip"
    session = boto3.session.Session(region_name=REGION)
    out: dict[str, Any] = Translator({}, Parser(), boto_session=session).translate(
        template, parameter_values=dict(PARAMETERS), get_managed_policy_map=lambda: {}
    )
    resources = out["Resources"]
    left_out = {k for k, v in resources.items() if v["Type"] in NOT_ON_MOTO}
    left_out |= {
        k for k, v in resources.items() if v["Type"] in DEPENDENT_TYPES and _refs(v["Properties"]) & left_out
    }
    left_out_types = {name: resources.pop(name)["Type"] for name in sorted(left_out)}
    # Where the alias ARN is used (the schedule's target), the function's ARN stands in for it.
    aliases = {
        f"{f}Aliaslive": {"Fn::GetAtt": [f, "Arn"]}
        for f, v in resources.items()
        if v["Type"] == "AWS::Lambda::Function"
    }
    out = _substitute(out, {**secret_arns, **aliases})
    out["Outputs"] = {k: v for k, v in out.get("Outputs", {}).items() if not _refs(v) & left_out}
    dangling = {k: _refs(v) & left_out for k, v in out["Resources"].items() if _refs(v) & left_out}
    assert not dangling, f"resources refer to what is not on moto: {dangling}"
    return out, left_out_types


def _create_secrets() -> dict[str, str]:
    """The template's secrets, created as it declares them; logical id -> ARN."""
    client = boto3.client("secretsmanager", region_name=REGION)
    arns = {}
    for name, resource in source()["Resources"].items():
        if resource["Type"] != "AWS::SecretsManager::Secret":
            continue
        props = resource["Properties"]
        if "SecretString" in props:
            value = props["SecretString"]
        else:
            generate = props["GenerateSecretString"]
            value = client.get_random_password(
                PasswordLength=generate["PasswordLength"], ExcludePunctuation=generate["ExcludePunctuation"]
            )["RandomPassword"]
        arns[name] = client.create_secret(Name=f"{STACK}-{name}", SecretString=value)["ARN"]
    return arns


def _upload_packages() -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for key in ("function.zip", "layer.zip"):
        data = io.BytesIO()
        with zipfile.ZipFile(data, "w") as archive:
            archive.writestr("README.md", "placeholder: the handlers run in process")
        s3.put_object(Bucket=BUCKET, Key=key, Body=data.getvalue())


class Stack:
    """The created stack: its resources, and each function's configuration as Lambda holds it."""

    def __init__(self, left_out: dict[str, str]) -> None:
        self.left_out = left_out
        cfn = boto3.client("cloudformation", region_name=REGION)
        self.status = cfn.describe_stacks(StackName=STACK)["Stacks"][0]["StackStatus"]
        listed = cfn.describe_stack_resources(StackName=STACK)["StackResources"]
        # moto lists a resource whose condition is false (AlarmSubscription without AlarmEmail) with
        # no ids: it was not created, as on AWS.
        self.resources = {r["LogicalResourceId"]: r for r in listed if "LogicalResourceId" in r}
        awslambda = boto3.client("lambda", region_name=REGION)
        self.functions = {
            name: awslambda.get_function_configuration(FunctionName=r["PhysicalResourceId"])
            for name, r in self.resources.items()
            if r["ResourceType"] == "AWS::Lambda::Function"
        }

    def physical(self, logical_id: str) -> str:
        value: str = self.resources[logical_id]["PhysicalResourceId"]
        return value


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The stack, created once on moto (in process) for this module."""
    with pytest.MonkeyPatch.context() as env, mock_aws():
        for name, value in FAKE_AWS_ENV.items():
            env.setenv(name, value)
        for name in UNSET_AWS_ENV:
            env.delenv(name, raising=False)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        secret_arns = _create_secrets()
        _upload_packages()
        template, left_out = _stack_template(secret_arns)
        boto3.client("cloudformation", region_name=REGION).create_stack(
            StackName=STACK,
            TemplateBody=json.dumps(template),
            Capabilities=["CAPABILITY_IAM"],
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in PARAMETERS.items()],
        )
        yield Stack(left_out)


def test_the_stack_is_created(stack: Stack) -> None:
    assert stack.status == "CREATE_COMPLETE"
    kinds = {r["ResourceType"] for r in stack.resources.values()}
    assert {
        "AWS::DynamoDB::Table",
        "AWS::Lambda::Function",
        "AWS::Lambda::LayerVersion",
        "AWS::Lambda::Version",
        "AWS::IAM::Role",
        "AWS::IAM::ManagedPolicy",
        "AWS::KMS::Key",
        "AWS::SNS::Topic",
        "AWS::SQS::Queue",
        "AWS::Logs::LogGroup",
        "AWS::Events::Rule",
    } <= kinds
    assert len(stack.functions) == 6
    table = boto3.client("dynamodb", region_name=REGION).describe_table(
        TableName=stack.physical("WalletTable")
    )
    assert {k["AttributeName"] for k in table["Table"]["KeySchema"]} == {"pk", "sk"}
    topic = boto3.client("sns", region_name=REGION).get_topic_attributes(
        TopicArn=stack.physical("AlarmTopic")
    )
    # moto keeps a CloudFormation key policy unserialised (describe_key fails on it): compare ids.
    assert stack.physical("AlarmKey") in topic["Attributes"]["KmsMasterKeyId"]


def test_what_moto_cannot_create_is_exactly_the_list(stack: Stack) -> None:
    left_out = set(stack.left_out.values())
    # Everything listed is in the template (conditional resources too: CloudFormation decides)...
    assert left_out == set(NOT_ON_MOTO) | DEPENDENT_TYPES
    # ...and everything else was created: no resource type went missing silently.
    assert not set(stack.left_out) & set(stack.resources)
    created = {r["ResourceType"] for r in stack.resources.values()}
    assert not created & set(NOT_ON_MOTO)
    expected = set(source()["Resources"]) - {n for n, r in source()["Resources"].items() if "Condition" in r}
    plain = {n for n in expected if not source()["Resources"][n]["Type"].startswith("AWS::Serverless::")}
    assert plain - set(stack.left_out) <= set(stack.resources)


def test_every_function_names_the_stacks_table_and_secrets(stack: Stack) -> None:
    table = stack.physical("WalletTable")
    # The code's layer was published (moto's functions do not keep their Layers; the transform's
    # Layers of every function are checked in test_template.py).
    layers = [r for r in stack.resources.values() if r["ResourceType"] == "AWS::Lambda::LayerVersion"]
    assert len(layers) == 1 and layers[0]["LogicalResourceId"].startswith("AppLayer")
    published = boto3.client("lambda", region_name=REGION).list_layers()["Layers"]
    assert len(published) == 1
    assert published[0]["LatestMatchingVersion"]["CompatibleRuntimes"] == ["python3.12"]
    for name, config in stack.functions.items():
        env = config["Environment"]["Variables"]
        assert env["STORE_URL"] == f"dynamodb://{table}", name
        assert env["ECPAY_ENV"] == "stage" and env["POWERTOOLS_SERVICE_NAME"] == STACK, name
        for variable in ("ECPAY_SECRET_ARN", "API_TOKEN_SECRET_ARN"):
            if variable in env:
                boto3.client("secretsmanager", region_name=REGION).describe_secret(SecretId=env[variable])


# --- the handlers, driven as API Gateway and EventBridge would -------------------------------------------


def _function_of(method: str, path: str) -> str:
    """The logical id of the function the transformed API integrates ``method path`` with."""
    route = match(method, path)
    assert route, (method, path)
    operation = api_paths()[route[0].path][method.lower()]
    return integrated_function(operation)


class Invoker:
    """Runs a function's handler in process with the environment the stack gave it."""

    def __init__(self, stack: Stack, env: pytest.MonkeyPatch, overrides: dict[str, str]) -> None:
        self.stack = stack
        self.env = env
        self.overrides = overrides
        self.token = boto3.client("secretsmanager", region_name=REGION).get_secret_value(
            SecretId=stack.functions["UsersFunction"]["Environment"]["Variables"]["API_TOKEN_SECRET_ARN"]
        )["SecretString"]
        self._current: str | None = None

    def cold_start(self, function: str) -> Callable[[dict[str, Any], Any], Any]:
        """This process becomes ``function``'s execution environment (a fresh one on a switch)."""
        config = self.stack.functions[function]
        if self._current != function:
            for name in (
                "STORE_URL",
                "ECPAY_SECRET_ARN",
                "API_TOKEN_SECRET_ARN",
                "ECPAY_CREDENTIALS",
                "ECPAY_BASE_URL",
                "API_TOKEN",
                "ECPAY_MERCHANT_ID",
                "ECPAY_HASH_KEY",
                "ECPAY_HASH_IV",
            ):
                self.env.delenv(name, raising=False)
            for name, value in {**config["Environment"]["Variables"], **self.overrides}.items():
                self.env.setenv(name, value)
            self.env.setenv("AWS_LAMBDA_FUNCTION_NAME", config["FunctionName"])
            composition.reset()
            self._current = function
        module, _, attribute = config["Handler"].rpartition(".")
        handler: Callable[[dict[str, Any], Any], Any] = getattr(importlib.import_module(module), attribute)
        return handler

    def request(
        self, method: str, path: str, *, body: str | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        route, params = match(method, path) or (None, {})
        assert route is not None
        event = make_event(method, path, body=body, headers=headers, route=route, path_parameters=params)
        answer: dict[str, Any] = self.cold_start(_function_of(method, path))(event, LambdaContext())
        return answer

    def json(self, method: str, path: str, payload: dict[str, Any] | None = None, **headers: str) -> Any:
        answer = self.request(
            method,
            path,
            body=json.dumps(payload) if payload is not None else None,
            headers={"authorization": f"Bearer {self.token}", "content-type": "application/json", **headers},
        )
        assert answer["statusCode"] < 400, answer
        return json.loads(answer["body"])


def test_a_deposit_paid_end_to_end_on_the_stack(
    stack: Stack, ecpay_sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.MonkeyPatch.context() as env:
        ecpay_sandbox.settings(drop_callbacks=True)  # the callback URL is the (absent) API Gateway
        invoke = Invoker(stack, env, {"ECPAY_BASE_URL": ecpay_sandbox.base_url})

        user = invoke.json("POST", "/users", {"username": "stacky", "email": "stacky@example.com"})
        uid = user["user_id"]
        deposit = invoke.json(
            "POST", f"/users/{uid}/transactions", {"transaction_type": "deposit", "amount": 500}
        )
        tid = deposit["transaction_id"]
        form_fields = invoke.json(
            "POST", f"/users/{uid}/transactions/{tid}/requestPayment", None, accept="application/json"
        )
        fields = form_fields["fields"]
        assert form_fields["action"].startswith(ecpay_sandbox.base_url)
        assert fields["ReturnURL"].endswith(f"/Prod/users/{uid}/transactions/{tid}/return")
        status, _ = ecpay_sandbox.checkout(fields)
        assert status == 200
        ecpay_sandbox.pay(fields["MerchantTradeNo"])

        # ECPay's ReturnURL: signed with the stage merchant (the blank EcpaySecret means exactly that),
        # cross-checked with QueryTradeInfo (on by default outside the sandbox), credited once.
        capsys.readouterr()
        body = form(sign(return_fields(fields["MerchantTradeNo"], 500)))
        answer = invoke.request(
            "POST",
            f"/users/{uid}/transactions/{tid}/return",
            body=body,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert (answer["statusCode"], answer["body"]) == (200, "1|OK")
        emf = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"_aws"')]
        assert [d.get("NotificationsApplied") for d in emf] == [[1.0]]
        assert emf[0]["service"] == STACK

        assert invoke.json("GET", f"/users/{uid}")["balance"] == 500
        health = invoke.request("GET", "/healthz")
        assert health["statusCode"] == 200 and json.loads(health["body"])["store"] is True

        # The schedule: EventBridge invokes the reconcile function with its own environment.
        report = invoke.cold_start("ReconcileFunction")(
            {"id": "evt-1", "source": "aws.events"}, LambdaContext()
        )
        assert report["errors"] == [] and report["paid"] == 0

        # An operator's audit of the stack's table from a laptop.
        env.delenv("ECPAY_BASE_URL")
        capsys.readouterr()
        assert cli(["audit", "--store-url", f"dynamodb://{stack.physical('WalletTable')}", "--json"]) == 0
        audit = json.loads(capsys.readouterr().out)
        assert audit["clean"] is True and audit["users_checked"] == 1
    composition.reset()
