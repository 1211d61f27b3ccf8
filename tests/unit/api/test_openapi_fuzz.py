"""Schemathesis over the generated OpenAPI spec, in process: no generated request may cause a 5xx.

Requests reach the handlers the way API Gateway would deliver them: a tiny WSGI adapter turns each
request into a payload-2.0 event routed by template.yaml (bodies base64-encoded like HTTP API does).
The store is the real WalletService on a fresh SQLite file, seeded with a user and transactions so
generated ids sometimes hit real rows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from tests.unit.api.apitest import STAGE, TOKEN, Api, LambdaContext, handler_of, make_event, match
from tests.unit.api.conftest import SETTINGS_VARIABLES, UNUSED_ECPAY

from ecpay_lambda.api import composition
from ecpay_lambda.api.app import create_app, openapi_document

_SPEC = json.loads(openapi_document(create_app()))
schema = schemathesis.openapi.from_dict(_SPEC)

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
_TEXT_TYPES = ("application/json",)


def wsgi_app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """WSGI -> API Gateway v2 event -> the template's handler -> WSGI."""
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO") or "/"
    if path.startswith(f"/{STAGE}/"):
        path = path[len(STAGE) + 1 :]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    found = match(method, path)
    if found is None:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"message":"Not Found"}']
    route, params = found
    query = dict(
        pair.split("=", 1) if "=" in pair else (pair, "")
        for pair in (environ.get("QUERY_STRING") or "").split("&")
        if pair
    )
    from urllib.parse import unquote_plus  # noqa: PLC0415

    query = {unquote_plus(k): unquote_plus(v) for k, v in query.items()}
    content_type = headers.get("content-type", "").split(";")[0].strip()
    is_text = content_type.startswith("text/") or content_type in _TEXT_TYPES
    event = make_event(
        method, path, headers=headers, query=query or None, route=route, path_parameters=params
    )
    if body:
        if is_text:
            event["body"] = body.decode("utf-8", errors="surrogateescape")
        else:
            event |= {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}
    raw = handler_of(route)(event, LambdaContext())
    status = int(raw["statusCode"])
    start_response(f"{status} X", [(k, str(v)) for k, v in (raw.get("headers") or {}).items()])
    out = raw.get("body") or ""
    return [
        base64.b64decode(out) if raw.get("isBase64Encoded") else out.encode("utf-8", errors="surrogatepass")
    ]


schema.app = wsgi_app


@pytest.fixture(scope="module")
def seeded_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One store for the whole module (hypothesis runs many examples per test), with some data in it."""
    mp = pytest.MonkeyPatch()
    for name in SETTINGS_VARIABLES:
        mp.delenv(name, raising=False)
    db = Path(tmp_path_factory.mktemp("fuzz")) / "wallet.db"
    mp.setenv("STORE_URL", f"sqlite:///{db}")
    mp.setenv("ECPAY_ENV", "sandbox")
    mp.setenv("ECPAY_BASE_URL", UNUSED_ECPAY)
    mp.setenv("API_TOKEN", TOKEN)
    composition.reset()
    api = Api()
    user = api.request("POST", "/users", json_body={"username": "fuzz", "email": "fuzz@example.com"}).json()
    api.request(
        "POST",
        f"/users/{user['user_id']}/transactions",
        json_body={"transaction_type": "deposit", "amount": 10},
    )
    yield
    composition.reset()
    mp.undo()


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_generated_request_causes_a_server_error(case: Any, seeded_store: None) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    case.validate_response(response, checks=[not_a_server_error])


def test_the_spec_documents_every_management_route() -> None:
    operations = {(m.upper(), p) for p, ops in _SPEC["paths"].items() for m in ops}
    expected = {
        ("POST", "/users"),
        ("GET", "/users"),
        ("GET", "/users/{userId}"),
        ("DELETE", "/users/{userId}"),
        ("POST", "/users/{userId}/reopen"),
        ("PUT", "/users/{userId}/invoice-settings"),
        ("POST", "/users/{userId}/transactions"),
        ("GET", "/users/{userId}/transactions"),
        ("GET", "/users/{userId}/transactions/{transactionId}"),
        ("PATCH", "/users/{userId}/transactions/{transactionId}"),
        ("POST", "/users/{userId}/transactions/{transactionId}/requestPayment"),
        ("POST", "/users/{userId}/transactions/{transactionId}/refund"),
        ("POST", "/users/{userId}/transactions/{transactionId}/sync"),
        ("POST", "/users/{userId}/transactions/{transactionId}/recurring"),
        ("GET", "/events"),
        ("GET", "/healthz"),
    }
    assert operations == expected
    assert "bearerAuth" in _SPEC["components"]["securitySchemes"]
    for path, ops in _SPEC["paths"].items():
        for method, op in ops.items():
            assert op.get("security") == ([{"bearerAuth": []}] if path != "/healthz" else None), (
                method,
                path,
            )
