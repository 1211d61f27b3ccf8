"""ECPay callbacks through synthetic events: 1|OK for verified (and duplicate) notifications, an error
line for anything unverified (recorded, changing no transaction), and the browser's 303 back home."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.api.apitest import (
    Api,
    LambdaContext,
    atm_info_fields,
    form,
    make_event,
    match,
    return_fields,
    sign,
    to_resp,
)
from tests.unit.api.conftest import checkout, create_deposit

from ecpay_lambda.api import composition, ecpay_callbacks
from ecpay_lambda.ecpay.credentials import MerchantCredentials

OTHER_MERCHANT = MerchantCredentials("2000132", "5294y06JbISpM5x9", "v77hoKGq4kWxNNIS")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def started_deposit(api: Api, user_id: str, amount: int = 500, **query: str) -> tuple[str, str]:
    """A deposit checked out with ECPay: (transaction_id, MerchantTradeNo)."""
    tx = create_deposit(api, user_id, amount)
    fields = checkout(api, user_id, tx["transaction_id"], **query)["fields"]
    return tx["transaction_id"], fields["MerchantTradeNo"]


def notify(
    api: Api, user_id: str, tx_id: str, route: str, body: str | bytes, *, base64_body: bool = False
) -> Any:
    """POST a notification as ECPay does (no bearer token: callback routes are public)."""
    return api.request(
        "POST",
        f"/users/{user_id}/transactions/{tx_id}/{route}",
        body=body,
        headers=FORM,
        base64_body=base64_body,
        token=None,
    )


def balance(api: Api, user_id: str) -> int:
    value: int = api.request("GET", f"/users/{user_id}").json()["balance"]
    return value


def status(api: Api, user_id: str, tx_id: str) -> str:
    value: str = api.request("GET", f"/users/{user_id}/transactions/{tx_id}").json()["status"]
    return value


def test_a_signed_paid_notification_credits_once_and_answers_1_ok(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 500)
    body = form(sign(return_fields(mtn, 500)))
    assert "CustomField1=&" in body  # blank fields travel and are signed: parsing must keep them
    resp = notify(api, uid, tx_id, "return", body)
    assert (resp.status, resp.body) == (200, "1|OK")
    assert resp.header("Content-Type") == "text/plain"
    assert balance(api, uid) == 500
    detail = api.request("GET", f"/users/{uid}/transactions/{tx_id}").json()
    assert detail["status"] == "paid" and detail["trade_no"] == "2611271200000001"
    assert [e["delta_balance"] for e in detail["ledger"]] == [500]
    assert [n["outcome"] for n in detail["notifications"]] == ["applied"]

    # ECPay resends (RtnMsg "paid"): answered 1|OK again, credited never twice.
    resend = return_fields(mtn, 500) | {"RtnMsg": "paid"}
    again = notify(api, uid, tx_id, "return", form(sign(resend)))
    assert (again.status, again.body) == (200, "1|OK")
    assert balance(api, uid) == 500
    outcomes = [
        n["outcome"] for n in api.request("GET", f"/users/{uid}/transactions/{tx_id}").json()["notifications"]
    ]
    assert outcomes[0] == "applied" and outcomes[1] == "duplicate"


def test_a_base64_body_as_http_api_sends_forms(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 120)
    resp = notify(api, uid, tx_id, "return", form(sign(return_fields(mtn, 120))), base64_body=True)
    assert resp.body == "1|OK"
    assert balance(api, uid) == 120


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda f: f | {"TradeAmt": "50000"}, id="amount-changed-after-signing"),
        pytest.param(lambda f: f | {"RtnCode": "1", "CheckMacValue": "0" * 64}, id="forged-mac"),
        pytest.param(lambda f: {k: v for k, v in f.items() if k != "CheckMacValue"}, id="unsigned"),
        pytest.param(lambda f: {k: v for k, v in f.items() if k != "CustomField2"}, id="blank-field-dropped"),
    ],
)
def test_a_tampered_notification_changes_nothing_and_asks_for_a_retry(
    api: Api, user: dict[str, Any], tamper: Any
) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 500)
    resp = notify(api, uid, tx_id, "return", form(tamper(sign(return_fields(mtn, 500)))))
    assert resp.status == 200
    assert resp.body.startswith("0|") and resp.body != "1|OK"
    assert balance(api, uid) == 0
    detail = api.request("GET", f"/users/{uid}/transactions/{tx_id}").json()
    assert detail["status"] == "awaiting_payment" and detail["ledger"] == []
    # Recorded for inspection, never applied.
    assert [n["outcome"].split(":")[0] for n in detail["notifications"]] == ["rejected"]


def test_signed_with_another_merchants_keys_is_rejected(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 500)
    resp = notify(api, uid, tx_id, "return", form(sign(return_fields(mtn, 500), OTHER_MERCHANT)))
    assert resp.body.startswith("0|")
    assert balance(api, uid) == 0


def test_a_correctly_signed_but_wrong_amount_is_not_credited(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 500)
    resp = notify(api, uid, tx_id, "return", form(sign(return_fields(mtn, 499))))
    assert resp.body.startswith("0|")
    assert balance(api, uid) == 0


def test_a_notification_on_another_transactions_route_is_rejected(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_a, mtn_a = started_deposit(api, uid, 500)
    tx_b, _ = started_deposit(api, uid, 500)
    resp = notify(api, uid, tx_b, "return", form(sign(return_fields(mtn_a, 500))))
    assert resp.body.startswith("0|")
    assert balance(api, uid) == 0 and status(api, uid, tx_a) == "awaiting_payment"


def test_a_simulated_payment_is_recorded_never_credited(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 500)
    resp = notify(api, uid, tx_id, "return", form(sign(return_fields(mtn, 500, simulate_paid="1"))))
    assert resp.status == 200 and (resp.body == "1|OK" or resp.body.startswith("0|"))
    assert balance(api, uid) == 0
    notes = api.request("GET", f"/users/{uid}/transactions/{tx_id}").json()["notifications"]
    assert len(notes) == 1 and notes[0]["outcome"] != "applied"


def test_a_failed_payment_notification_marks_the_deposit_failed(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 500)
    resp = notify(api, uid, tx_id, "return", form(sign(return_fields(mtn, 500, rtn_code="10100248"))))
    assert resp.body == "1|OK"
    assert status(api, uid, tx_id) == "failed" and balance(api, uid) == 0


def test_payment_info_stores_the_atm_account_then_payment_credits(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 800, payment_method="ATM")
    resp = notify(api, uid, tx_id, "paymentInfo", form(sign(atm_info_fields(mtn, 800))), base64_body=True)
    assert (resp.status, resp.body) == (200, "1|OK")
    detail = api.request("GET", f"/users/{uid}/transactions/{tx_id}").json()
    assert detail["status"] == "awaiting_offline_payment"
    assert "9103522175887271" in detail["payment_info"].values()
    assert detail["expires_at"] is not None
    paid = notify(
        api, uid, tx_id, "return", form(sign(return_fields(mtn, 800) | {"PaymentType": "ATM_TAISHIN"}))
    )
    assert paid.body == "1|OK" and balance(api, uid) == 800


def test_garbage_and_empty_bodies_get_an_error_line_never_a_5xx(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, _ = started_deposit(api, uid)
    for body in ("", "not a form", "a=1&a=2", "%ZZ", "=&=&&"):
        resp = notify(api, uid, tx_id, "return", body)
        assert resp.status == 200 and resp.body.startswith("0|"), (body, resp.body)
    bad_base64 = make_event(
        "POST",
        f"/users/{uid}/transactions/{tx_id}/return",
        headers=FORM,
        route=match("POST", f"/users/{uid}/transactions/{tx_id}/return")[0],  # type: ignore[index]
        path_parameters={"userId": uid, "transactionId": tx_id},
    )
    bad_base64 |= {"body": "!!!not base64!!!", "isBase64Encoded": True}
    resp = to_resp(ecpay_callbacks.handler(bad_base64, LambdaContext()))
    assert resp.status == 200 and resp.body.startswith("0|")
    notes = api.request("GET", f"/users/{uid}/transactions/{tx_id}").json()["notifications"]
    assert len(notes) == 6  # every request that reached the route is on record


def test_an_oversized_body_is_refused_and_recorded_cut(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, _ = started_deposit(api, uid)
    resp = notify(api, uid, tx_id, "return", "A=" + "x" * 300_000)
    assert (resp.status, resp.body) == (413, "0|too_large")
    detail = api.request("GET", f"/users/{uid}/transactions/{tx_id}").json()
    assert detail["status"] == "awaiting_payment"
    outcomes = [n["outcome"] for n in detail["notifications"]]
    assert outcomes == ["rejected:too_large"]


def test_a_verified_callback_for_an_unknown_transaction_is_not_a_fault(
    api: Api, user: dict[str, Any]
) -> None:
    # Verified but about nothing we know: recorded and acknowledged (or refused) by the wallet, never a 5xx.
    body = form(sign(return_fields("zzzzzzzzzzzzabcdefgh", 5)))
    resp = notify(api, user["user_id"], "zzzzzzzzzzzz", "return", body)
    assert resp.status == 200 and (resp.body == "1|OK" or resp.body.startswith("0|"))
    assert balance(api, user["user_id"]) == 0


def test_a_store_fault_is_a_500_error_line_so_ecpay_retries(
    api: Api, user: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid)
    store = composition.get_callbacks().store

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire at /secret/path")

    monkeypatch.setattr(store, "record_notification", broken)
    monkeypatch.setattr(store, "commit", broken)
    monkeypatch.setattr(store, "run", broken)
    resp = notify(api, uid, tx_id, "return", form(sign(return_fields(mtn, 500))))
    assert (resp.status, resp.body) == (500, "0|ServerError")
    assert "secret" not in resp.body


def test_callbacks_fail_closed_when_the_function_has_no_ecpay_credentials(
    api: Api, user: dict[str, Any], api_env: pytest.MonkeyPatch
) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid)
    api_env.setenv("ECPAY_CREDENTIALS", "none")
    composition.reset()
    resp = notify(api, uid, tx_id, "return", form(sign(return_fields(mtn, 500))))
    assert (resp.status, resp.body) == (503, "0|Unavailable")


def test_a_misconfigured_function_answers_an_error_line(api: Api, api_env: pytest.MonkeyPatch) -> None:
    api_env.setenv("ECPAY_ENV", "production")  # without real credentials: refuses to start
    composition.reset()
    resp = notify(api, "u1", "t1", "return", "a=b")
    assert (resp.status, resp.body) == (503, "0|Unavailable")


# --- clientReturn ---------------------------------------------------------------------------------


def test_client_return_redirects_the_browser_with_the_status(api: Api, user: dict[str, Any]) -> None:
    uid = user["user_id"]
    tx_id, mtn = started_deposit(api, uid, 500)
    notify(api, uid, tx_id, "return", form(sign(return_fields(mtn, 500))))
    path = f"/users/{uid}/transactions/{tx_id}/clientReturn"
    get = api.request("GET", path, token=None)
    # ECPay's OrderResultURL is a cross-site browser POST with the result form (no cookie needed).
    post = api.request(
        "POST", path, body=form(sign(return_fields(mtn, 500))), headers=FORM, token=None, base64_body=True
    )
    for resp in (get, post):
        assert resp.status == 303
        location = urllib.parse.urlsplit(resp.header("Location") or "")
        assert (location.scheme, location.netloc, location.path) == ("http", "localhost:3000", "/")
        assert urllib.parse.parse_qs(location.query) == {
            "transaction_id": [tx_id],
            "status": ["paid"],
            "user_id": [uid],
        }
    assert balance(api, uid) == 500  # the browser's POST is display-only, never a second credit


def test_client_return_for_an_unknown_transaction_still_goes_home(api: Api, user: dict[str, Any]) -> None:
    resp = api.request("GET", f"/users/{user['user_id']}/transactions/nope/clientReturn", token=None)
    assert resp.status == 303
    location = resp.header("Location") or ""
    assert "status=unknown" in location
    assert "user_id" not in location  # nothing is confirmed about a transaction that is not found


def test_client_return_without_a_front_end_shows_a_page(
    api: Api, user: dict[str, Any], api_env: pytest.MonkeyPatch
) -> None:
    api_env.delenv("FRONTEND_URL")
    composition.reset()
    resp = api.request("GET", f"/users/{user['user_id']}/transactions/<script>/clientReturn", token=None)
    assert resp.status == 200 and "text/html" in (resp.header("Content-Type") or "")
    assert "<script>" not in resp.body and "&lt;script&gt;" in resp.body


# --- fuzz -------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(max_size=600), base64_body=st.booleans(), route=st.sampled_from(["return", "paymentInfo"])
)
def test_any_body_gets_a_line_and_never_a_5xx(
    api: Api, user: dict[str, Any], body: bytes, base64_body: bool, route: str
) -> None:
    uid = user["user_id"]
    path = f"/users/{uid}/transactions/aaaaaaaaaaaa/{route}"
    event = make_event(
        "POST",
        path,
        headers=FORM,
        route=match("POST", path)[0],  # type: ignore[index]
        path_parameters={"userId": uid, "transactionId": "aaaaaaaaaaaa"},
    )
    if base64_body:
        event |= {"body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    else:
        event |= {"body": body.decode("utf-8", errors="replace"), "isBase64Encoded": False}
    resp = to_resp(ecpay_callbacks.handler(event, LambdaContext()))
    assert resp.status == 200
    assert resp.body == "1|OK" or resp.body.startswith("0|")
    assert resp.header("Content-Type") == "text/plain"
