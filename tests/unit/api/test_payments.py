"""requestPayment (the seed's HTML form), refund and sync, and the paid-notification cross-check."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from tests.unit.api.apitest import DOMAIN, STAGE, Api, form, return_fields, sign
from tests.unit.api.conftest import UNUSED_ECPAY, checkout, create_deposit

from ecpay_lambda.api import composition
from ecpay_lambda.config import load_settings
from ecpay_lambda.ecpay.testing import FakeEcpay

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class _FormReader(HTMLParser):
    """Collects the first form's action and hidden inputs, as the seed front end's browser would."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = values.get("action")
        elif tag == "input" and values.get("type") == "hidden":
            self.fields[values["name"]] = values.get("value", "")


def read_form(html: str) -> _FormReader:
    reader = _FormReader()
    reader.feed(html)
    return reader


@pytest.fixture
def fake_ecpay(api_env: pytest.MonkeyPatch) -> FakeEcpay:
    """The service wired to a fake ECPay (for refund, sync and cross-check)."""
    fake = FakeEcpay(unknown_trades="unpaid")
    composition.set_service(composition.build_service(load_settings(), transport=fake))
    return fake


def test_request_payment_as_the_seed_sends_it_answers_an_html_form(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 250)
    path = f"/users/{uid}/transactions/{tx['transaction_id']}/requestPayment"
    # The seed: POST, Content-Type text/html, no body; it inserts the HTML and submits the form.
    resp = api.request("POST", path, headers={"Content-Type": "text/html"})
    assert resp.status == 200
    assert (resp.header("Content-Type") or "").startswith("text/html")
    page = read_form(resp.body)
    assert page.action == f"{UNUSED_ECPAY}/Cashier/AioCheckOut/V5"
    fields = page.fields
    assert fields["TotalAmount"] == "250" and fields["MerchantID"] == "3002607"
    base = f"https://{DOMAIN}/{STAGE}/users/{uid}/transactions/{tx['transaction_id']}"
    assert fields["ReturnURL"] == f"{base}/return"
    assert fields["PaymentInfoURL"] == f"{base}/paymentInfo"
    assert fields["ClientBackURL"] == f"{base}/clientReturn"
    assert re.fullmatch(r"[A-Za-z0-9]{1,20}", fields["MerchantTradeNo"])
    assert fields["MerchantTradeNo"].startswith(tx["transaction_id"])
    assert len(fields["CheckMacValue"]) == 64
    detail = api.request("GET", f"/users/{uid}/transactions/{tx['transaction_id']}").json()
    assert detail["status"] == "awaiting_payment"
    assert detail["merchant_trade_no"] == fields["MerchantTradeNo"]


def test_request_payment_as_json_and_a_fresh_trade_number_each_time(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 250)
    first = checkout(api, uid, tx["transaction_id"])
    second = checkout(api, uid, tx["transaction_id"])
    assert set(first) == {"action", "fields"}
    assert first["fields"]["MerchantTradeNo"] != second["fields"]["MerchantTradeNo"]


def test_public_base_url_overrides_the_request_domain(
    api: Api, user: dict[str, Any], api_env: pytest.MonkeyPatch
) -> None:
    api_env.setenv("PUBLIC_BASE_URL", "https://pay.example.com/api")
    composition.reset()
    uid = user["user_id"]
    tx = create_deposit(api, uid)
    fields = checkout(api, uid, tx["transaction_id"])["fields"]
    assert (
        fields["ReturnURL"]
        == f"https://pay.example.com/api/users/{uid}/transactions/{tx['transaction_id']}/return"
    )


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ({"query": {"payment_method": "ATM"}}, "ATM"),
        ({"json_body": {"payment_method": "CVS"}}, "CVS"),
        ({"body": "payment_method=BARCODE", "headers": FORM}, "BARCODE"),
        ({"body": "payment_method=Credit", "headers": FORM, "base64_body": True}, "Credit"),
        ({}, "ALL"),
    ],
)
def test_payment_method_from_query_json_or_form(
    api: Api, user: dict[str, Any], how: dict[str, Any], expected: str
) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 500)
    headers = {"Accept": "application/json", **how.pop("headers", {})}
    resp = api.request(
        "POST", f"/users/{uid}/transactions/{tx['transaction_id']}/requestPayment", headers=headers, **how
    )
    assert resp.status == 200, resp.body
    assert resp.json()["fields"]["ChoosePayment"] == expected


@pytest.mark.parametrize(
    ("how", "status", "code"),
    [
        ({"query": {"payment_method": "Bitcoin"}}, 422, "validation_error"),
        ({"json_body": {"payment_method": "Bitcoin"}}, 422, "validation_error"),
        ({"json_body": ["ATM"]}, 422, "validation_error"),
        ({"body": "{not json", "headers": {"Content-Type": "application/json"}}, 400, "invalid_json"),
    ],
)
def test_request_payment_refuses_a_bad_method(
    api: Api, user: dict[str, Any], how: dict[str, Any], status: int, code: str
) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 500)
    resp = api.request("POST", f"/users/{uid}/transactions/{tx['transaction_id']}/requestPayment", **how)
    assert resp.status == status and resp.error_code == code


def test_request_payment_of_a_withdrawal_or_unknown_transaction(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    missing = api.request("POST", f"/users/{uid}/transactions/aaaaaaaaaaaa/requestPayment")
    assert missing.status == 404 and missing.error_code == "not_found"


def test_payments_fail_closed_without_ecpay_credentials(
    api: Api, user: dict[str, Any], api_env: pytest.MonkeyPatch
) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid)
    api_env.setenv("ECPAY_CREDENTIALS", "none")
    composition.reset()
    for action in ("requestPayment", "refund", "sync"):
        resp = api.request("POST", f"/users/{uid}/transactions/{tx['transaction_id']}/{action}")
        assert resp.status == 503 and resp.error_code == "ecpay_unavailable"


def pay(api: Api, uid: str, amount: int) -> tuple[str, str]:
    """A deposit paid by a verified notification: (transaction_id, MerchantTradeNo)."""
    tx = create_deposit(api, uid, amount)
    mtn = checkout(api, uid, tx["transaction_id"], payment_method="Credit")["fields"]["MerchantTradeNo"]
    resp = api.request(
        "POST",
        f"/users/{uid}/transactions/{tx['transaction_id']}/return",
        body=form(sign(return_fields(mtn, amount))),
        headers=FORM,
        token=None,
    )
    assert resp.body == "1|OK"
    return tx["transaction_id"], mtn


def test_refund_of_a_paid_card_deposit(api: Api, user: dict[str, Any], fake_ecpay: FakeEcpay) -> None:
    uid = user["user_id"]
    tx_id, mtn = pay(api, uid, 700)
    resp = api.request("POST", f"/users/{uid}/transactions/{tx_id}/refund", json_body={"amount": 200})
    assert resp.status == 201, resp.body
    refund = resp.json()
    assert refund["transaction_type"] == "refund" and refund["amount"] == 200
    assert refund["related_transaction_id"] == tx_id
    assert [a["MerchantTradeNo"] for a in fake_ecpay.actions] == [mtn]
    assert api.request("GET", f"/users/{uid}").json()["balance"] == 500
    whole = api.request("POST", f"/users/{uid}/transactions/{tx_id}/refund")  # the rest, no body
    assert whole.status == 201 and whole.json()["amount"] == 500


def test_refund_validates_and_refuses_what_cannot_be_refunded(
    api: Api, user: dict[str, Any], fake_ecpay: FakeEcpay
) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 100)
    unpaid = api.request("POST", f"/users/{uid}/transactions/{tx['transaction_id']}/refund")
    assert unpaid.status == 409
    bad = api.request(
        "POST", f"/users/{uid}/transactions/{tx['transaction_id']}/refund", json_body={"amount": "lots"}
    )
    assert bad.status == 422 and bad.error_code == "validation_error"
    assert fake_ecpay.actions == []


def test_sync_applies_what_ecpay_says(api: Api, user: dict[str, Any], fake_ecpay: FakeEcpay) -> None:
    uid = user["user_id"]
    tx = create_deposit(api, uid, 640)
    mtn = checkout(api, uid, tx["transaction_id"])["fields"]["MerchantTradeNo"]
    unpaid = api.request("POST", f"/users/{uid}/transactions/{tx['transaction_id']}/sync")
    assert unpaid.status == 200 and unpaid.json()["status"] == "awaiting_payment"
    fake_ecpay.pay(mtn, 640)
    paid = api.request("POST", f"/users/{uid}/transactions/{tx['transaction_id']}/sync")
    assert paid.status == 200 and paid.json()["status"] == "paid"
    assert api.request("GET", f"/users/{uid}").json()["balance"] == 640


def test_cross_check_credits_only_what_ecpay_confirms(
    api: Api, user: dict[str, Any], api_env: pytest.MonkeyPatch
) -> None:
    api_env.setenv("ECPAY_CROSS_CHECK", "true")
    composition.reset()
    fake = FakeEcpay(unknown_trades="unpaid")
    composition.set_service(composition.build_service(load_settings(), transport=fake))
    uid = user["user_id"]
    tx = create_deposit(api, uid, 900)
    mtn = checkout(api, uid, tx["transaction_id"])["fields"]["MerchantTradeNo"]
    path = f"/users/{uid}/transactions/{tx['transaction_id']}/return"
    body = form(sign(return_fields(mtn, 900)))
    # A correctly signed paid notice that ECPay's QueryTradeInfo does not confirm: not credited, retried.
    first = api.request("POST", path, body=body, headers=FORM, token=None)
    assert first.body.startswith("0|") and fake.queries == [mtn]
    assert api.request("GET", f"/users/{uid}").json()["balance"] == 0
    fake.pay(mtn, 900)
    second = api.request("POST", path, body=body, headers=FORM, token=None)
    assert second.body == "1|OK"
    assert api.request("GET", f"/users/{uid}").json()["balance"] == 900


def test_withdraw_complete_and_cancel(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    pay(api, uid, 1000)
    path = f"/users/{uid}/transactions"
    w1 = api.request("POST", path, json_body={"transaction_type": "withdraw", "amount": "300"}).json()
    assert w1["status"] == "pending"
    held = api.request("GET", f"/users/{uid}").json()
    assert (held["balance"], held["held"]) == (700, 300)
    # The seed completes a withdrawal with a bodiless PATCH.
    done = api.request(
        "PATCH", f"{path}/{w1['transaction_id']}", headers={"Content-Type": "application/json"}
    )
    assert done.status == 200 and done.json()["status"] == "completed"
    w2 = api.request("POST", path, json_body={"transaction_type": "withdraw", "amount": 200}).json()
    cancelled = api.request("PATCH", f"{path}/{w2['transaction_id']}", json_body={"action": "cancel"})
    assert cancelled.status == 200 and cancelled.json()["status"] == "cancelled"
    final = api.request("GET", f"/users/{uid}").json()
    assert (final["balance"], final["held"]) == (700, 0)
    again = api.request("PATCH", f"{path}/{w1['transaction_id']}", json_body={"status": "cancelled"})
    assert again.status == 409 and again.error_code == "invalid_state"
