"""The local API Gateway over real HTTP: v2 events as AWS builds them, responses as AWS returns them."""

from __future__ import annotations

import base64
import http.client
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ecpay_lambda.local.gateway import ApiGateway
from ecpay_lambda.local.http import Request
from ecpay_lambda.local.server import LocalServer
from ecpay_lambda.local.static import StaticFiles
from ecpay_lambda.local.template_routes import RouteTable

HANDLERS = """
import base64, json
LAST = {}
def echo(event, context):
    LAST["event"] = event
    LAST["context"] = {
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "arn": context.invoked_function_arn,
        "request_id": context.aws_request_id,
    }
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(event)}
def shaped(event, context):
    kind = event["pathParameters"]["kind"]
    if kind == "bare":
        return {"hello": "world"}
    if kind == "binary":
        return {"statusCode": 201, "isBase64Encoded": True, "body": base64.b64encode(b"\\x00\\x01").decode(),
                "headers": {"content-type": "application/octet-stream", "x-flag": True}}
    if kind == "cookies":
        return {"statusCode": 200, "cookies": ["a=1; Path=/", "b=2"], "body": "ok"}
    if kind == "redirect":
        return {"statusCode": 303, "headers": {"location": "/next"}}
    if kind == "cors":
        return {"statusCode": 200, "headers": {"access-control-allow-origin": "*"}, "body": "x"}
    if kind == "badstatus":
        return {"statusCode": "abc"}
    if kind == "badbody":
        return {"statusCode": 200, "body": {"not": "a string"}}
    raise RuntimeError("secret detail that must not reach the client")
"""

TEMPLATE = """
Parameters:
  StageName: {Type: String, Default: Prod}
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      StageName: !Ref StageName
      CorsConfiguration:
        AllowOrigins: ["http://front.example"]
        AllowMethods: [GET, POST]
        AllowHeaders: [content-type, authorization]
        ExposeHeaders: [x-flag]
        MaxAge: 600
  Echo:
    Type: AWS::Serverless::Function
    Properties:
      Handler: local_fake_handlers.echo
      Timeout: 9
      MemorySize: 256
      Events:
        Post: {Type: HttpApi, Properties: {Path: "/things/{thingId}", Method: POST}}
        Get: {Type: HttpApi, Properties: {Path: "/things/{thingId}", Method: GET}}
  Shaped:
    Type: AWS::Serverless::Function
    Properties:
      Handler: local_fake_handlers.shaped
      Events:
        Get: {Type: HttpApi, Properties: {Path: "/shaped/{kind}", Method: GET}}
  Broken:
    Type: AWS::Serverless::Function
    Properties:
      Handler: local_missing_module.handler
      Events:
        Get: {Type: HttpApi, Properties: {Path: /broken, Method: GET}}
"""


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalServer]:
    (tmp_path / "local_fake_handlers.py").write_text(HANDLERS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE, encoding="utf-8")
    dashboard = tmp_path / "dashboard"
    dashboard.mkdir()
    (dashboard / "index.html").write_text("<h1>dashboard</h1>", encoding="utf-8")
    (dashboard / "app.js").write_text("console.log(1)", encoding="utf-8")
    (dashboard / ".secret").write_text("no", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("outside", encoding="utf-8")
    gateway = ApiGateway(RouteTable.from_file(template))
    srv = LocalServer("127.0.0.1", 0, [StaticFiles(dashboard), gateway], quiet=True)
    srv.start_background()
    yield srv
    srv.stop()
    sys.modules.pop("local_fake_handlers", None)


def _call(
    server: LocalServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, list[str]], bytes]:
    request = urllib.request.Request(server.base_url + path, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        with opener.open(request, timeout=5) as response:
            status, raw_headers, data = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, raw_headers, data = exc.code, exc.headers, exc.read()
    collected: dict[str, list[str]] = {}
    for key, value in raw_headers.items():
        collected.setdefault(key.lower(), []).append(value)
    return status, collected, data


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _event(server: LocalServer, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    status, _, body = _call(server, method, path, **kwargs)
    assert status == 200, body
    return dict(json.loads(body))


def test_form_post_becomes_a_base64_v2_event(server: LocalServer) -> None:
    body = b"RtnMsg=%E4%BA%A4%E6%98%93%E6%88%90%E5%8A%9F&CustomField1=&A=1+2"
    event = _event(
        server,
        "POST",
        "/things/t%201?x=1&x=2&y=&z=%2B",
        body=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": "a=1; b=2", "X-Multi": "v1"},
    )
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /things/{thingId}"
    assert event["rawPath"] == "/things/t 1"  # HTTP API decodes the path it hands the function
    assert event["rawQueryString"] == "x=1&x=2&y=&z=%2B"
    assert event["queryStringParameters"] == {"x": "1,2", "y": "", "z": "+"}
    assert event["pathParameters"] == {"thingId": "t 1"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body  # exact bytes, blank fields kept
    assert event["cookies"] == ["a=1", "b=2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert event["headers"]["x-multi"] == "v1"
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    context = event["requestContext"]
    assert context["http"]["method"] == "POST" and context["http"]["sourceIp"] == "127.0.0.1"
    assert context["http"]["path"] == "/things/t 1"
    assert context["routeKey"] == "POST /things/{thingId}" and context["stage"] == "$default"
    assert isinstance(context["timeEpoch"], int) and context["requestId"]


def test_json_body_is_text_and_get_has_no_body(server: LocalServer) -> None:
    event = _event(
        server, "POST", "/things/1", body=b'{"a": 1}', headers={"Content-Type": "application/json"}
    )
    assert event["isBase64Encoded"] is False and event["body"] == '{"a": 1}'
    event = _event(server, "GET", "/things/1")
    assert "body" not in event and event["isBase64Encoded"] is False
    assert "queryStringParameters" not in event and "cookies" not in event


def test_body_without_content_type_is_base64(server: LocalServer) -> None:
    event = _event(server, "POST", "/things/1", body=b"plain", headers={"Content-Type": ""})
    assert event["isBase64Encoded"] is True


def test_repeated_headers_are_joined_with_commas(server: LocalServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.putrequest("GET", "/things/1")
    connection.putheader("X-Dup", "one")
    connection.putheader("X-Dup", "two")
    connection.endheaders()
    event = json.loads(connection.getresponse().read())
    connection.close()
    assert event["headers"]["x-dup"] == "one,two"


def test_named_stage_prefix(server: LocalServer) -> None:
    event = _event(server, "GET", "/Prod/things/9")
    assert event["rawPath"] == "/Prod/things/9"  # as AWS: the stage stays in rawPath
    assert event["requestContext"]["stage"] == "Prod"
    assert event["pathParameters"] == {"thingId": "9"}


def test_lambda_context(server: LocalServer) -> None:
    _event(server, "GET", "/things/1")
    context = sys.modules["local_fake_handlers"].LAST["context"]
    assert context["function_name"] == "Echo" and context["memory"] == 256
    assert 0 < context["remaining"] <= 9000
    assert context["arn"].endswith(":function:Echo")


def test_non_ascii_path_is_decoded_as_utf8(server: LocalServer) -> None:
    # 64 characters, 128 UTF-8 bytes, 384 characters percent-encoded: the handler sees 64 characters.
    thing = "é綠" * 32
    event = _event(server, "GET", "/things/" + urllib.parse.quote(thing, safe=""))
    assert event["pathParameters"] == {"thingId": thing}
    assert event["rawPath"] == f"/things/{thing}"
    assert event["requestContext"]["http"]["path"] == f"/things/{thing}"


def test_unknown_route_is_api_gateway_404(server: LocalServer) -> None:
    unknown = [("GET", "/nope"), ("DELETE", "/things/1"), ("GET", "/things"), ("GET", "/Prod")]
    # TRACE and QUERY reach the gateway like any method (the stdlib server alone would answer 501).
    unknown += [("TRACE", "/things/1"), ("TRACE", "/nope"), ("QUERY", "/things/1")]
    for method, path in unknown:
        status, headers, body = _call(server, method, path)
        assert (status, body) == (404, b'{"message":"Not Found"}'), (method, path)
        assert headers["content-type"] == ["application/json"]


def test_response_shapes(server: LocalServer) -> None:
    status, headers, body = _call(server, "GET", "/shaped/bare")
    assert (status, json.loads(body)) == (200, {"hello": "world"})
    assert headers["content-type"] == ["application/json"]
    status, headers, body = _call(server, "GET", "/shaped/binary")
    assert (status, body) == (201, b"\x00\x01")
    assert headers["x-flag"] == ["true"] and headers["apigw-requestid"]
    status, headers, body = _call(server, "GET", "/shaped/cookies")
    assert headers["set-cookie"] == ["a=1; Path=/", "b=2"] and body == b"ok"
    status, headers, _ = _call(server, "GET", "/shaped/redirect")
    assert status == 303 and headers["location"] == ["/next"]


@pytest.mark.parametrize("kind", ["boom", "badstatus", "badbody"])
def test_handler_faults_are_a_bare_500(
    server: LocalServer, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    status, _, body = _call(server, "GET", f"/shaped/{kind}")
    assert (status, body) == (500, b'{"message":"Internal Server Error"}')
    assert b"secret detail" not in body


def test_unimportable_handler(server: LocalServer) -> None:
    status, _, body = _call(server, "GET", "/broken")
    assert (status, body) == (500, b'{"message":"Internal Server Error"}')


def test_preload_reports_unimportable_handlers(tmp_path: Path, server: LocalServer) -> None:
    gateway = next(app for app in server.apps if isinstance(app, ApiGateway))
    problems = gateway.preload()
    assert len(problems) == 1 and "local_missing_module" in problems[0]


def test_cors_preflight_and_headers(server: LocalServer) -> None:
    status, headers, _ = _call(
        server,
        "OPTIONS",
        "/things/1",
        headers={
            "Origin": "http://front.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Content-Type",
        },
    )
    assert status == 204
    assert headers["access-control-allow-origin"] == ["http://front.example"]
    assert headers["access-control-allow-methods"] == ["GET,POST"]
    assert headers["access-control-allow-headers"] == ["Content-Type"]
    assert headers["access-control-max-age"] == ["600"]
    status, headers, _ = _call(server, "GET", "/shaped/cors", headers={"Origin": "http://front.example"})
    assert headers["access-control-allow-origin"] == [
        "http://front.example"
    ]  # the gateway's, not the handler's *
    assert headers["access-control-expose-headers"] == ["x-flag"]
    status, headers, _ = _call(server, "GET", "/shaped/cors", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in headers


def test_payload_limit() -> None:
    table = RouteTable.from_template(
        {
            "Resources": {
                "F": {
                    "Type": "AWS::Serverless::Function",
                    "Properties": {"Handler": "m.f", "Events": {"E": {"Type": "HttpApi"}}},
                }
            }
        }
    )
    gateway = ApiGateway(table, resolver=lambda route: lambda event, context: {"statusCode": 204})
    big = Request("POST", "/x", "", (), b"x" * (10 * 1024 * 1024 + 1))
    response = gateway.handle(big)
    assert response is not None and response.status == 413
    small = gateway.handle(Request("POST", "/x", "", (), b"x"))
    assert small is not None and small.status == 204


def test_static_files(server: LocalServer) -> None:
    status, headers, body = _call(server, "GET", "/")
    assert (status, body) == (200, b"<h1>dashboard</h1>")
    assert headers["content-type"] == ["text/html; charset=utf-8"]
    status, headers, body = _call(server, "GET", "/static/app.js")
    assert status == 200 and body == b"console.log(1)" and "javascript" in headers["content-type"][0]
    status, headers, body = _call(server, "HEAD", "/static/app.js")
    assert status == 200 and body == b"" and headers["content-length"] == ["14"]
    for path in [
        "/static/.secret",
        "/static/../outside.txt",
        "/static/%2e%2e/outside.txt",
        "/static/",
        "/static/nope.js",
    ]:
        assert _call(server, "GET", path)[0] == 404, path
    assert _call(server, "POST", "/")[0] == 405


def test_a_burst_of_parallel_clients_is_served(server: LocalServer) -> None:
    def fetch(_: int) -> int:
        return _call(server, "GET", "/things/1")[0]

    with ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(fetch, range(256)))
    assert statuses == [200] * 256


def test_one_event_at_a_time_per_handler_module(tmp_path: Path) -> None:
    # Lambda never runs two events at once in one execution environment; module-level state such
    # as Powertools' resolver (it keeps the current event on the instance) relies on that.
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE, encoding="utf-8")
    state = {"inside": 0, "most": 0}
    guard = threading.Lock()
    entered = threading.Event()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with guard:
            state["inside"] += 1
            state["most"] = max(state["most"], state["inside"])
        entered.set()
        threading.Event().wait(0.02)  # widen the window in which a second event could enter
        with guard:
            state["inside"] -= 1
        return {"statusCode": 200, "body": "ok"}

    gateway = ApiGateway(RouteTable.from_file(template), resolver=lambda route: slow)
    request = Request("GET", "/things/1", "", (), b"")
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda _: gateway.handle(request), range(24)))
    assert entered.is_set()
    assert all(r is not None and r.status == 200 for r in statuses)
    assert state["most"] == 1
