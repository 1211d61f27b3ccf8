"""The OpenAPI document states the constraints the server really applies, and the credentials in force.

Where a constraint is a regular expression, the server checks the very pattern the document publishes;
these tests check that the server's other rules (stripping, ranges, the wallet's own checks) agree with
what a client can read from the document, on generated inputs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from tests.unit.api.apitest import Api
from tests.unit.api.conftest import create_deposit

from ecpay_lambda.api import composition
from ecpay_lambda.api.app import create_app, openapi_document
from ecpay_lambda.api.auth import auth_scheme
from ecpay_lambda.api.schemas import (
    AMOUNT_PATTERN,
    EMAIL_PATTERN,
    USERNAME_PATTERN,
    RefundRequest,
    UserCreate,
)
from ecpay_lambda.config import parse_settings
from ecpay_lambda.wallet.service import MAX_AMOUNT

_APP = create_app()


def _spec(auth: Any = "token") -> dict[str, Any]:
    return dict(json.loads(openapi_document(_APP, "/", auth)))


def _operations(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m.upper(), p): op for p, ops in spec["paths"].items() for m, op in ops.items()}


def test_operation_ids_are_readable_and_stable() -> None:
    ids = {key: op["operationId"] for key, op in _operations(_spec()).items()}
    assert ids == {
        ("POST", "/users"): "createUser",
        ("GET", "/users"): "listUsers",
        ("GET", "/events"): "listEvents",
        ("GET", "/users/{userId}"): "getUser",
        ("DELETE", "/users/{userId}"): "closeUser",
        ("POST", "/users/{userId}/reopen"): "reopenUser",
        ("PUT", "/users/{userId}/invoice-settings"): "putInvoiceSettings",
        ("POST", "/users/{userId}/transactions"): "createTransaction",
        ("GET", "/users/{userId}/transactions"): "listTransactions",
        ("GET", "/users/{userId}/transactions/{transactionId}"): "getTransaction",
        ("PATCH", "/users/{userId}/transactions/{transactionId}"): "updateTransaction",
        ("POST", "/users/{userId}/transactions/{transactionId}/requestPayment"): "requestPayment",
        ("POST", "/users/{userId}/transactions/{transactionId}/refund"): "refundDeposit",
        ("POST", "/users/{userId}/transactions/{transactionId}/sync"): "syncDeposit",
        ("POST", "/users/{userId}/transactions/{transactionId}/recurring"): "recurringAction",
        ("GET", "/healthz"): "getHealth",
    }


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "none"),  # local mode without API_TOKEN: open
        ({"API_TOKEN": "t"}, "token"),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f"}, "token"),  # on Lambda a missing token fails closed (503)
        ({"AUTH_MODE": "jwt"}, "jwt"),
    ],
)
def test_the_auth_scheme_follows_the_settings(env: dict[str, str], expected: str) -> None:
    sandbox = {"ECPAY_BASE_URL": "http://127.0.0.1:9"}
    assert auth_scheme(parse_settings({**sandbox, **env})) == expected


def test_open_mode_declares_no_credentials() -> None:
    spec = _spec("none")
    assert "securitySchemes" not in spec.get("components", {})
    for key, op in _operations(spec).items():
        assert "security" not in op, key
        assert "401" not in op["responses"], key
    assert "no route requires credentials" in spec["info"]["description"]


@pytest.mark.parametrize("auth", ["token", "jwt"])
def test_protected_modes_declare_bearer_auth_on_every_management_route(auth: str) -> None:
    spec = _spec(auth)
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert scheme.get("bearerFormat") == ("JWT" if auth == "jwt" else None)
    for (method, path), op in _operations(spec).items():
        if path == "/healthz":
            assert "security" not in op
        else:
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            assert "401" in op["responses"], (method, path)


def test_the_served_document_follows_the_running_mode(api_env: pytest.MonkeyPatch) -> None:
    protected = Api().request("GET", "/openapi.json", token=None).json()
    assert protected["paths"]["/users"]["get"]["security"] == [{"bearerAuth": []}]
    api_env.delenv("API_TOKEN")
    composition.reset()
    opened = Api(token=None).request("GET", "/openapi.json").json()
    assert "security" not in opened["paths"]["/users"]["get"]
    assert Api(token=None).request("GET", "/users").status == 200  # and it is really open


def test_every_route_declares_503_with_retry_after() -> None:
    for key, op in _operations(_spec()).items():
        if key[1] != "/healthz":
            assert "Retry-After" in op["responses"]["503"]["headers"], key


# Characters around the edges of what the patterns and the stripping treat specially.
_TRICKY = st.sampled_from(
    [" ", "\t", "\n", "\x0b", "\x1c", "\x1f", "\x7f", "\x85", "\xa0", "\u2003", "\u200b", "\u3000", "\ufeff"]
)
# Lone surrogates are left out: JSON text cannot carry them as characters (pydantic refuses them).
_TEXT = st.text(
    st.one_of(_TRICKY, st.sampled_from("a綠@.é0"), st.characters(exclude_categories=["Cs"])), max_size=70
)


def _accepted(username: str, email: str) -> bool:
    try:
        UserCreate(username=username, email=email)
    except ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_username_pattern_is_exactly_what_the_server_accepts(text: str) -> None:
    by_schema = re.fullmatch(USERNAME_PATTERN, text) is not None and len(text) <= 64
    assert _accepted(text, "a@b") is by_schema


@settings(max_examples=300, deadline=None)
@given(_TEXT)
def test_email_pattern_is_exactly_what_the_server_accepts(text: str) -> None:
    by_schema = re.fullmatch(EMAIL_PATTERN, text) is not None and len(text) <= 254
    assert _accepted("alice", text) is by_schema


def test_stripped_names_keep_inner_spaces() -> None:
    user = UserCreate(username="\u3000 Ada  Lovelace\t", email=" ada@example.com\n")
    assert (user.username, user.email) == ("Ada  Lovelace", "ada@example.com")


def _amount_accepted(value: object) -> bool:
    try:
        RefundRequest(amount=value)  # type: ignore[arg-type]
    except ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text("0123456789-+. ", max_size=11), st.integers(-5, MAX_AMOUNT * 3).map(str)))
def test_amount_strings_accepted_exactly_as_the_pattern_says(text: str) -> None:
    assert _amount_accepted(text) is (re.fullmatch(AMOUNT_PATTERN, text) is not None)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (1, True),
        (MAX_AMOUNT, True),
        (MAX_AMOUNT + 1, False),
        (0, False),
        ("1", True),
        (str(MAX_AMOUNT), True),
        (str(MAX_AMOUNT + 1), False),
        ("0", False),
        ("010", False),
        (100.0, True),  # JSON Schema's "integer" includes 100.0
        (100.5, False),
        (True, False),
    ],
)
def test_amount_bounds(value: object, ok: bool) -> None:
    assert _amount_accepted(value) is ok


def test_an_integral_float_amount_is_that_many_twd(api: Api, user: dict[str, Any]) -> None:
    resp = api.request(
        "POST",
        f"/users/{user['user_id']}/transactions",
        json_body={"transaction_type": "deposit", "amount": 100.0},
    )
    assert resp.status == 201, resp.body
    assert resp.json()["amount"] == 100


_ACTIONS = [None, "complete", "cancel"]
_STATUSES = [None, "completed", "cancelled"]


@pytest.mark.parametrize("action", _ACTIONS)
@pytest.mark.parametrize("status", _STATUSES)
def test_update_body_schema_matches_the_server(
    api: Api, user: dict[str, Any], action: str | None, status: str | None
) -> None:
    spec = _spec()
    body_schema = {"$ref": "#/components/schemas/WithdrawUpdate", "components": spec["components"]}
    body = {k: v for k, v in (("action", action), ("status", status)) if v is not None}
    valid = jsonschema.Draft202012Validator(body_schema).is_valid(body)
    deposit = create_deposit(api, user["user_id"], 100)
    resp = api.request(
        "PATCH", f"/users/{user['user_id']}/transactions/{deposit['transaction_id']}", json_body=body
    )
    # A deposit cannot be completed (409) and, until every attempt is known unpayable, may refuse a
    # cancel: whatever the outcome, a schema-valid body is never refused as invalid, and vice versa.
    assert (resp.status != 422) is valid, (body, resp.status, resp.body)
