"""Store outages: 503 with Retry-After on every route; /healthz probes a write; forms on JSON routes: 415."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from tests.unit.api.apitest import Api, form, return_fields, sign
from tests.unit.api.conftest import checkout, create_deposit

from ecpay_lambda.api import composition
from ecpay_lambda.api.errors import (
    INTERNAL,
    RETRY_AFTER_SECONDS,
    STORE_UNAVAILABLE,
    is_store_outage,
    to_http_error,
)
from ecpay_lambda.store.dynamodb import DynamoDBStoreError
from ecpay_lambda.store.sql import SqlStore

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _disk_io_error() -> OperationalError:
    # What SQLAlchemy raises when SQLite cannot write its file.
    return OperationalError("UPDATE wallet_users ...", {}, sqlite3.OperationalError("disk I/O error"))


def _client_error(code: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Query"
    )


@pytest.mark.parametrize(
    "exc",
    [
        _disk_io_error(),
        OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")),
        sqlite3.OperationalError("database or disk is full"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
        _client_error("ProvisionedThroughputExceededException"),
        _client_error("ThrottlingException"),
        _client_error("InternalServerError", 500),
        DynamoDBStoreError("transaction cancelled: ['TransactionConflict']"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_store_outages_are_recognised(exc: Exception) -> None:
    assert is_store_outage(exc)
    assert to_http_error(exc) is STORE_UNAVAILABLE
    # Also when the adapter re-raised it as something else.
    try:
        try:
            raise exc
        except Exception as inner:
            raise RuntimeError("wrapped") from inner
    except RuntimeError as outer:
        assert is_store_outage(outer)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("invalid cursor"),
        KeyError("x"),
        IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        _client_error("ConditionalCheckFailedException"),
        _client_error("ValidationException"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_bugs_and_business_outcomes_are_not_outages(exc: Exception) -> None:
    assert not is_store_outage(exc)
    assert to_http_error(exc) is INTERNAL


def _break_store(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    store = composition.get_service().store

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise _disk_io_error()

    for name in names:
        monkeypatch.setattr(store, name, fail)


STORE_READS_AND_WRITES = (
    "create_user",
    "get_user",
    "list_users",
    "list_active_users",
    "close_user",
    "commit",
    "run",
    "get_transaction",
    "get_transaction_records",
    "list_transactions",
    "get_idempotency",
    "list_ledger",
    "record_notification",
    "list_notifications",
)


def test_every_management_route_answers_503_with_retry_after(
    api: Api, user: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid)["transaction_id"]
    _break_store(monkeypatch, *STORE_READS_AND_WRITES)
    calls = [
        ("POST", "/users", {"username": "bob", "email": "bob@example.com"}),
        ("GET", "/users", None),
        ("GET", f"/users/{uid}", None),
        ("DELETE", f"/users/{uid}", None),
        ("POST", f"/users/{uid}/transactions", {"transaction_type": "deposit", "amount": 100}),
        ("GET", f"/users/{uid}/transactions", None),
        ("GET", f"/users/{uid}/transactions/{tx}", None),
        ("PATCH", f"/users/{uid}/transactions/{tx}", {"action": "cancel"}),
        ("POST", f"/users/{uid}/transactions/{tx}/requestPayment", None),
        ("POST", f"/users/{uid}/transactions/{tx}/sync", None),
        ("POST", f"/users/{uid}/transactions/{tx}/refund", {}),
    ]
    for method, path, body in calls:
        resp = api.request(method, path, **({"json_body": body} if body is not None else {}))
        assert resp.status == 503, (method, path, resp.body)
        assert resp.error_code == "store_unavailable", (method, path)
        assert resp.header("Retry-After") == str(RETRY_AFTER_SECONDS), (method, path)
        assert "disk I/O" not in resp.body  # the reason goes to the log, not to the client


def test_a_callback_keeps_its_text_answer_on_a_store_outage(
    api: Api, user: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid)["transaction_id"]
    mtn = checkout(api, uid, tx)["fields"]["MerchantTradeNo"]
    _break_store(monkeypatch, *STORE_READS_AND_WRITES)
    resp = api.request(
        "POST",
        f"/users/{uid}/transactions/{tx}/return",
        body=form(sign(return_fields(mtn, 500))),
        headers=FORM,
        token=None,
    )
    assert resp.status == 503
    assert resp.body == "0|StoreUnavailable"  # anything but 1|OK: ECPay retries later
    assert resp.header("Content-Type") == "text/plain"
    assert resp.header("Retry-After") == str(RETRY_AFTER_SECONDS)


def test_healthz_writes_to_the_store(api: Api) -> None:
    resp = api.request("GET", "/healthz", token=None)
    assert resp.status == 200 and resp.json() == {"status": "ok", "store": True}
    store = composition.get_service().store
    assert isinstance(store, SqlStore)
    from ecpay_lambda.store.sql import _HEALTH  # noqa: PLC0415

    with store.engine.connect() as conn:
        first = conn.execute(select(_HEALTH.c.written_us)).scalar_one()
    assert api.request("GET", "/healthz", token=None).status == 200
    with store.engine.connect() as conn:
        rows = conn.execute(select(_HEALTH.c.written_us)).scalars().all()
    assert len(rows) == 1 and rows[0] >= first  # overwritten, never appended


def test_healthz_is_503_when_the_store_cannot_write(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # Reads still work (a full disk answers SELECT 1): only the write probe fails.
    _break_store(monkeypatch, "probe_write")
    assert composition.get_service().store.ping()
    resp = api.request("GET", "/healthz", token=None)
    assert resp.status == 503
    assert resp.json() == {"status": "degraded", "store": False}
    assert resp.header("Retry-After") == str(RETRY_AFTER_SECONDS)


def test_healthz_detects_a_read_only_sqlite_database(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    store = composition.get_service().store
    assert isinstance(store, SqlStore)
    assert api.request("GET", "/healthz", token=None).status == 200
    # query_only: SQLite refuses every write on these connections, as with a full or read-only disk.
    store.engine.dispose()
    from sqlalchemy import event  # noqa: PLC0415

    def read_only(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA query_only=ON")

    event.listen(store.engine, "connect", read_only)
    try:
        resp = api.request("GET", "/healthz", token=None)
        assert resp.status == 503 and resp.json()["status"] == "degraded"
        # And a write route says "unavailable, retry", not 500 internal_error.
        create = api.request("POST", "/users", json_body={"username": "ro", "email": "ro@example.com"})
        assert create.status == 503 and create.error_code == "store_unavailable"
    finally:
        event.remove(store.engine, "connect", read_only)
        store.engine.dispose()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users", "username=a&email=a%40example.com"),
        ("POST", "/users/u1/transactions", "transaction_type=deposit&amount=500"),
        ("PATCH", "/users/u1/transactions/t1", "action=complete"),
        ("POST", "/users/u1/transactions/t1/refund", "amount=100"),
    ],
)
def test_form_bodies_on_json_routes_are_415(api: Api, method: str, path: str, body: str) -> None:
    resp = api.request(method, path, body=body, headers=FORM)
    assert resp.status == 415, resp.body
    assert resp.error_code == "unsupported_media_type"


def test_request_payment_still_takes_a_form(api: Api, user: dict[str, Any]) -> None:
    tx = create_deposit(api, user["user_id"])["transaction_id"]
    resp = api.request(
        "POST",
        f"/users/{user['user_id']}/transactions/{tx}/requestPayment",
        body="payment_method=ATM",
        headers={**FORM, "Accept": "application/json"},
    )
    assert resp.status == 200, resp.body
    assert resp.json()["fields"]["ChoosePayment"] == "ATM"
