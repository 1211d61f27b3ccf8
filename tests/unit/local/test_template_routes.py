"""Reading HttpApi routes from a SAM template and matching them as API Gateway does."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecpay_lambda.local.template_routes import RouteTable, TemplateError, load_template

TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: Prod}
  Origin: {Type: String, Default: "http://localhost:5173"}
Globals:
  Function:
    CodeUri: src/
    Handler: app.handlers.default
    Timeout: 7
    Environment:
      Variables:
        TABLE: !Ref Table
        ARN: !GetAtt Table.Arn
        URL: !Sub "https://${AWS::Region}.example"
Resources:
  Table:
    Type: AWS::DynamoDB::Table
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      StageName: !Ref Stage
      CorsConfiguration:
        AllowOrigins: [!Ref Origin]
        AllowMethods: [GET, POST]
        AllowHeaders: [content-type]
        MaxAge: 60
  Users:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handlers.users
      MemorySize: 256
      Events:
        List: {Type: HttpApi, Properties: {ApiId: !Ref Api, Path: /users, Method: get}}
        Me: {Type: HttpApi, Properties: {Path: /users/me, Method: GET}}
        One: {Type: HttpApi, Properties: {Path: "/users/{userId}", Method: GET}}
        AnyOne: {Type: HttpApi, Properties: {Path: "/users/{userId}", Method: ANY}}
        Deep: {Type: HttpApi, Properties: {Path: "/users/{userId}/files/{proxy+}", Method: GET}}
        Rest: {Type: Api, Properties: {Path: /rest, Method: GET}}
  Fallback:
    Type: AWS::Serverless::Function
    Properties:
      Events:
        Everything: {Type: HttpApi}
        Greedy: {Type: HttpApi, Properties: {Path: "/{proxy+}", Method: ANY}}
  Scheduled:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.jobs.run
      Events:
        Tick: {Type: Schedule, Properties: {Schedule: rate(5 minutes)}}
"""


@pytest.fixture
def table(tmp_path: Path) -> RouteTable:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    return RouteTable.from_file(path)


def test_loader_tolerates_intrinsic_tags(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    data = load_template(path)
    variables = data["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["TABLE"] == {"Ref": "Table"}
    assert variables["ARN"] == {"Fn::GetAtt": ["Table", "Arn"]}
    assert variables["URL"] == {"Fn::Sub": "https://${AWS::Region}.example"}


def test_routes_handlers_and_defaults(table: RouteTable) -> None:
    keys = {route.route_key: route for route in table.routes}
    assert set(keys) == {
        "GET /users",
        "GET /users/me",
        "GET /users/{userId}",
        "ANY /users/{userId}",
        "GET /users/{userId}/files/{proxy+}",
        "$default",
        "ANY /{proxy+}",
    }  # the REST (Type: Api) and Schedule events are not HTTP API routes
    users = keys["GET /users"]
    assert (users.handler_module, users.handler_function) == ("app.handlers", "users")
    assert users.timeout == 7 and users.memory_size == 256 and users.function_name == "Users"
    assert keys["$default"].handler == "app.handlers.default"  # from Globals
    assert table.stage == "Prod"
    assert table.cors is not None and table.cors.allow_origins == ("http://localhost:5173",)


@pytest.mark.parametrize(
    ("method", "path", "route_key", "params"),
    [
        ("GET", "/users", "GET /users", {}),
        ("GET", "/users/me", "GET /users/me", {}),  # a literal beats {userId}
        ("GET", "/users/u1", "GET /users/{userId}", {"userId": "u1"}),
        ("DELETE", "/users/u1", "ANY /users/{userId}", {"userId": "u1"}),  # a method beats ANY
        ("GET", "/users/a%20b", "GET /users/{userId}", {"userId": "a b"}),  # decoded
        (
            "GET",
            "/users/u1/files/a/b.txt",
            "GET /users/{userId}/files/{proxy+}",
            {"userId": "u1", "proxy": "a/b.txt"},
        ),
        ("GET", "/users/u1/files", "ANY /{proxy+}", {"proxy": "users/u1/files"}),  # greedy needs a segment
        ("POST", "/users", "ANY /{proxy+}", {"proxy": "users"}),
        ("GET", "/", "$default", {}),
    ],
)
def test_matching_priority(
    table: RouteTable, method: str, path: str, route_key: str, params: dict[str, str]
) -> None:
    match = table.match(method, path)
    assert match is not None
    assert match.route.route_key == route_key
    assert match.path_parameters == params


def test_no_match_without_catch_all(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: m.f\n"
        "      Events:\n        E: {Type: HttpApi, Properties: {Path: '/a/{id}', Method: GET}}\n",
        encoding="utf-8",
    )
    table = RouteTable.from_file(path)
    assert table.match("GET", "/a") is None
    assert table.match("GET", "/a/") is None  # an empty segment is not a parameter value
    assert table.match("POST", "/a/1") is None
    assert table.match("GET", "/a/1/b") is None
    assert table.stage is None and table.cors is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- just a list", "not a mapping"),
        ("Resources: {}", "no HttpApi events"),
        ("Parameters: {}", "no Resources"),
        (
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: !Ref H\n"
            "      Events: {E: {Type: HttpApi, Properties: {Path: /a, Method: GET}}}\n",
            "Handler",
        ),
        (
            "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: m.f\n"
            "      Events:\n        A: {Type: HttpApi, Properties: {Path: /a, Method: GET}}\n"
            "        B: {Type: HttpApi, Properties: {Path: /a, Method: GET}}\n",
            "defined twice",
        ),
        ("Resources: [unclosed", "not valid YAML"),
    ],
)
def test_template_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TemplateError, match=problem):
        RouteTable.from_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read"):
        RouteTable.from_file(tmp_path / "nope.yaml")


def test_the_project_template_routes_every_documented_route() -> None:
    template = Path(__file__).resolve().parents[3] / "template.yaml"
    if not template.exists():
        pytest.fail("template.yaml is missing at the repository root")
    table = RouteTable.from_file(template)
    expected = [
        ("POST", "/users"),
        ("GET", "/users"),
        ("GET", "/users/u1"),
        ("DELETE", "/users/u1"),
        ("POST", "/users/u1/transactions"),
        ("GET", "/users/u1/transactions"),
        ("GET", "/users/u1/transactions/t1"),
        ("PATCH", "/users/u1/transactions/t1"),
        ("POST", "/users/u1/transactions/t1/requestPayment"),
        ("POST", "/users/u1/transactions/t1/return"),
        ("POST", "/users/u1/transactions/t1/paymentInfo"),
        ("GET", "/users/u1/transactions/t1/clientReturn"),
        ("POST", "/users/u1/transactions/t1/clientReturn"),
        ("POST", "/users/u1/transactions/t1/refund"),
        ("POST", "/users/u1/transactions/t1/sync"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/healthz"),
    ]
    missing = [f"{m} {p}" for m, p in expected if table.match(m, p) is None]
    assert missing == []
    assert table.match("GET", "/nowhere") is None


def test_parameter_overrides_replace_defaults(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE, encoding="utf-8")
    table = RouteTable.from_file(path, {"Origin": "http://127.0.0.1:8080"})
    assert table.cors is not None and table.cors.allow_origins == ("http://127.0.0.1:8080",)
    # An override of an undeclared parameter changes nothing else.
    assert RouteTable.from_file(path, {"Nope": "x"}).cors == RouteTable.from_file(path).cors
