"""Fixtures for the API tests: the real WalletService on a fresh SQLite file, configured by env vars."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.support.clock import daytime_offset
from tests.unit.api.apitest import TOKEN, Api

from ecpay_lambda.api import composition

# Every variable the settings read: tests start from none of them set.
SETTINGS_VARIABLES = (
    "ECPAY_ENV",
    "ECPAY_BASE_URL",
    "ECPAY_MERCHANT_ID",
    "ECPAY_HASH_KEY",
    "ECPAY_HASH_IV",
    "ECPAY_SECRET_ARN",
    "ECPAY_CREDENTIALS",
    "ECPAY_CROSS_CHECK",
    "STORE_URL",
    "API_TOKEN",
    "API_TOKEN_SECRET_ARN",
    "AUTH_MODE",
    "FRONTEND_URL",
    "PUBLIC_BASE_URL",
    "CORS_ORIGINS",
    "AWS_LAMBDA_FUNCTION_NAME",
    "EVENTS_OUTBOX",
    "INVOICING",
    "INVOICE_BASE_URL",
    "INVOICE_MERCHANT_ID",
    "INVOICE_HASH_KEY",
    "INVOICE_HASH_IV",
    "INVOICE_SECRET_ARN",
    "INVOICE_RELATE_PREFIX",
)
# The sandbox base URL is never contacted in these tests (cross-check is off in sandbox); the discard
# port on loopback makes any accidental call fail at once without leaving the machine.
UNUSED_ECPAY = "http://127.0.0.1:9"


@pytest.fixture
def api_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """A clean environment: sandbox ECPay, a temp SQLite store, an API token, a front-end URL."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORE_URL", f"sqlite:///{tmp_path / 'wallet.db'}")
    monkeypatch.setenv("ECPAY_ENV", "sandbox")
    monkeypatch.setenv("ECPAY_BASE_URL", UNUSED_ECPAY)
    monkeypatch.setenv("API_TOKEN", TOKEN)
    monkeypatch.setenv("FRONTEND_URL", "http://localhost:3000")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "ecpay-lambda-test")
    composition.reset()
    # The wallet's clock runs at 10:00 Taipei today, far from ECPay's 20:15-20:30 card close, so refunds
    # answer the same whenever the suite runs (the local stack pins its clock the same way).
    offset = timedelta(seconds=daytime_offset())
    composition.set_clock(lambda: datetime.now(UTC) + offset)
    yield monkeypatch
    composition.set_clock(None)
    composition.reset()


@pytest.fixture
def api(api_env: pytest.MonkeyPatch) -> Api:
    """A client that sends the right bearer token."""
    return Api()


@pytest.fixture
def user(api: Api) -> dict[str, Any]:
    """A fresh user."""
    resp = api.request("POST", "/users", json_body={"username": "amy", "email": "amy@example.com"})
    assert resp.status == 201, resp.body
    data: dict[str, Any] = resp.json()
    return data


def create_deposit(api: Api, user_id: str, amount: int = 500, **extra: Any) -> dict[str, Any]:
    """A pending deposit."""
    resp = api.request(
        "POST",
        f"/users/{user_id}/transactions",
        json_body={"transaction_type": "deposit", "amount": amount, **extra},
    )
    assert resp.status == 201, resp.body
    data: dict[str, Any] = resp.json()
    return data


def checkout(api: Api, user_id: str, transaction_id: str, **query: str) -> dict[str, Any]:
    """The checkout form as JSON ``{action, fields}``."""
    resp = api.request(
        "POST",
        f"/users/{user_id}/transactions/{transaction_id}/requestPayment",
        headers={"Accept": "application/json"},
        query=query or None,
    )
    assert resp.status == 200, resp.body
    data: dict[str, Any] = resp.json()
    return data
