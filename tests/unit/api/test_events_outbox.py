"""Local mode's outbox: every ledger change of a real flow is exactly one event, as the Pipe would publish.

The flows go through the handlers (routes and ECPay notifications) with ``EVENTS_OUTBOX`` set, as
``serve`` sets it; the outbox applies the Pipe's filter to the records DynamoDB would have streamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.unit.api.apitest import Api, form, return_fields, sign
from tests.unit.api.conftest import checkout, create_deposit
from tests.unit.api.test_payments import FORM

from ecpay_lambda.api import composition
from ecpay_lambda.store.outbox import read_outbox


@pytest.fixture
def outbox(api_env: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    api_env.setenv("EVENTS_OUTBOX", str(path))
    composition.reset()
    return path


def _names(path: Path) -> list[tuple[str, str]]:
    return [(e["name"], e["transaction_id"]) for e in read_outbox(path)]


def test_a_duplicate_storm_is_one_deposit_paid(outbox: Path, api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 800)
    mtn = checkout(api, uid, tx["transaction_id"], payment_method="Credit")["fields"]["MerchantTradeNo"]
    path = f"/users/{uid}/transactions/{tx['transaction_id']}/return"
    body = form(sign(return_fields(mtn, 800)))
    for _ in range(6):  # ECPay retries, and a replayed notification
        assert api.request("POST", path, body=body, headers=FORM, token=None).body == "1|OK"
    events = read_outbox(outbox)
    assert [(e["name"], e["transaction_id"]) for e in events] == [("deposit.paid", tx["transaction_id"])]
    paid = events[0]
    assert (paid["user_id"], paid["amount"], paid["status"]) == (uid, 800, "paid")
    assert api.request("GET", f"/users/{uid}").json()["balance"] == 800


def test_withdrawals_and_a_cancelled_deposit(outbox: Path, api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 300)
    mtn = checkout(api, uid, tx["transaction_id"], payment_method="Credit")["fields"]["MerchantTradeNo"]
    notify = f"/users/{uid}/transactions/{tx['transaction_id']}/return"
    api.request("POST", notify, body=form(sign(return_fields(mtn, 300))), headers=FORM, token=None)
    txs = f"/users/{uid}/transactions"
    w1 = api.request("POST", txs, json_body={"transaction_type": "withdraw", "amount": 100}).json()
    w2 = api.request("POST", txs, json_body={"transaction_type": "withdraw", "amount": 50}).json()
    assert api.request("PATCH", f"{txs}/{w1['transaction_id']}").status == 200
    assert api.request("PATCH", f"{txs}/{w2['transaction_id']}", json_body={"action": "cancel"}).status == 200
    unpaid = create_deposit(api, uid, 70)
    assert (
        api.request("PATCH", f"{txs}/{unpaid['transaction_id']}", json_body={"action": "cancel"}).status
        == 200
    )
    assert _names(outbox) == [
        ("deposit.paid", tx["transaction_id"]),
        ("withdrawal.requested", w1["transaction_id"]),
        ("withdrawal.requested", w2["transaction_id"]),
        ("withdrawal.completed", w1["transaction_id"]),
        ("withdrawal.cancelled", w2["transaction_id"]),
        ("deposit.cancelled", unpaid["transaction_id"]),
    ]


def test_without_the_setting_there_is_no_outbox(api: Api, user: dict[str, Any], tmp_path: Path) -> None:
    create_deposit(api, user["user_id"])
    assert not list(tmp_path.glob("*.jsonl"))
    assert read_outbox(tmp_path / "events.jsonl") == []


def test_get_events_is_an_operator_route_over_the_outbox(
    outbox: Path, api: Api, user: dict[str, Any]
) -> None:
    uid = user["user_id"]
    pay = create_deposit(api, uid, 400)
    mtn = checkout(api, uid, pay["transaction_id"], payment_method="Credit")["fields"]["MerchantTradeNo"]
    notify = f"/users/{uid}/transactions/{pay['transaction_id']}/return"
    api.request("POST", notify, body=form(sign(return_fields(mtn, 400))), headers=FORM, token=None)
    api.request(
        "POST", f"/users/{uid}/transactions", json_body={"transaction_type": "withdraw", "amount": 100}
    )
    listed = api.request("GET", "/events").json()
    assert [e["name"] for e in listed["events"]] == ["deposit.paid", "withdrawal.requested"]
    assert listed["total"] == 2 and listed["events"][0]["amount"] == 400
    assert [e["name"] for e in api.request("GET", "/events", query={"limit": "1"}).json()["events"]] == [
        "withdrawal.requested"
    ]
    assert Api(token=None).request("GET", "/events").status == 401


def test_get_events_without_an_outbox_points_at_the_bus(api: Api) -> None:
    resp = api.request("GET", "/events")
    assert resp.status == 404 and resp.error_code == "events_on_bus"


def test_get_events_is_404_for_an_end_user(outbox: Path, api_env: pytest.MonkeyPatch) -> None:
    api_env.delenv("API_TOKEN")
    api_env.setenv("AUTH_MODE", "jwt")
    composition.reset()
    resp = Api(token=None, claims={"sub": "someone"}).request("GET", "/events")
    assert resp.status == 404 and resp.error_code == "route_not_found"
    operator = Api(token=None, claims={"sub": "ops", "cognito:groups": "[operators]"})
    assert operator.request("GET", "/events").json() == {"events": [], "total": 0}
