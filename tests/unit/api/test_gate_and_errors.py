"""Authentication, unreadable requests, unknown routes, faults: every error is the JSON error document."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from tests.unit.api.apitest import TOKEN, Api, LambdaContext, make_event, match, to_resp

from ecpay_lambda.api import app, auth, composition, handlers, logs
from ecpay_lambda.config import parse_settings

USERS = "/users"


@pytest.fixture
def management_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the management function's loggers write (each handler keeps the stdout it was created with)."""
    buffer = io.StringIO()
    for logger in (handlers.logger, app.logger):
        for log_handler in logger.handlers:
            if isinstance(log_handler.formatter, logs.JsonFormatter):
                monkeypatch.setattr(log_handler, "stream", buffer)
    yield buffer


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong-token",
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        f"Bearer {TOKEN}x",
    ],
)
def test_management_routes_need_the_token(api_env: pytest.MonkeyPatch, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    resp = Api(token=None).request("GET", USERS, headers=headers)
    assert resp.status == 401
    assert resp.error_code == "unauthorized"
    assert resp.header("WWW-Authenticate") == "Bearer"
    assert TOKEN not in resp.body


def test_the_scheme_is_case_insensitive(api_env: pytest.MonkeyPatch) -> None:
    resp = Api(token=None).request("GET", USERS, headers={"Authorization": f"bearer   {TOKEN}"})
    assert resp.status == 200


def test_the_token_is_checked_before_the_body(api_env: pytest.MonkeyPatch) -> None:
    resp = Api(token="nope").request(
        "POST", USERS, body="{broken", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 401


def test_public_routes_need_no_token(api_env: pytest.MonkeyPatch) -> None:
    anonymous = Api(token=None)
    spec = anonymous.request("GET", "/openapi.json")
    assert spec.status == 200 and spec.json()["openapi"].startswith("3.")
    docs = anonymous.request("GET", "/docs")
    assert docs.status == 200 and "text/html" in (docs.header("Content-Type") or "")
    assert "swagger" in docs.body.lower()
    health = anonymous.request("GET", "/healthz")
    assert health.status == 200 and health.json() == {"status": "ok", "store": True}


def test_an_unset_token_leaves_local_routes_open(api_env: pytest.MonkeyPatch) -> None:
    api_env.delenv("API_TOKEN")
    composition.reset()
    assert Api(token=None).request("GET", USERS).status == 200


def test_an_unset_token_on_lambda_fails_closed(api_env: pytest.MonkeyPatch) -> None:
    api_env.delenv("API_TOKEN")
    api_env.setenv("AWS_LAMBDA_FUNCTION_NAME", "users")
    composition.reset()
    resp = Api(token=None).request("GET", USERS)
    assert resp.status == 503 and resp.error_code == "auth_not_configured"
    assert Api(token="anything").request("GET", USERS).status == 503
    assert Api(token=None).request("GET", "/healthz").status == 200


def test_jwt_mode_trusts_only_events_with_verified_claims(api_env: pytest.MonkeyPatch) -> None:
    api_env.setenv("AUTH_MODE", "jwt")
    composition.reset()
    refused = Api(token=None).request("GET", USERS)
    assert refused.status == 401
    route, params = match("GET", USERS)  # type: ignore[misc]
    event = make_event("GET", USERS, route=route, path_parameters=params)
    claims = {"sub": "operator", "cognito:groups": "[operators]"}
    event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    assert to_resp(handlers.handler(event, LambdaContext())).status == 200


def test_token_comparison() -> None:
    assert auth.token_matches("abc", "abc")
    assert not auth.token_matches("abc", "abd")
    assert not auth.token_matches("", "abc")
    assert not auth.token_matches("abc\udcff", "abc")  # lone surrogates do not crash the compare
    settings = parse_settings({"ECPAY_BASE_URL": "http://127.0.0.1:1", "API_TOKEN": "t"})
    ok = {"headers": {"authorization": "Bearer t"}}
    assert auth.check(ok, settings) is None


# --- unreadable requests --------------------------------------------------------------------------


def test_malformed_json_is_a_400(api: Api) -> None:
    resp = api.request("POST", USERS, body='{"username": "a",', headers={"Content-Type": "application/json"})
    assert resp.status == 400 and resp.error_code == "invalid_json"


def test_malformed_json_in_a_base64_body(api: Api) -> None:
    resp = api.request(
        "POST", USERS, body="{nope", headers={"Content-Type": "application/json"}, base64_body=True
    )
    assert resp.status == 400 and resp.error_code == "invalid_json"


def test_a_base64_json_body_is_decoded(api: Api) -> None:
    body = json.dumps({"username": "b64", "email": "b64@example.com"})
    resp = api.request(
        "POST", USERS, body=body, headers={"Content-Type": "application/json"}, base64_body=True
    )
    assert resp.status == 201 and resp.json()["username"] == "b64"


def test_an_unsupported_content_type_is_a_415(api: Api) -> None:
    resp = api.request("POST", USERS, body="username=a", headers={"Content-Type": "text/plain"})
    assert resp.status == 415 and resp.error_code == "unsupported_media_type"


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=x"])
def test_multipart_is_a_415(api: Api, content_type: str) -> None:
    # Found by schemathesis: Powertools tried to parse a boundary-less multipart body and raised.
    resp = api.request("POST", USERS, body="--x\r\n", headers={"Content-Type": content_type})
    assert resp.status == 415 and resp.error_code == "unsupported_media_type"


@pytest.mark.parametrize("base64_body", [False, True])
def test_a_huge_body_is_a_413(api: Api, base64_body: bool) -> None:
    body = json.dumps({"username": "a", "email": "a@example.com", "pad": "x" * 200_000})
    resp = api.request(
        "POST", USERS, body=body, headers={"Content-Type": "application/json"}, base64_body=base64_body
    )
    assert resp.status == 413 and resp.error_code == "payload_too_large"


def _raw_event(body: str, *, is_base64: bool) -> dict[str, Any]:
    route, params = match("POST", USERS)  # type: ignore[misc]
    event = make_event(
        "POST",
        USERS,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        route=route,
        path_parameters=params,
    )
    event |= {"body": body, "isBase64Encoded": is_base64}
    return event


def test_invalid_base64_is_a_400(api_env: pytest.MonkeyPatch) -> None:
    resp = to_resp(handlers.handler(_raw_event("***not base64***", is_base64=True), LambdaContext()))
    assert resp.status == 400 and resp.error_code == "bad_request"


def test_a_body_that_is_not_utf8_is_a_400(api_env: pytest.MonkeyPatch) -> None:
    latin1 = base64.b64encode('{"username": "caf\xe9"}'.encode("latin-1")).decode()
    resp = to_resp(handlers.handler(_raw_event(latin1, is_base64=True), LambdaContext()))
    assert resp.status == 400 and resp.error_code == "bad_request"


# --- unknown routes, faults, configuration ------------------------------------------------------


def test_a_path_no_route_serves_is_a_json_404(api_env: pytest.MonkeyPatch) -> None:
    event = make_event("GET", "/nowhere", headers={"Authorization": f"Bearer {TOKEN}"})
    resp = to_resp(handlers.handler(event, LambdaContext()))
    assert resp.status == 404 and resp.error_code == "route_not_found"
    wrong_method = make_event("PUT", USERS, headers={"Authorization": f"Bearer {TOKEN}"})
    assert to_resp(handlers.handler(wrong_method, LambdaContext())).status == 404


def test_an_unexpected_fault_is_a_bare_500(
    api: Api, monkeypatch: pytest.MonkeyPatch, management_log: io.StringIO
) -> None:
    service = composition.get_service()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom at /srv/secret/config.py with HashKey=abc")

    monkeypatch.setattr(service, "list_users", broken)
    monkeypatch.setattr(service.store, "list_active_users", broken)  # the default list (no closed users)
    resp = api.request("GET", USERS)
    assert resp.status == 500
    assert resp.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "Traceback" not in resp.body and "boom" not in resp.body
    logged = management_log.getvalue()
    # The trace goes to the log, with the request id as correlation id.
    assert "unhandled error" in logged and '"correlation_id"' in logged


def test_a_misconfigured_function_is_a_503_without_details(api: Api, api_env: pytest.MonkeyPatch) -> None:
    api_env.setenv("ECPAY_ENV", "production")
    composition.reset()
    resp = api.request("GET", USERS)
    assert resp.status == 503 and resp.error_code == "service_unavailable"
    assert "ECPAY" not in resp.body


def test_store_unreachable_makes_healthz_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable() -> None:
        raise ConnectionRefusedError("store unreachable")

    monkeypatch.setattr(composition.get_service().store, "probe_write", unreachable)
    resp = api.request("GET", "/healthz")
    assert resp.status == 503 and resp.json() == {"status": "degraded", "store": False}


# --- CORS and logging -----------------------------------------------------------------------------


def test_cors_headers_for_allowed_origins(api_env: pytest.MonkeyPatch) -> None:
    api_env.setenv("CORS_ORIGINS", "http://localhost:3000")
    composition.reset()
    ok = Api().request("GET", USERS, headers={"Origin": "http://localhost:3000"})
    assert ok.status == 200 and ok.header("Access-Control-Allow-Origin") == "http://localhost:3000"
    refused = Api(token=None).request("GET", USERS, headers={"Origin": "http://localhost:3000"})
    assert refused.status == 401 and refused.header("Access-Control-Allow-Origin") == "http://localhost:3000"
    other = Api().request("GET", USERS, headers={"Origin": "https://evil.example"})
    assert other.header("Access-Control-Allow-Origin") in (None, "")


def test_logs_are_json_with_the_request_id_as_correlation_id(api: Api, management_log: io.StringIO) -> None:
    api.request("GET", USERS, token="wrong")
    lines = [json.loads(line) for line in management_log.getvalue().splitlines() if line.startswith("{")]
    refused = [line for line in lines if line.get("message") == "request refused"]
    assert refused and refused[0]["correlation_id"] and refused[0]["service"] == "ecpay-lambda"
    assert "wrong" not in json.dumps(lines)  # the presented token is never logged
