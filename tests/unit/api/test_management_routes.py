"""Users and transactions through synthetic HTTP API events, with the seed front end's exact requests."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.api.apitest import Api
from tests.unit.api.conftest import create_deposit

USER_FIELDS = {"user_id", "username", "email", "balance", "held", "status", "created_at", "invoice_settings"}
TRANSACTION_FIELDS = {
    "transaction_id",
    "user_id",
    "transaction_type",
    "amount",
    "status",
    "payment_method",
    "merchant_trade_no",
    "trade_no",
    "payment_info",
    "created_at",
    "updated_at",
}


# --- users ----------------------------------------------------------------------------------------


def test_create_user_answers_201_with_the_seed_fields(api: Api) -> None:
    resp = api.request("POST", "/users", json_body={"username": "  bob ", "email": "bob@example.com"})
    assert resp.status == 201
    user = resp.json()
    assert set(user) == USER_FIELDS
    assert user["username"] == "bob"
    assert (user["balance"], user["held"], user["status"]) == (0, 0, "active")
    assert user["created_at"].endswith("Z")


@pytest.mark.parametrize(
    "body",
    [
        {"username": "bob"},
        {"email": "bob@example.com"},
        {"username": "", "email": "bob@example.com"},
        {"username": 12, "email": "bob@example.com"},
        {"username": "bob", "email": "not-an-email"},
        {"username": "x" * 65, "email": "bob@example.com"},
        {"username": "bo\nb", "email": "bob@example.com"},
        ["bob", "bob@example.com"],
        None,
    ],
)
def test_create_user_validates_its_body(api: Api, body: Any) -> None:
    resp = api.request("POST", "/users", json_body=body)
    assert resp.status == 422
    assert resp.error_code == "validation_error"


def test_a_taken_username_is_a_conflict(api: Api, user: dict[str, Any]) -> None:
    resp = api.request("POST", "/users", json_body={"username": "amy", "email": "other@example.com"})
    assert resp.status == 409
    assert resp.error_code == "conflict"


def test_list_users_answers_what_the_seed_front_end_reads(api: Api) -> None:
    for i in range(3):
        api.request("POST", "/users", json_body={"username": f"u{i}", "email": f"u{i}@example.com"})
    # The seed sends exactly this: GET /users?page=1&pageSize=8
    resp = api.request("GET", "/users", query={"page": "1", "pageSize": "2"})
    assert resp.status == 200
    data = resp.json()
    assert set(data) == {"users", "total", "page", "pageSize", "next_cursor"}
    assert data["total"] == 3 and data["page"] == 1 and data["pageSize"] == 2
    assert len(data["users"]) == 2 and all(set(u) == USER_FIELDS for u in data["users"])
    second = api.request("GET", "/users", query={"page": "2", "pageSize": "2"}).json()
    assert len(second["users"]) == 1
    assert {u["user_id"] for u in data["users"]}.isdisjoint({u["user_id"] for u in second["users"]})


def test_list_users_with_a_cursor_walks_every_user_once(api: Api) -> None:
    for i in range(5):
        api.request("POST", "/users", json_body={"username": f"c{i}", "email": f"c{i}@example.com"})
    seen: list[str] = []
    query = {"pageSize": "2"}
    for _ in range(10):
        data = api.request("GET", "/users", query=query).json()
        seen += [u["user_id"] for u in data["users"]]
        if not data["next_cursor"]:
            break
        query = {"pageSize": "2", "cursor": data["next_cursor"]}
    assert len(seen) == 5 == len(set(seen))


@pytest.mark.parametrize(
    "query", [{"pageSize": "0"}, {"pageSize": "101"}, {"page": "0"}, {"page": "abc"}, {"pageSize": "1.5"}]
)
def test_list_users_validates_paging(api: Api, query: dict[str, str]) -> None:
    resp = api.request("GET", "/users", query=query)
    assert resp.status == 422
    assert resp.error_code == "validation_error"


def test_get_user_and_unknown_user(api: Api, user: dict[str, Any]) -> None:
    resp = api.request("GET", f"/users/{user['user_id']}")
    assert resp.status == 200 and resp.json() == user
    missing = api.request("GET", "/users/u000000000000000")
    assert missing.status == 404 and missing.error_code == "not_found"


def test_delete_user_answers_json_the_seed_can_read(api: Api, user: dict[str, Any]) -> None:
    # The seed sends DELETE with Content-Type: application/json and no body, and requires a JSON answer.
    resp = api.request("DELETE", f"/users/{user['user_id']}", headers={"Content-Type": "application/json"})
    assert resp.status == 200
    assert resp.json()["status"] == "closed"
    again = api.request("DELETE", f"/users/{user['user_id']}")
    assert again.status in (404, 409)
    closed = api.request(
        "POST",
        f"/users/{user['user_id']}/transactions",
        json_body={"transaction_type": "deposit", "amount": 5},
    )
    assert closed.status == 409 and closed.error_code == "user_closed"


def test_a_user_with_an_open_transaction_cannot_be_closed(api: Api, user: dict[str, Any]) -> None:
    create_deposit(api, user["user_id"])
    resp = api.request("DELETE", f"/users/{user['user_id']}")
    assert resp.status == 409
    assert resp.error_code == "user_not_empty"


# --- transactions ---------------------------------------------------------------------------------


def test_seed_deposit_request_with_a_string_amount_and_status(api: Api, user: dict[str, Any]) -> None:
    # The seed posts the amount straight from an <input> (a string) and a status of "pending".
    resp = api.request(
        "POST",
        f"/users/{user['user_id']}/transactions",
        json_body={"transaction_type": "deposit", "amount": "100", "status": "pending"},
    )
    assert resp.status == 201
    tx = resp.json()
    assert set(tx) >= TRANSACTION_FIELDS
    assert tx["amount"] == 100 and tx["status"] == "pending" and tx["transaction_type"] == "deposit"
    assert tx["user_id"] == user["user_id"]


@pytest.mark.parametrize(
    "body",
    [
        {"transaction_type": "deposit", "amount": 1.5},
        {"transaction_type": "deposit", "amount": "1.5"},
        {"transaction_type": "deposit", "amount": "１２"},  # full-width digits
        {"transaction_type": "deposit", "amount": True},
        {"transaction_type": "deposit", "amount": 0},
        {"transaction_type": "deposit", "amount": -5},
        {"transaction_type": "deposit", "amount": 10**12},
        {"transaction_type": "deposit", "amount": 100_000_001},  # above the wallet's MAX_AMOUNT
        {"transaction_type": "deposit", "amount": "0"},
        {"transaction_type": "deposit", "amount": "007"},
        {"transaction_type": "deposit", "amount": None},
        {"transaction_type": "deposit"},
        {"transaction_type": "refund", "amount": 5},
        {"transaction_type": "gift", "amount": 5},
        {"transaction_type": "deposit", "amount": 5, "status": "paid"},
        {"transaction_type": "deposit", "amount": 5, "payment_method": "Bitcoin"},
    ],
)
def test_create_transaction_validates_types(api: Api, user: dict[str, Any], body: dict[str, Any]) -> None:
    resp = api.request("POST", f"/users/{user['user_id']}/transactions", json_body=body)
    assert resp.status == 422, resp.body
    assert resp.error_code == "validation_error"


def test_transactions_of_an_unknown_user(api: Api) -> None:
    resp = api.request(
        "POST", "/users/u000000000000000/transactions", json_body={"transaction_type": "deposit", "amount": 5}
    )
    assert resp.status == 404 and resp.error_code == "not_found"


def test_withdraw_more_than_the_balance_is_refused(api: Api, user: dict[str, Any]) -> None:
    resp = api.request(
        "POST",
        f"/users/{user['user_id']}/transactions",
        json_body={"transaction_type": "withdraw", "amount": 1},
    )
    assert resp.status == 409
    assert resp.error_code == "insufficient_balance"


def test_idempotency_key_replays_the_first_answer(api: Api, user: dict[str, Any]) -> None:
    path = f"/users/{user['user_id']}/transactions"
    body = {"transaction_type": "deposit", "amount": 300}
    first = api.request("POST", path, json_body=body, headers={"Idempotency-Key": "key-1"})
    second = api.request("POST", path, json_body=body, headers={"Idempotency-Key": "key-1"})
    assert first.status == 201 and second.status == 200
    assert second.header("Idempotent-Replayed") == "true"
    assert second.json()["transaction_id"] == first.json()["transaction_id"]
    other = api.request("POST", path, json_body={**body, "amount": 301}, headers={"Idempotency-Key": "key-1"})
    assert other.status == 422 and other.error_code == "idempotency_key_mismatch"
    listing = api.request("GET", path).json()
    assert listing["total"] == 1


def test_list_transactions_answers_what_the_seed_reads(api: Api, user: dict[str, Any]) -> None:
    ids = [create_deposit(api, user["user_id"], amount)["transaction_id"] for amount in (10, 20, 30)]
    resp = api.request("GET", f"/users/{user['user_id']}/transactions", query={"page": "1", "pageSize": "6"})
    assert resp.status == 200
    data = resp.json()
    assert {"transactions", "total", "page", "pageSize"} <= set(data)
    assert data["total"] == 3
    assert [t["transaction_id"] for t in data["transactions"]] == ids[::-1]  # newest first


def test_get_transaction_has_its_ledger_and_notifications(api: Api, user: dict[str, Any]) -> None:
    tx = create_deposit(api, user["user_id"])
    resp = api.request("GET", f"/users/{user['user_id']}/transactions/{tx['transaction_id']}")
    assert resp.status == 200
    detail = resp.json()
    assert detail["transaction_id"] == tx["transaction_id"]
    assert detail["ledger"] == [] and detail["notifications"] == []


def test_a_transaction_of_another_user_is_not_found(api: Api, user: dict[str, Any]) -> None:
    tx = create_deposit(api, user["user_id"])
    other = api.request("POST", "/users", json_body={"username": "eve", "email": "eve@example.com"}).json()
    resp = api.request("GET", f"/users/{other['user_id']}/transactions/{tx['transaction_id']}")
    assert resp.status == 404 and resp.error_code == "not_found"


def test_patch_cannot_complete_a_deposit(api: Api, user: dict[str, Any]) -> None:
    tx = create_deposit(api, user["user_id"])
    # Exactly what the seed sends: PATCH, JSON content type, no body.
    resp = api.request(
        "PATCH",
        f"/users/{user['user_id']}/transactions/{tx['transaction_id']}",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 409 and resp.error_code == "invalid_state"


@pytest.mark.parametrize(
    "body", [{"action": "explode"}, {"action": "complete", "status": "cancelled"}, {"status": "paid"}]
)
def test_patch_validates_its_optional_body(api: Api, user: dict[str, Any], body: dict[str, Any]) -> None:
    tx = create_deposit(api, user["user_id"])
    resp = api.request(
        "PATCH", f"/users/{user['user_id']}/transactions/{tx['transaction_id']}", json_body=body
    )
    assert resp.status == 422 and resp.error_code == "validation_error"
