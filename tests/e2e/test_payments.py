"""The whole product over real HTTP: wallet API, ECPay sandbox and callbacks, on the local stack.

Every payment method end to end (create user, deposit, check out, pay in the sandbox, ReturnURL,
balance), failures, codes paid later, duplicate and simulated notifications, a lost notification
recovered by reconciliation, refunds and withdrawals.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from ecpay_lambda.api.composition import build_service
from ecpay_lambda.config import parse_settings
from ecpay_lambda.ecpay.checkmac import verify_check_mac_value
from ecpay_lambda.ecpay.credentials import MerchantCredentials

from .conftest import Http, Wallet

STAGE = MerchantCredentials.stage_test_merchant()
ONLINE = ["Credit", "WebATM", "TWQR", "ApplePay", "BNPL"]
OFFLINE = ["ATM", "CVS", "BARCODE"]
CODE_FIELD = {"ATM": "vAccount", "CVS": "PaymentNo", "BARCODE": "Barcode1"}


def _first_return_callback(local_stack, mtn: str) -> dict:  # type: ignore[no-untyped-def]
    attempts = local_stack.sandbox.callbacks(mtn, kind="return")
    assert attempts, f"no ReturnURL attempt for {mtn}"
    return attempts[0]


def _assert_acknowledged(attempt: dict) -> None:  # type: ignore[type-arg]
    assert attempt["status"] == 200 and attempt["body"] == "1|OK" and attempt["ok"], attempt
    assert verify_check_mac_value(attempt["fields"], STAGE.hash_key, STAGE.hash_iv)


@pytest.mark.parametrize("method", ONLINE)
def test_online_payment_through_the_payment_page(
    local_stack, wallet: Wallet, http: Http, method: str
) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    amount = 3000 if method == "BNPL" else 500
    tx = wallet.create(user_id, "deposit", amount, method)
    mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], method)
    assert wallet.transaction(user_id, tx["transaction_id"])["status"] == "awaiting_payment"

    result = wallet.page_action(mtn, "pay")
    assert result.status == 200
    back = wallet.back_to_shop(result.text)  # OrderResultURL -> clientReturn
    assert back.status == 303 and back.headers["location"].startswith(local_stack.base_url)

    _assert_acknowledged(_first_return_callback(local_stack, mtn))
    detail = wallet.transaction(user_id, tx["transaction_id"])
    assert detail["status"] == "paid" and detail["merchant_trade_no"] == mtn
    assert detail["trade_no"] == local_stack.sandbox.trade(mtn)["trade_no"]
    assert [e["delta_balance"] for e in detail["ledger"]] == [amount]
    assert wallet.user(user_id)["balance"] == amount


@pytest.mark.parametrize("method", OFFLINE)
def test_offline_code_then_payment(local_stack, wallet: Wallet, method: str) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 800, method)
    mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], method)

    code_page = wallet.page_action(mtn, "issue-code")
    assert code_page.status == 200
    info_attempts = local_stack.sandbox.callbacks(mtn, kind="payment_info")
    assert len(info_attempts) == 1
    _assert_acknowledged(info_attempts[0])
    detail = wallet.transaction(user_id, tx["transaction_id"])
    assert detail["status"] == "awaiting_offline_payment"
    code = local_stack.sandbox.trade(mtn)["payment_info"][CODE_FIELD[method]]
    assert code and code in json.dumps(detail["payment_info"])
    assert detail["expires_at"] is not None
    assert wallet.user(user_id)["balance"] == 0

    paid_page = wallet.page_action(mtn, "pay")  # days later, at the ATM or the store
    assert paid_page.status == 200 and 'data-status="paid"' in paid_page.text
    _assert_acknowledged(_first_return_callback(local_stack, mtn))
    assert wallet.transaction(user_id, tx["transaction_id"])["status"] == "paid"
    assert wallet.user(user_id)["balance"] == 800


def test_all_lets_the_shopper_choose(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 650, "ALL")
    mtn, page = wallet.open_payment_page(user_id, tx["transaction_id"], "ALL")
    assert 'value="Credit"' in page and 'value="ATM"' in page
    chosen = wallet.page_action(mtn, "choose", method="Credit")
    assert "付款 Pay" in chosen.text
    wallet.back_to_shop(wallet.page_action(mtn, "pay").text)
    assert wallet.user(user_id)["balance"] == 650
    assert local_stack.sandbox.trade(mtn)["payment_type"] == "Credit_CreditCard"


def test_failed_payment_then_a_new_attempt(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 700, "Credit")
    first_mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], "Credit")
    declined = wallet.page_action(first_mtn, "fail")
    back = wallet.back_to_shop(declined.text)
    assert back.status == 303
    _assert_acknowledged(_first_return_callback(local_stack, first_mtn))
    assert wallet.transaction(user_id, tx["transaction_id"])["status"] == "failed"
    assert wallet.user(user_id)["balance"] == 0

    second_mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], "Credit")
    assert second_mtn != first_mtn  # ECPay refuses a MerchantTradeNo twice
    local_stack.sandbox.pay(second_mtn)
    assert wallet.transaction(user_id, tx["transaction_id"])["status"] == "paid"
    assert wallet.user(user_id)["balance"] == 700


def test_reused_merchant_trade_no_is_refused_by_the_sandbox(local_stack, wallet: Wallet, http: Http) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 100, "Credit")
    action, fields = wallet.checkout(user_id, tx["transaction_id"], "Credit")
    assert 'data-status="created"' in http.form(action, fields).text
    again = http.form(action, fields)  # the browser's back button and re-submit
    assert 'data-rtn-code="10200047"' in again.text


def test_duplicate_notifications_credit_once(local_stack, wallet: Wallet, http: Http) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 900, "Credit")
    mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], "Credit")
    local_stack.sandbox.pay(mtn)
    first = _first_return_callback(local_stack, mtn)
    _assert_acknowledged(first)

    local_stack.sandbox.resend(mtn)  # ECPay's re-delivery: RtnMsg=paid, re-signed
    local_stack.sandbox.resend(mtn)
    resent = local_stack.sandbox.callbacks(mtn, kind="return")[1:]
    assert [a["fields"]["RtnMsg"] for a in resent] == ["paid", "paid"]
    assert all(a["body"] == "1|OK" for a in resent)

    with ThreadPoolExecutor(max_workers=6) as pool:  # the same bytes, concurrently
        replies = list(pool.map(lambda _: http.form(first["url"], first["fields"]), range(6)))
    assert all(r.status == 200 and r.body == b"1|OK" for r in replies)
    assert all(r.headers["content-type"].startswith("text/plain") for r in replies)

    detail = wallet.transaction(user_id, tx["transaction_id"])
    assert detail["status"] == "paid"
    assert [e["delta_balance"] for e in detail["ledger"]] == [900]
    assert len(detail["notifications"]) >= 9  # every delivery is recorded
    assert wallet.user(user_id)["balance"] == 900


def test_forged_notification_is_not_credited(local_stack, wallet: Wallet, http: Http) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 400, "Credit")
    mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], "Credit")
    local_stack.sandbox.settings(drop_callbacks=True)
    try:
        local_stack.sandbox.pay(mtn)
    finally:
        local_stack.sandbox.settings(drop_callbacks=False)
    fields = dict(local_stack.sandbox.callbacks(mtn)[0]["fields"])
    fields["TradeAmt"] = "40000"  # tampered after signing
    url = local_stack.sandbox.callbacks(mtn)[0]["url"]
    http.form(url, fields)
    assert wallet.transaction(user_id, tx["transaction_id"])["status"] == "awaiting_payment"
    assert wallet.user(user_id)["balance"] == 0


def test_simulated_payment_is_recorded_not_credited(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 1200, "ATM")
    mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], "ATM")
    local_stack.sandbox.issue_code(mtn)
    trade = local_stack.sandbox.simulate_paid(mtn)
    attempt = _first_return_callback(local_stack, mtn)
    assert attempt["fields"]["SimulatePaid"] == "1"
    _assert_acknowledged(attempt)  # acknowledged, so ECPay stops re-sending
    assert trade["status"] == "code_issued"
    detail = wallet.transaction(user_id, tx["transaction_id"])
    assert detail["status"] == "awaiting_offline_payment" and detail["ledger"] == []
    assert any(n["route"].endswith("return") for n in detail["notifications"])
    assert wallet.user(user_id)["balance"] == 0
    synced = wallet.http.json("POST", f"/users/{user_id}/transactions/{tx['transaction_id']}/sync")
    assert synced.status == 200 and synced.json()["status"] == "awaiting_offline_payment"


def _paid_with_dropped_callback(local_stack, wallet: Wallet, amount: int) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", amount, "Credit")
    mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], "Credit")
    local_stack.sandbox.settings(drop_callbacks=True)
    try:
        trade = local_stack.sandbox.pay(mtn)
    finally:
        local_stack.sandbox.settings(drop_callbacks=False)
    assert trade["status"] == "paid"
    assert [a["dropped"] for a in trade["callbacks"]] == [True]
    assert wallet.transaction(user_id, tx["transaction_id"])["status"] == "awaiting_payment"
    assert wallet.user(user_id)["balance"] == 0
    return user_id, tx["transaction_id"], mtn


def test_lost_notification_recovered_by_sync(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    user_id, transaction_id, _ = _paid_with_dropped_callback(local_stack, wallet, 1500)
    reply = wallet.http.json("POST", f"/users/{user_id}/transactions/{transaction_id}/sync")
    assert reply.status == 200 and reply.json()["status"] == "paid"
    assert wallet.user(user_id)["balance"] == 1500


def test_lost_notification_recovered_by_reconciliation(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    user_id, transaction_id, _ = _paid_with_dropped_callback(local_stack, wallet, 1600)
    # The scheduled job's use case on the same store and sandbox, asking now about every awaiting
    # deposit (the deployed schedule first asks ECPay 15 minutes after a checkout, then backs off).
    service = build_service(parse_settings(local_stack.env), clock=local_stack.clock)
    service.reconcile_grace = timedelta(0)
    report = service.reconcile(ignore_schedule=True)
    assert report.paid >= 1 and not report.errors, report
    assert wallet.transaction(user_id, transaction_id)["status"] == "paid"
    assert wallet.user(user_id)["balance"] == 1600
    again = service.reconcile()  # idempotent: nothing is credited twice
    assert not again.errors
    assert wallet.user(user_id)["balance"] == 1600


def test_reconcile_and_audit_commands_run_against_the_stack(local_stack) -> None:  # type: ignore[no-untyped-def]
    for command in (["reconcile", "--json"], ["audit", "--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "ecpay_lambda.cli", *command],
            env=local_stack.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        report = json.loads(result.stdout)
        assert isinstance(report, dict)
        if command[0] == "audit":
            assert report["mismatches"] == []


def test_refund_of_a_card_payment(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    """Refunds follow the card trade's capture state, as ECPay's DoAction does (protocol page §13.1)."""
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 1000, "Credit")
    mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], "Credit")
    local_stack.sandbox.pay(mtn)
    path = f"/users/{user_id}/transactions/{tx['transaction_id']}/refund"

    # Same day, before ECPay's 20:15 close, the trade is only authorised: no partial refund.
    early = wallet.http.json("POST", path, {"amount": 300})
    assert early.status == 409 and early.json()["error"]["code"] == "refund_partial_before_close", early.text
    assert local_stack.sandbox.trade(mtn)["refunded_amount"] == 0 and wallet.user(user_id)["balance"] == 1000

    local_stack.sandbox.close_trade(mtn)  # the daily close has passed: 已關帳
    part = wallet.http.json("POST", path, {"amount": 300})
    assert part.status == 201, part.text
    assert part.json()["transaction_type"] == "refund" and part.json()["amount"] == 300
    assert part.json()["payment_info"]["plan"] == "R"
    assert local_stack.sandbox.trade(mtn)["refunded_amount"] == 300
    assert wallet.user(user_id)["balance"] == 700

    too_much = wallet.http.json("POST", path, {"amount": 701})
    assert 400 <= too_much.status < 500 and "error" in too_much.json()
    assert local_stack.sandbox.trade(mtn)["refunded_amount"] == 300

    rest = wallet.http.json("POST", path, {})
    assert rest.status == 201, rest.text
    assert local_stack.sandbox.trade(mtn)["refunded_amount"] == 1000
    assert wallet.user(user_id)["balance"] == 0
    assert wallet.transaction(user_id, tx["transaction_id"])["status"] == "refunded"


def test_a_same_day_refund_abandons_the_authorisation(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    tx = wallet.create(user_id, "deposit", 450, "Credit")
    mtn, _ = wallet.open_payment_page(user_id, tx["transaction_id"], "Credit")
    local_stack.sandbox.pay(mtn)
    whole = wallet.http.json("POST", f"/users/{user_id}/transactions/{tx['transaction_id']}/refund", {})
    assert whole.status == 201 and whole.json()["payment_info"]["plan"] == "N", whole.text
    trade = local_stack.sandbox.trade(mtn)
    assert trade["card_state"] == "cancelled" and [a["action"] for a in trade["actions"]] == ["N"]
    assert wallet.user(user_id)["balance"] == 0


def test_refund_needs_the_points_and_a_card(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    atm = wallet.create(user_id, "deposit", 500, "ATM")
    mtn, _ = wallet.open_payment_page(user_id, atm["transaction_id"], "ATM")
    local_stack.sandbox.pay(mtn)
    reply = wallet.http.json("POST", f"/users/{user_id}/transactions/{atm['transaction_id']}/refund", {})
    assert reply.status == 409, reply.text
    assert local_stack.sandbox.trade(mtn)["refunded_amount"] == 0

    card = wallet.create(user_id, "deposit", 300, "Credit")
    card_mtn, _ = wallet.open_payment_page(user_id, card["transaction_id"], "Credit")
    local_stack.sandbox.pay(card_mtn)
    withdraw = wallet.create(user_id, "withdraw", 700)  # leaves 100 of the 300 in the wallet
    assert withdraw["status"] == "pending"
    reply = wallet.http.json("POST", f"/users/{user_id}/transactions/{card['transaction_id']}/refund", {})
    assert reply.status == 409, reply.text
    assert local_stack.sandbox.trade(card_mtn)["refunded_amount"] == 0
    assert wallet.user(user_id)["balance"] == 100


def test_withdraw_complete_cancel_and_insufficient(local_stack, wallet: Wallet) -> None:  # type: ignore[no-untyped-def]
    user_id = wallet.create_user()
    deposit = wallet.create(user_id, "deposit", 1000, "Credit")
    mtn, _ = wallet.open_payment_page(user_id, deposit["transaction_id"], "Credit")
    local_stack.sandbox.pay(mtn)

    first = wallet.create(user_id, "withdraw", 400)
    assert first["status"] == "pending"
    user = wallet.user(user_id)
    assert (user["balance"], user["held"]) == (600, 400)
    done = wallet.http.json(
        "PATCH", f"/users/{user_id}/transactions/{first['transaction_id']}", {"action": "complete"}
    )
    assert done.status == 200 and done.json()["status"] == "completed"
    user = wallet.user(user_id)
    assert (user["balance"], user["held"]) == (600, 0)

    second = wallet.create(user_id, "withdraw", 100)
    cancelled = wallet.http.json(
        "PATCH", f"/users/{user_id}/transactions/{second['transaction_id']}", {"action": "cancel"}
    )
    assert cancelled.status == 200 and cancelled.json()["status"] == "cancelled"
    assert wallet.user(user_id)["balance"] == 600

    reply = wallet.http.json(
        "POST", f"/users/{user_id}/transactions", {"transaction_type": "withdraw", "amount": 601}
    )
    assert reply.status == 409 and reply.json()["error"]["code"] == "insufficient_balance"
    deposit_patch = wallet.http.json(
        "PATCH", f"/users/{user_id}/transactions/{deposit['transaction_id']}", {"action": "complete"}
    )
    assert deposit_patch.status == 409  # a deposit is never completed by an API call
    assert wallet.user(user_id)["balance"] == 600


def test_the_stack_serves_dashboard_api_and_sandbox_on_one_port(local_stack, http: Http) -> None:  # type: ignore[no-untyped-def]
    dashboard = http.request("GET", "/")
    assert dashboard.status == 200 and dashboard.headers["content-type"].startswith("text/html")
    assert http.request("GET", "/healthz").status == 200
    assert http.request("GET", "/openapi.json").json()["openapi"].startswith("3.")
    assert http.request("GET", "/sandbox/").status == 200
    missing = http.request("GET", "/no/such/route")
    assert (missing.status, missing.json()) == (404, {"message": "Not Found"})
    wrong_method = http.request("PUT", "/users")
    assert (wrong_method.status, wrong_method.json()) == (404, {"message": "Not Found"})
